"""The words and value patterns ``draft_plan`` recognises roles by, in the languages of
displacement settings (English, French, Spanish, Portuguese, Arabic transliterations,
Swahili, Somali, Turkish, ...): header words per role and the shapes of values that are
identifiers by themselves (names, phone numbers, e-mail addresses, ID numbers)."""

from __future__ import annotations

import re

# Word lists read best packed (one word a line would triple the file).
# fmt: off
_NAME_WORDS = {
    "name", "names", "fullname", "firstname", "lastname", "surname", "forename", "givenname",
    "familyname", "nom", "prenom", "noms", "nombre", "nombres", "apellido", "apellidos",
    "ism", "ismi", "esm", "laqab", "kunya", "respondent_name",
    # more languages of displacement settings: pt/it, de, tr, sw, so, ur/hi/nl, ru, id/ms
    "nome", "cognome", "sobrenome", "vorname", "nachname", "isim", "soyad", "soyadi", "soyisim",
    "jina", "magac", "naam", "imya", "familiya", "nama", "fullnames", "nom_complet", "nomcomplet",
    "nombre_completo", "apelido", "prenoms",
}
_PHONE_WORDS = {
    "phone", "telephone", "tel", "tele", "mobile", "msisdn", "cell", "cellphone", "gsm",
    "telefono", "telefone", "portable", "celular", "movil", "hatif", "raqm", "whatsapp",
    "telefon", "telephon", "simu", "taleefan", "telefoon", "phoneno", "phone_number", "mobile_number",
    "numero_tel", "num_tel", "contact_number", "contact_no",
}
_ID_WORDS = {
    "id", "ids", "nid", "national_id", "nationalid", "passport", "passeport", "pasaporte",
    "registration", "regno", "reg", "unhcr", "progres", "proggres", "caseno", "case",
    "idno", "idnumber", "identity", "identite", "identidad", "cedula", "dni", "cni", "nin",
    "ssn", "tazkira", "iqama", "hawiya", "huwiya", "ration", "card", "uuid", "guid",
    "instanceid", "key", "barcode", "biometric", "fingerprint", "iris",
    "id_number", "id_no", "idcard", "id_card", "carte_identite", "ausweis", "kimlik", "tckn",
    "kitambulisho", "aadhaar", "nic", "curp", "rut", "cpf", "nif", "bvn", "ghana_card", "omang",
    "emirates_id", "individual_id", "case_number", "registration_number", "refugee_id", "proof_of_registration",
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
_EMAIL_WORDS = {"email", "e_mail", "mail", "courriel", "correo", "bareed", "correo_electronico", "eposta", "barua_pepe"}
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
# a personal name: 1-5 words of letters (apostrophes and hyphens inside), in any script
_NAME_RE = re.compile(r"^[^\W\d_]+(?:['’-][^\W\d_]+)*(?:\s+[^\W\d_]+(?:['’-][^\W\d_]+)*){0,4}$")
# an ID number: 6+ digits, possibly with a letter prefix/suffix and separators
_IDNO_RE = re.compile(r"^[A-Za-z]{0,4}[-/ ]?\d[\d /-]{4,}\d[A-Za-z]?$")
# dates look like ID numbers to that pattern: they are told apart first
_DATE_RE = re.compile(r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")
# answers, not names: flags and "don't know" codes in a few languages
_ANSWER_WORDS = {
    "yes", "no", "oui", "non", "si", "sí", "nao", "não", "ja", "nein", "evet", "hayir", "ndiyo", "hapana",
    "haa", "maya", "na", "naam", "la", "true", "false", "unknown", "dk", "refused", "none", "other",
    "missing", "male", "female", "m", "f", "urban", "rural",
}
_PHONE_RE = re.compile(r"^\+?[\d\s().-]{8,20}$")
# fmt: on


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
