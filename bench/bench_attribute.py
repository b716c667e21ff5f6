"""Time the attribute-disclosure measures, and aiming at them, on scaled testdata.

7 keys (urbrur roof walls water electcon relat sex); sensitive hhcivil and income (ordered
EMD: income has thousands of distinct values, the hard case). Then the targets:
``target_suppression`` to t-closeness ≤ 0.6 (hhcivil, equal distance) on the 7 keys;
``recode_search`` on keys urbrur water relat sex age (hierarchies for water, relat, age) to
3-anonymity plus t-closeness ≤ 0.6, and plus k-map ≥ 10 against a population (the scaled
file of that size; the data a 10 % sample of it). sdcMicro has no t-closeness or k-map.

    flock /work/wt/bigmem.lock /usr/bin/time -v python bench/bench_attribute.py [--sizes 4580,100000,1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_assess import KEYS7, data_file  # noqa: E402

SEARCH_KEYS = ["urbrur", "water", "relat", "sex", "age"]
HIERARCHIES = {
    "water": [{1: 1, 2: 1, 3: 3, 4: 3, 5: 5, 6: 5, 7: 5, 9: 5}, {v: 1 for v in (1, 2, 3, 4, 5, 6, 7, 9)}],
    "relat": [{4: 9, 5: 9, 6: 9, 7: 9, 8: 9}, {3: 9, 4: 9, 5: 9, 6: 9, 7: 9, 8: 9}],
    "age": [
        {"breaks": [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 200], "right": False},
        {"breaks": [0, 10, 20, 30, 40, 50, 60, 200], "right": False},
        {"breaks": [0, 20, 40, 60, 200], "right": False},
    ],
}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    import numpy as np
    import polars as pl

    from safemicro.io import Dataset
    from safemicro.methods import recode_search, target_suppression
    from safemicro.methods.search_targets import SearchTargets
    from safemicro.methods.target_classes import ClassTargets
    from safemicro.risk.attribute import attribute_disclosure

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    a = p.parse_args()
    print(
        f"{'rows':>9} {'attribute s':>12} {'t-suppr s':>10} {'touched':>8} "
        f"{'search+t s':>11} {'nodes':>7} {'search+kmap s':>14} {'nodes':>7}"
    )
    for n in (int(s) for s in a.sizes.split(",")):
        df = pl.read_parquet(data_file(n, 0.0))
        distance = {"hhcivil": "ordered", "income": "ordered"}
        t_attr, _ = timed(lambda: attribute_disclosure(df, KEYS7, ["hhcivil", "income"], distance=distance))
        ds = Dataset(df)
        t_sup, sup = timed(
            lambda: target_suppression(
                ds,
                keys=KEYS7,
                sensitive=["hhcivil"],
                t_closeness=0.6,
                distance={"hhcivil": "equal"},
                max_suppression=1.0,
            )
        )
        touched = sup.change.details["records_with_suppression"]
        targets = SearchTargets(ds, ClassTargets(t_closeness=0.6), sensitive=["hhcivil"], distance={"hhcivil": "equal"})
        t_st, st = timed(lambda: recode_search(ds, keys=SEARCH_KEYS, hierarchies=HIERARCHIES, k=3, targets=targets))
        rows = np.sort(np.random.default_rng(1).choice(n, max(n // 10, 100), replace=False))
        sample = Dataset(df[rows])
        kmap = SearchTargets(sample, ClassTargets(k_map=10), population=Dataset(df.select(SEARCH_KEYS)))
        t_km, km = timed(lambda: recode_search(sample, keys=SEARCH_KEYS, hierarchies=HIERARCHIES, k=3, targets=kmap))
        s1, s2 = st.change.details["search"], km.change.details["search"]
        print(
            f"{n:>9} {t_attr:>12.3f} {t_sup:>10.3f} {touched:>8} {t_st:>11.3f} "
            f"{s1['evaluated']:>3}/{s1['nodes']:<3} {t_km:>14.3f} {s2['evaluated']:>3}/{s2['nodes']:<3}"
        )


if __name__ == "__main__":
    main()
