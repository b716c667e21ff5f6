"""Draft a release plan from the data: guess each variable's role and say why.

The draft is a starting point for the curator, never a decision: it looks at column names
(English, French, Spanish and Arabic transliterations), value labels, types and value
patterns, and explains every guess in :attr:`Draft.reasons`.

>>> import polars as pl
>>> from safemicro.io.dataset import Dataset
>>> frame = pl.DataFrame({"hhid": [1, 1, 2, 2, 3, 3], "sex": [1, 2, 1, 2, 2, 1],
...                       "phone": ["+999 1", "+999 1", "+999 2", "+999 2", "+999 3", "+999 3"],
...                       "wgt": [1.5, 1.5, 2.0, 2.0, 1.0, 1.0]})
>>> d = draft_plan(Dataset(frame))
>>> d.plan.roles.household, d.plan.roles.weight, d.plan.roles.direct_ids, d.plan.roles.keys
('hhid', 'wgt', ['phone'], ['sex'])
>>> d.reasons["phone"]
'direct identifier: phone number (header word "phone")'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from safemicro.io.dataset import Dataset
from safemicro.plan import Plan, Roles, Scenario, Targets, Tier

# -- header vocabulary -------------------------------------------------------------------------

_NAME_WORDS = {
    "name", "names", "fullname", "firstname", "lastname", "surname", "forename", "givenname",
    "familyname", "nom", "prenom", "noms", "nombre", "nombres", "apellido", "apellidos",
    "ism", "ismi", "esm", "laqab", "kunya", "respondent_name",
}
_PHONE_WORDS = {
    "phone", "telephone", "tel", "tele", "mobile", "msisdn", "cell", "cellphone", "gsm",
    "telefono", "telefone", "portable", "celular", "movil", "hatif", "raqm", "whatsapp",
}
_ID_WORDS = {
    "id", "ids", "nid", "national_id", "nationalid", "passport", "passeport", "pasaporte",
    "registration", "regno", "reg", "unhcr", "progres", "proggres", "caseno", "case",
    "idno", "idnumber", "identity", "identite", "identidad", "cedula", "dni", "cni", "nin",
    "ssn", "tazkira", "iqama", "hawiya", "huwiya", "ration", "card", "uuid", "guid",
    "instanceid", "key", "barcode", "biometric", "fingerprint", "iris",
}
_GPS_WORDS = {
    "lat", "latitude", "lon", "lng", "long", "longitude", "gps", "coord", "coords",
    "coordinates", "coordonnees", "geopoint", "geolocation", "location_gps", "easting",
    "northing", "altitude", "utm", "x_coord", "y_coord",
}
_ADDRESS_WORDS = {
    "address", "addr", "adresse", "direccion", "domicilio", "street", "rue", "calle",
    "avenue", "unwan", "shari", "plot", "house_no", "houseno", "postcode", "zipcode", "zip",
}
_EMAIL_WORDS = {"email", "e_mail", "mail", "courriel", "correo", "bareed"}
_DOB_WORDS = {"dob", "birthdate", "birthday", "ddn", "fecha_nacimiento", "date_naissance"}
_HOUSEHOLD_WORDS = {"hh", "household", "hhid", "hid", "hh_id", "hhno", "ori_hid", "menage", "hogar", "usra", "bayt", "hhcode"}
_WEIGHT_WORDS = {"weight", "weights", "wgt", "wght", "wt", "poids", "peso", "pesos", "pond", "ponderation", "ponderacion", "expansion", "expfactor", "factor", "pw", "hw"}
_STRATA_WORDS = {"strata", "stratum", "strat", "strate", "estrato", "stratification"}
_CLUSTER_WORDS = {"psu", "cluster", "ea", "enumeration_area", "grappe", "conglomerado", "upm", "ssu", "segment"}
_LINE_WORDS = {"line", "lineno", "line_no", "member", "memberno", "mid", "pline", "rank", "order", "ligne", "linea"}

# Demographic / geographic / observable words: categorical keys.
_KEY_WORDS: dict[str, str] = {}
for _words, _what in [
    ({"sex", "gender", "genre", "sexe", "sexo", "jins"}, "sex"),
    ({"age", "edad", "umr", "yob", "birthyear"}, "age"),
    ({"region", "district", "province", "governorate", "county", "state", "admin1", "admin2",
      "admin3", "commune", "municipality", "village", "zone", "locality", "wilaya", "muhafaza",
      "departement", "departamento", "urban", "rural", "urbrur", "area", "location", "site",
      "camp", "settlement", "campement", "asentamiento", "mukhayyam", "block", "sector"}, "geography"),
    ({"origin", "country", "pays", "pais", "nationality", "nationalite", "nacionalidad",
      "citizenship", "birthplace", "coo"}, "origin/nationality"),
    ({"ethnic", "ethnicity", "ethnie", "etnia", "tribe", "clan", "caste", "language", "langue",
      "idioma", "lugha"}, "ethnicity/language"),
    ({"religion", "religious", "din", "religio"}, "religion"),
    ({"marital", "civil", "hhcivil", "marriage", "married", "matrimonial", "estado_civil", "etat_civil"}, "marital status"),
    ({"relat", "relation", "relationship", "relationtohead", "lien", "parentesco", "qaraba"}, "relationship to head"),
    ({"hhsize", "hh_size", "size", "members", "nmembers", "taille", "tamano"}, "household size"),
    ({"educ", "education", "school", "schooling", "literacy", "diploma", "etudes", "escolaridad", "taalim"}, "education"),
    ({"occupation", "occup", "job", "profession", "employment", "work", "activity", "livelihood",
      "emploi", "empleo", "trabajo", "amal", "sector_work", "industry", "isco"}, "occupation/livelihood"),
    ({"disability", "disab", "disabled", "handicap", "discapacidad", "wg", "wgss", "difficulty"}, "disability"),
    ({"arrival", "arrived", "displacement", "displaced", "arrivee", "llegada", "year_arrival"}, "arrival/displacement"),
    ({"roof", "walls", "wall", "floor", "water", "toilet", "sanitation", "electricity", "electcon",
      "elec", "dwelling", "housing", "shelter", "tenure", "fuel", "cooking", "lighting", "rooms"}, "dwelling (observable)"),
    ({"status", "refugee", "idp", "returnee", "population_group", "popgroup"}, "population group"),
]:
    for _w in _words:
        _KEY_WORDS[_w] = _what

_MONEY_WORDS = {
    "income", "revenu", "ingreso", "ingresos", "dakhl", "expend", "expenditure", "expenses",
    "spending", "depenses", "gasto", "gastos", "consumption", "consumo", "savings", "epargne",
    "ahorro", "salary", "wage", "wages", "earnings", "salaire", "salario", "amount", "montant",
    "monto", "cash", "transfer", "assistance", "aid", "rent", "loyer", "debt", "dette", "deuda",
    "loan", "credit", "assets", "wealth", "value", "price", "cost", "remittance", "remittances",
    "livestock", "land", "usd", "ugx", "kes", "etb",
}
_SENSITIVE_WORDS: dict[str, str] = {}
for _words, _what in [
    ({"protection", "incident", "incidents", "gbv", "sgbv", "violence", "violent", "abuse",
      "assault", "rape", "sexual", "torture", "trafficking", "exploitation", "harassment",
      "threat", "threats", "attack", "killed", "abduction", "kidnapping", "forced",
      "recruitment", "child_labour", "childlabour", "unaccompanied", "separated", "survivor"},
     "protection/violence"),
    ({"health", "hiv", "aids", "tb", "disease", "illness", "ill", "sick", "chronic", "mental",
      "psychological", "psychosocial", "mhpss", "trauma", "ptsd", "depression", "suicide",
      "pregnant", "pregnancy", "contraception", "abortion", "drug", "drugs", "alcohol",
      "malnutrition", "sante", "salud", "sihha"}, "health"),
    ({"legal", "documentation", "documents", "document", "asylum", "undocumented",
      "detention", "detained", "arrest", "arrested", "prison", "crime", "criminal", "court",
      "deportation", "refoulement"}, "legal status"),
    ({"political", "politics", "party", "opinion", "vote", "sexual_orientation",
      "lgbti", "orientation"}, "political/orientation"),
    ({"religion", "religious"}, "religion"),
    ({"ethnic", "ethnicity", "tribe", "clan"}, "ethnicity"),
    ({"food", "hunger", "coping", "fcs", "rcsi", "hhs", "begging", "survival"}, "coping/food insecurity"),
]:
    for _w in _words:
        _SENSITIVE_WORDS.setdefault(_w, _what)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE_RE = re.compile(r"^\+?[\d\s().-]{8,20}$")


def _tokens(name: str) -> list[str]:
    """Header words: split on non-letters and camelCase, lower-cased, accents kept simple."""
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    s = s.lower().translate(str.maketrans("éèêàâçñóíúôî", "eeeaacnoiuoi"))
    parts = [p for p in re.split(r"[^a-z0-9]+", s) if p]
    # keep joined pairs too ("national_id" -> "national_id"), and digit-stripped words (q5_age -> age)
    out = list(parts)
    out += [re.sub(r"\d+", "", p) for p in parts if re.search(r"\d", p)]
    out += [f"{a}_{b}" for a, b in zip(parts, parts[1:])]
    out.append("_".join(parts))
    out.append("".join(parts))
    return [t for t in dict.fromkeys(out) if t]


def _hit(tokens: list[str], words: set[str] | dict[str, str]) -> str | None:
    for t in tokens:
        if t in words:
            return t
    return None


@dataclass
class _Col:
    name: str
    tokens: list[str]
    series: pl.Series  # user-missing codes already null
    n: int
    n_valid: int
    n_unique: int
    dtype: pl.DataType
    has_labels: bool

    @property
    def is_string(self) -> bool:
        return self.dtype == pl.String or self.dtype == pl.Categorical or self.dtype == pl.Enum

    @property
    def is_numeric(self) -> bool:
        return self.dtype.is_numeric()

    @property
    def is_integer_valued(self) -> bool:
        if self.dtype.is_integer():
            return True
        if self.dtype.is_float():
            s = self.series.drop_nulls().drop_nans()
            return s.len() > 0 and bool((s == s.round(0)).all())
        return False

    @property
    def unique_ratio(self) -> float:
        return self.n_unique / self.n_valid if self.n_valid else 0.0


@dataclass
class Draft:
    """A drafted plan and, for every column, why it got its role."""

    plan: Plan
    reasons: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def role_table(self) -> list[tuple[str, str, str]]:
        """(column, roles, reason) rows for display."""
        return [
            (name, ", ".join(self.plan.roles.role_of(name)) or "other", why)
            for name, why in self.reasons.items()
        ]


_TIER_TARGETS: dict[str, Targets] = {
    "puf": Targets(k=5, max_global_risk=0.01, max_individual_risk=0.05),
    "suf": Targets(k=3, max_global_risk=0.01, max_individual_risk=None),
    "enclave": Targets(k=2, max_global_risk=0.05, max_individual_risk=None),
}


def draft_plan(dataset: Dataset, *, tier: Tier = "suf") -> Draft:
    """Guess the roles of the columns of `dataset` and return the plan with the reasons."""
    if tier not in _TIER_TARGETS:
        raise ValueError(f"tier must be one of puf, suf, enclave, not {tier!r}")
    frame = dataset.frame
    n = frame.height
    cols: dict[str, _Col] = {}
    for name in frame.columns:
        s = dataset.analysis_column(name)
        if s.dtype.is_float():
            s = s.fill_nan(None)
        cols[name] = _Col(
            name=name,
            tokens=_tokens(name),
            series=s,
            n=n,
            n_valid=n - s.null_count(),
            n_unique=s.drop_nulls().n_unique(),
            dtype=s.dtype,
            has_labels=bool(dataset.codebook.meta(name).value_labels) and not dataset.special_codes(name),
        )

    reasons: dict[str, str] = {}
    assigned: set[str] = set()
    direct_ids: list[str] = []
    keys: list[str] = []
    numeric_keys: list[str] = []
    sensitive: list[str] = []

    def take(name: str, reason: str) -> None:
        assigned.add(name)
        reasons[name] = reason

    # 1. household id: a household word plus many rows per value
    household = _pick_household(cols)
    if household is not None:
        c = cols[household]
        take(household, f"household id: header word and {c.n_valid / max(c.n_unique, 1):.1f} rows per value "
                        f"({c.n_unique} households)")

    # 2. design variables: weight, strata, cluster
    weight, weight_why, other_weights = _pick_weight(cols, assigned)
    if weight is not None:
        take(weight, weight_why)
    for name, why in other_weights:
        take(name, why)
    strata = _pick_by_words(cols, assigned, _STRATA_WORDS)
    if strata is not None:
        take(strata, f"strata: header word, {cols[strata].n_unique} strata (weights and strata can reveal "
                     "geography: review)")
    cluster = _pick_by_words(cols, assigned, _CLUSTER_WORDS)
    if cluster is not None:
        take(cluster, f"cluster (PSU): header word, {cols[cluster].n_unique} clusters")

    # 3. direct identifiers
    for name, c in cols.items():
        if name in assigned:
            continue
        why = _direct_identifier(c)
        if why is not None:
            direct_ids.append(name)
            take(name, f"direct identifier: {why}")

    # 4. structural columns (member line number) stay 'other'
    for name, c in cols.items():
        if name in assigned:
            continue
        if _hit(c.tokens, _LINE_WORDS) and c.is_integer_valued and c.n_unique <= 40 and household is not None:
            take(name, "other: member line number within the household (structure, not a key)")

    # 5. sensitive, keys and numeric keys
    for name, c in cols.items():
        if name in assigned:
            continue
        key_word = _hit(c.tokens, _KEY_WORDS)
        sens_word = _hit(c.tokens, _SENSITIVE_WORDS)
        money_word = _hit(c.tokens, _MONEY_WORDS)
        categorical = c.n_unique <= 30 or (c.has_labels and c.n_unique <= 60)
        is_age = key_word is not None and _KEY_WORDS[key_word] == "age"
        if sens_word and not (key_word and _KEY_WORDS[key_word] in ("religion", "ethnicity/language") and categorical):
            sensitive.append(name)
            take(name, f"sensitive: {_SENSITIVE_WORDS[sens_word]} (header word {sens_word!r})")
        elif key_word and (categorical or (is_age and c.is_integer_valued and c.n_unique <= 130)):
            keys.append(name)
            what = _KEY_WORDS[key_word]
            extra = ""
            if is_age:
                extra = "; consider recoding into age bands"
            if what in ("religion", "ethnicity/language"):
                extra = "; also sensitive: a key here because it is observable or known from registration"
            take(name, f"key: {what} (header word {key_word!r}), {c.n_unique} categories{extra}")
        elif c.is_numeric and money_word and c.n_unique > 20:
            numeric_keys.append(name)
            take(name, f"numeric key: continuous money amount (header word {money_word!r}), "
                       f"{c.n_unique} distinct values")
        elif key_word:
            take(name, f"other: {_KEY_WORDS[key_word]} word {key_word!r} but {c.n_unique} distinct values; "
                       "recode before using it as a key")
        elif c.is_numeric and c.n_unique > 30 and not c.is_integer_valued:
            take(name, f"other: continuous ({c.n_unique} distinct values); make it a numeric key if an "
                       "intruder could know it")
        elif 1 < c.n_unique <= 10 and (c.has_labels or c.is_integer_valued or c.is_string):
            keys.append(name)
            take(name, f"key: low-cardinality categorical ({c.n_unique} categories); keep it a key if it "
                       "is observable or in auxiliary data, else make it 'other'")
        else:
            take(name, f"other: no role recognised ({c.n_unique} distinct values)")

    # household-level keys: constant within every household
    household_level: list[str] = []
    if household is not None:
        hh_keys = keys + numeric_keys
        if hh_keys:
            per_hh = (
                pl.DataFrame([cols[household].series] + [cols[k].series for k in hh_keys])
                .group_by(household)
                .agg([pl.col(k).n_unique().alias(k) for k in hh_keys])
            )
            for k in hh_keys:
                if int(per_hh[k].max() or 0) <= 1:
                    household_level.append(k)
                    reasons[k] += "; measured at household level (constant within households)"

    roles = Roles(
        direct_ids=direct_ids,
        keys=keys,
        numeric_keys=numeric_keys,
        sensitive=sensitive,
        weight=weight,
        household=household,
        strata=strata,
        cluster=cluster,
        household_level=household_level,
    )
    targets = _TIER_TARGETS[tier].model_copy()
    scenario = Scenario(
        description=(
            "DRAFT: review every role. Intruder scenarios to consider: nosy neighbour "
            "(observable household and person characteristics) and linkage with registration "
            "or distribution lists."
        ),
        tier=tier,
    )
    plan = Plan(roles=roles, scenario=scenario, targets=targets)
    notes = [
        f"tier {tier}: targets k={targets.k}, max_global_risk={targets.max_global_risk}, "
        f"max_individual_risk={targets.max_individual_risk}",
    ]
    if household is None:
        notes.append("no household id found: household risk cannot be assessed")
    if weight is None:
        notes.append("no sampling weight found: risk measures will treat the file as the population")
    reasons = {name: reasons[name] for name in frame.columns}
    return Draft(plan=plan, reasons=reasons, notes=notes)


# -- detectors ---------------------------------------------------------------------------------


def _pick_household(cols: dict[str, _Col]) -> str | None:
    best: tuple[float, str] | None = None
    for name, c in cols.items():
        word = _hit(c.tokens, _HOUSEHOLD_WORDS)
        if word is None or _hit(c.tokens, _WEIGHT_WORDS) or _hit(c.tokens, _KEY_WORDS):
            continue
        if c.n_valid == 0 or not (c.is_string or c.is_integer_valued):
            continue
        per = c.n_valid / max(c.n_unique, 1)
        if not (1.2 <= per <= 50) or c.n_unique < 2:
            continue
        score = 1.0 + (1.0 if _hit(c.tokens, {"id", "hhid", "hid", "ori_hid", "hh_id", "code", "no", "number"}) else 0.0)
        score += min(c.n_unique / c.n_valid, 1.0)
        if best is None or score > best[0]:
            best = (score, name)
    return None if best is None else best[1]


def _pick_weight(cols: dict[str, _Col], assigned: set[str]) -> tuple[str | None, str, list[tuple[str, str]]]:
    cands: list[tuple[float, str]] = []
    for name, c in cols.items():
        if name in assigned:
            continue
        word = _hit(c.tokens, _WEIGHT_WORDS)
        if word is None:
            whole = c.tokens[-1]
            word = next((w for w in ("weight", "wgt", "poids", "peso", "ponder") if w in whole), None)
        if word is None or not c.is_numeric or c.n_valid == 0:
            continue
        s = c.series.drop_nulls()
        if float(s.min()) <= 0:  # type: ignore[arg-type]
            continue
        score = 1.0
        if _hit(c.tokens, {"sampling", "sample", "final", "survey", "design", "person", "ind", "indiv", "individual", "pweight", "finalwgt"}):
            score += 1.0
        if c.tokens[-1] in ("weight", "wgt", "wt", "poids", "peso", "pond"):
            score += 0.5
        if _hit(c.tokens, {"household", "hh", "menage", "hogar"}):
            score -= 0.5  # a household weight next to a person weight: the person weight wins
        if _hit(c.tokens, {"rep", "replicate", "brr", "jk", "jackknife", "boot"}):
            score -= 1.0
        cands.append((score, name))
    if not cands:
        return None, "", []
    cands.sort(key=lambda t: -t[0])
    best = cands[0][1]
    c = cols[best]
    why = f"weight: header word, positive values ({c.n_unique} distinct, from {c.series.min()} to {c.series.max()})"
    others = [
        (name, f"other: another weight variable (the plan uses {best!r}); weights can reveal geography, "
               "review before release")
        for _, name in cands[1:]
    ]
    return best, why, others


def _pick_by_words(cols: dict[str, _Col], assigned: set[str], words: set[str]) -> str | None:
    for name, c in cols.items():
        if name in assigned or c.n_valid == 0:
            continue
        if _hit(c.tokens, words) and (c.is_string or c.is_integer_valued) and c.n_unique < c.n_valid:
            return name
    return None


def _share(c: _Col, pred: Callable[[str], bool], sample: int = 500) -> float:
    s = c.series.drop_nulls().cast(pl.String).head(sample).to_list()
    return sum(1 for v in s if pred(v)) / len(s) if s else 0.0


def _decimals(c: _Col, sample: int = 500) -> float:
    s = c.series.drop_nulls().head(sample).to_list()
    if not s:
        return 0.0
    counts = []
    for v in s:
        text = repr(float(v))
        counts.append(len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0)
    counts.sort()
    return float(counts[len(counts) // 2])


def _in_gps_range(c: _Col) -> bool:
    s = c.series.drop_nulls()
    return -180 <= float(s.min()) and float(s.max()) <= 180  # type: ignore[arg-type]


def _direct_identifier(c: _Col) -> str | None:
    t = c.tokens
    geo_or_group = _hit(t, {"camp", "site", "village", "district", "region", "country", "province",
                            "settlement", "school", "org", "organisation", "organization", "agency",
                            "partner", "file", "dataset", "variable", "enumerator", "team", "form"})
    # a column with a handful of values among many records cannot single anyone out
    # (has_phone, mobile_money, name_known...): header words alone are not enough there
    few = c.n_valid >= 30 and c.n_unique <= 10
    if (w := _hit(t, _NAME_WORDS)) and not geo_or_group and not few:
        return f'person name (header word "{w}")'
    if few:
        return None
    if w := _hit(t, _PHONE_WORDS):
        return f'phone number (header word "{w}")'
    if w := _hit(t, _EMAIL_WORDS):
        return f'e-mail address (header word "{w}")'
    if w := _hit(t, _ADDRESS_WORDS):
        return f'address (header word "{w}")'
    if w := _hit(t, _DOB_WORDS):
        return f'date of birth (header word "{w}")'
    if _hit(t, {"birth", "naissance", "nacimiento", "born"}) and (
        _hit(t, {"date", "day", "fecha", "jour"}) or c.dtype in (pl.Date, pl.Datetime)
    ):
        return "date of birth (header words)"
    if w := _hit(t, _GPS_WORDS):
        if c.is_string or c.n_valid == 0 or (c.is_numeric and _in_gps_range(c)):
            return f'GPS coordinate (header word "{w}")'
    if (w := _hit(t, _ID_WORDS)) and not geo_or_group:
        if (c.n_unique >= 10 and c.unique_ratio >= 0.1) or c.unique_ratio >= 0.9:
            return f'identification number (header word "{w}", {c.n_unique} distinct values)'
    if c.is_string and c.n_valid:
        if _share(c, lambda v: bool(_EMAIL_RE.match(v))) > 0.5:
            return "e-mail addresses in the values"
        if _share(c, lambda v: bool(_PHONE_RE.match(v)) and sum(ch.isdigit() for ch in v) >= 8) > 0.5:
            return "phone numbers in the values"
    if c.dtype.is_float() and c.n_valid >= 20 and not _hit(t, _MONEY_WORDS):
        s = c.series.drop_nulls()
        lo, hi = float(s.min()), float(s.max())  # type: ignore[arg-type]
        if -180 <= lo and hi <= 180 and c.unique_ratio > 0.05 and c.n_unique > 20 and _decimals(c) >= 4:
            return f"looks like GPS coordinates (values in [{lo:.2f}, {hi:.2f}] with 4+ decimals)"
    if c.n_valid >= 20 and not _hit(t, _MONEY_WORDS) and not _hit(t, _KEY_WORDS):
        if c.is_string and c.unique_ratio > 0.8:
            return f"mostly unique text ({c.unique_ratio:.0%} distinct values)"
        if c.dtype.is_integer() and c.unique_ratio > 0.95:
            return f"mostly unique integers ({c.unique_ratio:.0%} distinct values): likely a record id"
    return None


__all__ = ["Draft", "draft_plan"]
