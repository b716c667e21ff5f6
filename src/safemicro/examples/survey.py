"""A seeded, synthetic forced-displacement household survey to try safemicro on.

Every value is made up: the names come from a handful of syllables, the phone numbers
use the unassigned country code +999, the sites are fictional. The file still behaves like
a real camp survey: one row per person, household variables repeated on every member,
a stratified cluster design (strata = sites, clusters = blocks) with household weights,
direct identifiers that must be removed (head's name, phone, GPS of the dwelling),
labelled categorical variables with user-missing codes (98 "Don't know", 99 "Refused"),
skip patterns (nulls), correlated variables and a few rare, risky households (elderly
heads of very large households from a rare country of origin).

>>> ds = generate_survey(n_households=50, seed=1)
>>> ds.frame.select("hhid", "line_no", "relationship").head(2).rows()
[(10001, 1, 1), (10001, 2, 2)]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from safemicro.io.dataset import Codebook, Dataset, VariableMeta

SURVEY_YEAR = 2025

# code: (label, latitude, longitude, share of households, households in the population, blocks)
SITES: dict[int, tuple[str, float, float, float, int, int]] = {
    1: ("Amani settlement", 3.412, 31.774, 0.20, 21000, 14),
    2: ("Baraka camp", 3.105, 31.402, 0.17, 15500, 12),
    3: ("Tumaini settlement", 2.871, 32.015, 0.15, 9800, 10),
    4: ("Upendo camp", 3.658, 32.233, 0.13, 7200, 10),
    5: ("Salama settlement", 2.540, 31.650, 0.11, 5100, 8),
    6: ("Neema transit centre", 3.950, 31.880, 0.08, 1900, 6),
    7: ("Furaha settlement", 2.310, 32.420, 0.09, 4300, 8),
    8: ("Jamii urban area", 3.020, 32.610, 0.07, 6400, 8),
}

ORIGINS = {
    1: "South Sudan",
    2: "DR Congo",
    3: "Burundi",
    4: "Somalia",
    5: "Sudan",
    6: "Eritrea",
    7: "Rwanda",
    8: "Ethiopia",
}
RARE_ORIGINS = (7, 8)

# share of each origin (1..8) among the households of each site
SITE_ORIGIN_MIX = {
    1: [0.80, 0.12, 0.03, 0.00, 0.03, 0.01, 0.005, 0.005],
    2: [0.55, 0.30, 0.08, 0.02, 0.03, 0.01, 0.005, 0.005],
    3: [0.20, 0.55, 0.20, 0.01, 0.01, 0.01, 0.01, 0.01],
    4: [0.70, 0.05, 0.02, 0.03, 0.17, 0.02, 0.005, 0.005],
    5: [0.10, 0.45, 0.40, 0.01, 0.01, 0.01, 0.01, 0.01],
    6: [0.35, 0.15, 0.05, 0.05, 0.35, 0.03, 0.01, 0.01],
    7: [0.25, 0.40, 0.25, 0.02, 0.04, 0.02, 0.01, 0.01],
    8: [0.15, 0.25, 0.10, 0.20, 0.10, 0.12, 0.04, 0.04],
}

# arrival waves per origin: (first year, last year, weight)
ARRIVAL_WAVES = {
    1: [(2013, 2014, 0.25), (2016, 2018, 0.50), (2019, 2022, 0.10), (2023, 2025, 0.15)],
    2: [(2008, 2012, 0.15), (2013, 2017, 0.30), (2018, 2025, 0.55)],
    3: [(2015, 2016, 0.70), (2017, 2025, 0.30)],
    4: [(2008, 2012, 0.60), (2013, 2025, 0.40)],
    5: [(2008, 2012, 0.10), (2013, 2022, 0.15), (2023, 2025, 0.75)],
    6: [(2008, 2016, 0.50), (2017, 2025, 0.50)],
    7: [(2008, 2015, 0.80), (2016, 2025, 0.20)],
    8: [(2010, 2019, 0.40), (2020, 2025, 0.60)],
}

RELATIONSHIP = {
    1: "Head",
    2: "Spouse/partner",
    3: "Son/daughter",
    4: "Grandchild",
    5: "Parent",
    6: "Brother/sister",
    7: "Other relative",
    8: "Not related",
}
SEX = {1: "Male", 2: "Female"}
MARITAL = {1: "Never married", 2: "Married/in union", 3: "Separated/divorced", 4: "Widowed"}
EDUCATION = {
    0: "None",
    1: "Primary",
    2: "Lower secondary",
    3: "Upper secondary",
    4: "Tertiary/vocational",
}
YES_NO_DK = {0: "No", 1: "Yes", 98: "Don't know"}
YES_NO_DK_REF = {0: "No", 1: "Yes", 98: "Don't know", 99: "Refused"}
LIVELIHOOD = {
    1: "None (assistance only)",
    2: "Agriculture/livestock",
    3: "Casual labour",
    4: "Petty trade/own business",
    5: "Salaried or incentive work",
    6: "Remittances",
}
LEGAL_STATUS = {
    1: "Recognised refugee, valid ID",
    2: "Asylum seeker",
    3: "Registered, document lost or expired",
    4: "Not registered",
    98: "Don't know",
    99: "Refused",
}

# median monthly income (USD) when the household earns something, per livelihood
_INCOME_MEDIAN = {1: 8.0, 2: 32.0, 3: 38.0, 4: 75.0, 5: 140.0, 6: 95.0}
_TRANSFER_PER_PERSON = 9.5  # monthly cash assistance per person (USD)

_SYL_FIRST = ["ka", "lo", "mu", "ri", "ta", "be", "no", "si", "du", "fa", "ze", "wi", "ra", "mo"]
_SYL_LAST = ["bo", "ke", "li", "da", "nu", "ro", "sa", "te", "vi", "gu", "ma", "ne"]


def _fake_name(rng: np.random.Generator) -> str:
    first = "".join(rng.choice(_SYL_FIRST, size=int(rng.integers(2, 4))))
    last = "".join(rng.choice(_SYL_LAST, size=3))
    return f"{first.capitalize()} {last.capitalize()}"


def _fake_phone(rng: np.random.Generator) -> str:
    d = rng.integers(0, 10, size=8)
    return "+999 7{}{} {}{}{} {}{}{}".format(*d)


def _arrival(rng: np.random.Generator, origin: int) -> int:
    waves = ARRIVAL_WAVES[origin]
    w = np.array([x[2] for x in waves])
    lo, hi, _ = waves[int(rng.choice(len(waves), p=w / w.sum()))]
    return int(rng.integers(lo, hi + 1))


def _head_age(rng: np.random.Generator) -> int:
    return int(min(85, 18 + rng.gamma(2.4, 8.5)))


def _marital_other(rng: np.random.Generator, age: int) -> int | None:
    if age < 12:
        return None
    if age < 18:
        return 2 if rng.random() < 0.04 else 1
    return int(rng.choice([1, 2, 3, 4], p=[0.35, 0.50, 0.05, 0.10]))


def _education(rng: np.random.Generator, age: int, sex: int, origin: int) -> int | None:
    if age < 6:
        return None
    if age <= 12:
        return int(rng.choice([0, 1], p=[0.35, 0.65]))
    if age <= 17:
        return int(rng.choice([0, 1, 2], p=[0.20, 0.55, 0.25]))
    better = origin in (5, 6, 8)  # Sudan, Eritrea, Ethiopia: more schooling on average
    p = np.array([0.35, 0.35, 0.15, 0.10, 0.05]) if better else np.array([0.50, 0.32, 0.10, 0.05, 0.03])
    if sex == 2:
        p = p * np.array([1.5, 1.0, 0.8, 0.6, 0.5])
    if age >= 55:
        p = p * np.array([2.0, 1.0, 0.6, 0.5, 0.5])
    p = p / p.sum()
    return int(rng.choice(5, p=p))


def _heap(rng: np.random.Generator, age: int) -> int:
    """Age heaping: many adults without documents give a round age (30, 35, 40...)."""
    if age >= 20 and rng.random() < 0.45:
        return int(5 * round(age / 5))
    return age


def _members(rng: np.random.Generator, rare: bool) -> list[tuple[int, int, int]]:
    """(relationship, sex, age) for every member, head first."""
    if rare:  # elderly head of a very large household
        head_sex = 1 if rng.random() < 0.7 else 2
        head_age = int(rng.integers(72, 85))
    else:
        head_sex = 2 if rng.random() < 0.46 else 1
        head_age = max(18, _heap(rng, _head_age(rng)))
    out = [(1, head_sex, head_age)]
    has_spouse = rng.random() < ((0.82 if head_age >= 22 else 0.5) if head_sex == 1 else 0.18)
    if rare:
        has_spouse = True
    if has_spouse:
        if head_sex == 1:
            age = max(16, _heap(rng, head_age - int(rng.integers(0, 11))))
        else:
            age = min(90, _heap(rng, head_age + int(rng.integers(0, 11))))
        out.append((2, 3 - head_sex, age))
    lam = 1.2 if head_age < 25 else 2.9 if head_age < 35 else 3.6 if head_age < 50 else 2.2 if head_age < 65 else 0.9
    n_children = int(rng.poisson(lam))
    max_child = min(head_age - 15, 30)
    kids = sorted(
        (min(max_child, _heap(rng, int(rng.integers(0, max_child + 1)))) for _ in range(n_children)),
        reverse=True,
    )
    out += [(3, int(rng.integers(1, 3)), a) for a in kids]
    if head_age >= 45:
        n_grand = int(rng.poisson(0.7 if head_age >= 55 else 0.25))
        if rare:
            n_grand += 4
        top = max(0, min(head_age - 35, 14))
        grand = sorted((int(rng.integers(0, top + 1)) for _ in range(n_grand)), reverse=True)
        out += [(4, int(rng.integers(1, 3)), a) for a in grand]
    if head_age < 45 and rng.random() < 0.08:
        out.append((5, 2 if rng.random() < 0.7 else 1, min(95, _heap(rng, head_age + int(rng.integers(18, 36))))))
    if rng.random() < 0.14:
        for _ in range(1 + int(rng.poisson(0.5))):
            out.append((6, int(rng.integers(1, 3)), max(5, _heap(rng, head_age + int(rng.integers(-12, 13))))))
    if rng.random() < 0.12 or rare:
        for _ in range(1 + int(rng.poisson(0.4 if not rare else 2.0))):
            out.append((7, int(rng.integers(1, 3)), _heap(rng, int(rng.integers(0, 71)))))
    if rng.random() < 0.04:
        out.append((8, int(rng.integers(1, 3)), int(rng.integers(10, 41))))
    if rare:
        while len(out) < 11:
            out.append((7, int(rng.integers(1, 3)), int(rng.integers(0, 31))))
    return out[:18]


def generate_survey(n_households: int = 2000, seed: int = 20261122) -> Dataset:
    """A synthetic refugee household survey, one row per person (about 5 per household).

    The same `seed` gives byte-identical frames. See the module docstring for what is in it.
    """
    if n_households < 1:
        raise ValueError("n_households must be at least 1")
    rng = np.random.default_rng(seed)
    site_codes = list(SITES)
    shares = np.array([SITES[c][3] for c in site_codes])
    shares = shares / shares.sum()
    # design: base weight per site (population households / expected sample), a factor per block
    base_weight = {c: SITES[c][4] / (n_households * shares[i]) for i, c in enumerate(site_codes)}
    block_factor = {(c, b): float(rng.uniform(0.85, 1.2)) for c in site_codes for b in range(1, SITES[c][5] + 1)}
    n_rare = max(1, n_households // 400) if n_households >= 50 else 0
    rare_idx = set(int(i) for i in rng.choice(n_households, size=n_rare, replace=False))

    cols: dict[str, list] = {name: [] for name in _COLUMNS}
    for h in range(n_households):
        rare = h in rare_idx
        camp = int(rng.choice(site_codes, p=shares))
        if rare:
            origin = int(rng.choice(RARE_ORIGINS))
        else:
            mix = np.array(SITE_ORIGIN_MIX[camp])
            origin = int(rng.choice(8, p=mix / mix.sum())) + 1
        arrival = _arrival(rng, origin)
        block = int(rng.integers(1, SITES[camp][5] + 1))
        _, lat0, lon0, *_ = SITES[camp]
        lat = round(lat0 + float(rng.normal(0, 0.012)), 6)
        lon = round(lon0 + float(rng.normal(0, 0.012)), 6)
        weight = round(base_weight[camp] * block_factor[(camp, block)], 4)
        members = _members(rng, rare)
        size = len(members)
        years_here = SURVEY_YEAR - arrival

        # livelihood: recent arrivals rely on assistance; urban site trades more
        p = np.array([0.45, 0.20, 0.17, 0.10, 0.04, 0.04])
        if years_here >= 5:
            p = p * np.array([0.5, 1.6, 1.2, 1.3, 1.5, 1.0])
        if camp == 8:
            p = p * np.array([0.6, 0.2, 1.5, 2.0, 1.8, 1.5])
        livelihood = int(rng.choice(6, p=p / p.sum())) + 1
        if livelihood == 1:
            income: float | None = 0.0 if rng.random() < 0.85 else float(round(rng.lognormal(np.log(8), 0.5)))
        else:
            income = float(round(rng.lognormal(np.log(_INCOME_MEDIAN[livelihood]), 0.7)))
            if rng.random() < 0.12:
                income = 0.0  # no income last month
        if rng.random() < 0.03:
            income = None  # refused
        eligible = rng.random() < (0.95 if years_here < 3 else 0.80 if livelihood in (1, 2, 3) else 0.55)
        assistance = round(_TRANSFER_PER_PERSON * size * float(rng.uniform(0.9, 1.1)), 2) if eligible else 0.0
        # documentation: recent arrivals are often still asylum seekers or unregistered
        if years_here < 2:
            pl_ = [0.25, 0.45, 0.05, 0.25]
        elif years_here < 5:
            pl_ = [0.65, 0.20, 0.10, 0.05]
        else:
            pl_ = [0.80, 0.03, 0.15, 0.02]
        hh_legal = int(rng.choice(4, p=pl_)) + 1
        name = _fake_name(rng)
        phone = _fake_phone(rng)
        hhid = 10001 + h
        head_sex = members[0][1]

        for line, (rel, sex, age) in enumerate(members, start=1):
            if rel == 1:
                if any(r == 2 for r, _, _ in members):
                    marital = 2
                elif head_sex == 2:
                    marital = int(rng.choice([1, 2, 3, 4], p=[0.10, 0.30, 0.25, 0.35]))
                else:
                    marital = int(
                        rng.choice([1, 2, 3, 4], p=[0.40, 0.20, 0.25, 0.15])
                        if age < 30
                        else rng.choice([1, 2, 3, 4], p=[0.10, 0.25, 0.30, 0.35])
                    )
            elif rel == 2:
                marital = 2
            elif rel == 5:
                marital = 4 if rng.random() < 0.7 else 2
            else:
                marital = _marital_other(rng, age)
            if age < 5:
                disability = None
            else:
                u = rng.random()
                disability = 98 if u < 0.01 else int(u < 0.01 + 0.03 + 0.005 * max(0, age - 40))
            if age < 12:
                incident = None
            else:
                p_yes = 0.05 + (0.06 if sex == 2 and 15 <= age <= 35 else 0.0) + (0.04 if years_here < 2 else 0.0)
                u = rng.random()
                incident = 99 if u < 0.02 else 98 if u < 0.03 else int(u < 0.03 + p_yes)
            legal = (
                hh_legal
                if rng.random() < 0.9
                else int(rng.choice([1, 2, 3, 4, 98, 99], p=[0.3, 0.2, 0.2, 0.2, 0.05, 0.05]))
            )
            row = {
                "hhid": hhid,
                "head_name": name,
                "phone": phone,
                "gps_lat": lat,
                "gps_lon": lon,
                "camp": camp,
                "stratum": camp,
                "cluster": camp * 100 + block,
                "origin": origin,
                "arrival_year": arrival,
                "hh_size": size,
                "livelihood": livelihood,
                "income": income,
                "assistance": assistance,
                "weight": weight,
                "line_no": line,
                "relationship": rel,
                "sex": sex,
                "age": age,
                "marital": marital,
                "education": _education(rng, age, sex, origin),
                "disability": disability,
                "legal_status": legal,
                "protection_incident": incident,
            }
            for k, v in row.items():
                cols[k].append(v)

    frame = pl.DataFrame({k: pl.Series(k, cols[k], dtype=_COLUMNS[k][0]) for k in _COLUMNS})
    codebook = Codebook(file_label="Synthetic refugee household survey (safemicro example, not real data)")
    for name, (_, label, measure, labels, missing) in _COLUMNS.items():
        codebook.variables[name] = VariableMeta(
            name=name,
            label=label,
            value_labels=dict(labels),
            missing_values=list(missing),
            measure=measure,
        )
    codebook.notes.append(f"safemicro example survey: {n_households} households, seed {seed}")
    return Dataset(frame=frame, codebook=codebook, source=None)


_SITE_LABELS = {c: v[0] for c, v in SITES.items()}

# name: (dtype, variable label, measure, value labels, user-missing codes)
_COLUMNS: dict[str, tuple] = {
    "hhid": (pl.Int32, "Household identifier", "nominal", {}, []),
    "head_name": (pl.String, "Name of the head of household (fake)", "nominal", {}, []),
    "phone": (pl.String, "Phone number of the household (fake, +999)", "nominal", {}, []),
    "gps_lat": (pl.Float64, "GPS latitude of the dwelling", "scale", {}, []),
    "gps_lon": (pl.Float64, "GPS longitude of the dwelling", "scale", {}, []),
    "camp": (pl.Int32, "Camp or settlement", "nominal", _SITE_LABELS, []),
    "stratum": (pl.Int32, "Sampling stratum (site)", "nominal", _SITE_LABELS, []),
    "cluster": (pl.Int32, "Sampling cluster (block within site)", "nominal", {}, []),
    "origin": (pl.Int32, "Country of origin", "nominal", ORIGINS, []),
    "arrival_year": (pl.Int32, "Year of arrival in the country of asylum", "ordinal", {}, []),
    "hh_size": (pl.Int32, "Household size (members)", "scale", {}, []),
    "livelihood": (pl.Int32, "Main source of household income", "nominal", LIVELIHOOD, []),
    "income": (pl.Float64, "Household income last month (USD)", "scale", {}, []),
    "assistance": (pl.Float64, "Cash assistance received last month (USD)", "scale", {}, []),
    "weight": (pl.Float64, "Household sampling weight", "scale", {}, []),
    "line_no": (pl.Int32, "Member line number in the household roster", "scale", {}, []),
    "relationship": (pl.Int32, "Relationship to the head of household", "nominal", RELATIONSHIP, []),
    "sex": (pl.Int32, "Sex", "nominal", SEX, []),
    "age": (pl.Int32, "Age in completed years", "scale", {}, []),
    "marital": (pl.Int32, "Marital status (12 years and older)", "nominal", MARITAL, []),
    "education": (pl.Int32, "Highest level of education completed (6 years and older)", "ordinal", EDUCATION, []),
    "disability": (
        pl.Int32,
        "Disability: a lot of difficulty or cannot do in any Washington Group domain (5+)",
        "nominal",
        YES_NO_DK,
        [98],
    ),
    "legal_status": (pl.Int32, "Legal status and documentation", "nominal", LEGAL_STATUS, [98, 99]),
    "protection_incident": (
        pl.Int32,
        "Experienced a protection incident in the last 12 months (12+)",
        "nominal",
        YES_NO_DK_REF,
        [98, 99],
    ),
}


def write_example(path: str | os.PathLike[str], n_households: int = 2000, seed: int = 20261122) -> Path:
    """Generate the survey and write it with :func:`safemicro.io.write` (.dta/.sav/.csv/.parquet)."""
    from safemicro.io import write

    dataset = generate_survey(n_households=n_households, seed=seed)
    return Path(write(dataset, path))


__all__ = ["generate_survey", "write_example", "SITES", "ORIGINS"]
