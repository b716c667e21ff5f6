"""Scaled, perturbed copies of sdcMicro's testdata for timing runs.

The recipe of the 100 000-row timing copy in sdcMicro's data README (tests/data/sdcmicro): whole households drawn with replacement
(new household ids, rows truncated to exactly N), then with one seed: each household-level
key (urbrur roof walls water electcon) replaced with probability 0.10 per household by a
draw from its marginal; relat, sex, hhcivil likewise per person; age + uniform integer
noise in -2..2 (floored at 0); expend, income, savings x exp(N(0, 0.1)), rounded; one
sampling weight per household round(100·exp(N(0, 0.3))); household_weights copied.
Optionally a share of key cells is set missing, for the NA-wildcard timings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

TESTDATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "sdcmicro" / "testdata.csv"
HH_KEYS = ["urbrur", "roof", "walls", "water", "electcon"]
PERSON_KEYS = ["relat", "sex", "hhcivil"]
KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def scaled_testdata(n: int, seed: int = 20240601, missing_share: float = 0.0) -> pl.DataFrame:
    base = pl.read_csv(TESTDATA)
    rng = np.random.default_rng(seed)
    hh_ids = base["ori_hid"].to_numpy()
    uniq, start, size = np.unique(hh_ids, return_index=True, return_counts=True)
    # draw households until n rows are covered
    mean_size = size.mean()
    draws = rng.integers(0, len(uniq), size=int(n / mean_size * 1.2) + 10)
    while size[draws].sum() < n:
        draws = np.concatenate([draws, rng.integers(0, len(uniq), size=len(draws) // 2 + 1)])
    sizes = size[draws]  # the rows of each drawn household, vectorised
    rows = np.repeat(start[draws] - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
    new_hid = np.repeat(np.arange(1, len(draws) + 1), size[draws])
    rows, new_hid = rows[:n], new_hid[:n]
    df = base.select(pl.all().gather(rows)).with_columns(pl.Series("ori_hid", new_hid))
    n_hh = int(new_hid.max())
    hh_index = new_hid - 1
    cols = {}
    for name in HH_KEYS:
        x = df[name].to_numpy().copy()
        replace = (rng.random(n_hh) < 0.10)[hh_index]
        x[replace] = rng.choice(base[name].to_numpy(), size=int(replace.sum()))
        cols[name] = x
    for name in PERSON_KEYS:
        x = df[name].to_numpy().copy()
        replace = rng.random(n) < 0.10
        x[replace] = rng.choice(base[name].to_numpy(), size=int(replace.sum()))
        cols[name] = x
    cols["age"] = np.maximum(df["age"].to_numpy() + rng.integers(-2, 3, size=n), 0)
    for name in ["expend", "income", "savings"]:
        cols[name] = np.round(df[name].to_numpy() * np.exp(rng.normal(0, 0.1, size=n)))
    cols["sampling_weight"] = np.round(100 * np.exp(rng.normal(0, 0.3, size=n_hh)))[hh_index]
    df = df.with_columns([pl.Series(k, v) for k, v in cols.items()])
    if missing_share > 0:
        df = df.with_columns(
            [pl.when(pl.Series(rng.random(n) < missing_share)).then(None).otherwise(pl.col(k)).alias(k) for k in KEYS7]
        )
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("n", type=int)
    p.add_argument("out", type=Path)
    p.add_argument("--missing", type=float, default=0.0)
    a = p.parse_args()
    scaled_testdata(a.n, missing_share=a.missing).write_parquet(a.out)


if __name__ == "__main__":
    main()
