"""Time the attribute-disclosure measures on scaled testdata.

7 keys (urbrur roof walls water electcon relat sex); sensitive hhcivil and income (ordered
EMD: income has thousands of distinct values, the hard case). sdcMicro has no t-closeness.

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


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    import polars as pl

    from safemicro.risk.attribute import attribute_disclosure

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    a = p.parse_args()
    print(f"{'rows':>9} {'attribute s':>12}")
    for n in (int(s) for s in a.sizes.split(",")):
        df = pl.read_parquet(data_file(n, 0.0))
        distance = {"hhcivil": "ordered", "income": "ordered"}
        t_attr = timed(lambda: attribute_disclosure(df, KEYS7, ["hhcivil", "income"], distance=distance))
        print(f"{n:>9} {t_attr:>12.3f}")


if __name__ == "__main__":
    main()
