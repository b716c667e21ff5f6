"""Time the population measures (k-map, δ-presence) and the robust numeric-key tools on the
scaled copies of testdata: 7 keys; numeric keys expend, income, savings.

Population: the scaled file of N rows; release: a 10 % simple random sample of it (and the
whole file against itself, the heaviest join). Robust: MCD distances + dRiskRMD against a
1 %-noise copy, mv_topcoding, optimal univariate microaggregation of income (k = 3).
sdcMicro's timings (tests/data/sdcmicro_reference/timings_sdcmicro.csv) have none of these
calls; its ``mdav`` (multivariate microaggregation, k = 3) is printed beside for scale.

    python bench/bench_population_robust.py [--sizes 4580,100000,1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_assess import KEYS7, best_of, data_file, sdcmicro_timings  # noqa: E402

NUMS = ["expend", "income", "savings"]


def main() -> None:
    import numpy as np
    import polars as pl

    from safemicro.io import Dataset
    from safemicro.methods import microaggregation_optimal, mv_top_code
    from safemicro.risk.numeric_robust import rmd_disclosure, robust_distances
    from safemicro.risk.population import population_risk

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    a = p.parse_args()
    ref = sdcmicro_timings()
    print(f"{'rows':>9} {'call':<44} {'seconds':>8}  sdcMicro")
    for n in [int(s) for s in a.sizes.split(",")]:
        df = pl.read_parquet(data_file(n, 0.0))
        pop = df.select(KEYS7)
        sample = pop.sample(fraction=0.1, seed=1)
        t_s = best_of(lambda: population_risk(sample, pop, KEYS7, k=3))
        t_p = best_of(lambda: population_risk(pop, pop, KEYS7, k=3), reps=1)
        x = df.select(NUMS).cast(pl.Float64).to_numpy()
        xm = x * np.exp(np.random.default_rng(2).normal(0, 0.01, x.shape))
        t0 = time.perf_counter()
        _, _, d2 = robust_distances(x)
        t_mcd = time.perf_counter() - t0
        t_rmd = best_of(lambda: rmd_disclosure(x, xm, d2), reps=1)
        ds = Dataset(df)
        t0 = time.perf_counter()
        res = mv_top_code(ds, variables=NUMS)
        t_mv = time.perf_counter() - t0
        microaggregation_optimal(Dataset(df.head(100)), variables=["income"])  # compile once
        t0 = time.perf_counter()
        microaggregation_optimal(ds, variables=["income"], k=3)
        t_opt = time.perf_counter() - t0
        mdav = ", ".join(f"{s:g}" for s, _ in ref.get(("mdav", n), [])) or "-"
        print(f"{n:>9} {'k-map + δ-presence, 10 % sample vs population':<44} {t_s:8.3f}  not timed")
        print(f"{n:>9} {'k-map + δ-presence, whole file vs itself':<44} {t_p:8.3f}  not timed")
        print(f"{n:>9} {'MCD robust distances (3 numeric keys)':<44} {t_mcd:8.3f}  dRiskRMD not timed")
        print(f"{n:>9} {'dRiskRMD given the distances':<44} {t_rmd:8.3f}  not timed")
        print(
            f"{n:>9} {'mv_topcoding (MCD + projection)':<44} {t_mv:8.3f}  mvTopCoding not timed; "
            f"{res.change.details['n_coded']} coded"
        )
        print(f"{n:>9} {'microaggregation_optimal income k=3':<44} {t_opt:8.3f}  mdav (3 vars) {mdav}")


if __name__ == "__main__":
    main()
