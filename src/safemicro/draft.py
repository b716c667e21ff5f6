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

from dataclasses import dataclass, field

import polars as pl

from safemicro.draft_identifiers import _direct_identifier
from safemicro.draft_words import (
    _CLUSTER_WORDS,
    _HOUSEHOLD_WORDS,
    _KEY_WORDS,
    _LINE_WORDS,
    _MONEY_WORDS,
    _SENSITIVE_WORDS,
    _STRATA_WORDS,
    _WEIGHT_WORDS,
    _hit,
    _tokens,
)
from safemicro.io.dataset import Dataset
from safemicro.plan import Plan, Roles, Scenario, Targets, Tier


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
        return [(name, ", ".join(self.plan.roles.role_of(name)) or "other", why) for name, why in self.reasons.items()]


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
        take(
            household,
            f"household id: header word and {c.n_valid / max(c.n_unique, 1):.1f} rows per value "
            f"({c.n_unique} households)",
        )

    # 2. design variables: weight, strata, cluster
    weight, weight_why, other_weights = _pick_weight(cols, assigned)
    if weight is not None:
        take(weight, weight_why)
    for name, why in other_weights:
        take(name, why)
    strata = _pick_by_words(cols, assigned, _STRATA_WORDS)
    if strata is not None:
        take(
            strata,
            f"strata: header word, {cols[strata].n_unique} strata (weights and strata can reveal geography: review)",
        )
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
            take(
                name, f"numeric key: continuous money amount (header word {money_word!r}), {c.n_unique} distinct values"
            )
        elif key_word:
            take(
                name,
                f"other: {_KEY_WORDS[key_word]} word {key_word!r} but {c.n_unique} distinct values; "
                "recode before using it as a key",
            )
        elif c.is_numeric and c.n_unique > 30 and not c.is_integer_valued:
            take(
                name,
                f"other: continuous ({c.n_unique} distinct values); make it a numeric key if an intruder could know it",
            )
        elif 1 < c.n_unique <= 10 and (c.has_labels or c.is_integer_valued or c.is_string):
            keys.append(name)
            take(
                name,
                f"key: low-cardinality categorical ({c.n_unique} categories); keep it a key if it "
                "is observable or in auxiliary data, else make it 'other'",
            )
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
        score = 1.0 + (
            1.0 if _hit(c.tokens, {"id", "hhid", "hid", "ori_hid", "hh_id", "code", "no", "number"}) else 0.0
        )
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
        if _hit(
            c.tokens,
            {
                "sampling",
                "sample",
                "final",
                "survey",
                "design",
                "person",
                "ind",
                "indiv",
                "individual",
                "pweight",
                "finalwgt",
            },
        ):
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
        (
            name,
            f"other: another weight variable (the plan uses {best!r}); weights can reveal geography, "
            "review before release",
        )
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


__all__ = ["Draft", "draft_plan"]
