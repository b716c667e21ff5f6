"""Time k-anonymity on every m-combination of keys, mu-Argus unsafe cells and local
suppression to k on every m-combination, on the scaled copies of testdata (7 keys).

sdcMicro's timings (tests/data/sdcmicro_reference/timings_sdcmicro.csv) have no run of
``kAnon(combs=)`` or ``riskyCells``; its ``localSuppression`` (all 7 keys at once, k = 3) and
``freqCalc`` are printed beside for scale.

    python bench/bench_combinations.py [--sizes 4580,100000,1000000] [--m 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_assess import KEYS7, best_of, data_file, sdcmicro_timings  # noqa: E402


def main() -> None:
    import polars as pl

    from safemicro.io import Dataset
    from safemicro.keys import build_key_table
    from safemicro.methods import suppress_combinations
    from safemicro.risk.combinations import kanon_combinations, risky_cells

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    p.add_argument("--m", type=int, default=3)
    a = p.parse_args()
    ref = sdcmicro_timings()
    print(f"{'rows':>9} {'call':<34} {'seconds':>8}  sdcMicro (runs)")
    for n in [int(s) for s in a.sizes.split(",")]:
        df = pl.read_parquet(data_file(n, 0.0))
        t_kt = best_of(lambda: build_key_table(df.select(KEYS7), KEYS7))
        kt = build_key_table(df.select(KEYS7), KEYS7)
        t_k = best_of(lambda: kanon_combinations(kt, a.m, 3))
        t_c = best_of(lambda: risky_cells(kt, [20, 10, 5]))
        ds = Dataset(df)
        t0 = time.perf_counter()
        res = suppress_combinations(ds, keys=KEYS7, combs=a.m, k=3)
        t_s = time.perf_counter() - t0
        fmt = lambda call: ", ".join(f"{s:g}" for s, _ in ref.get((call, n), [])) or "-"  # noqa: E731
        print(f"{n:>9} {'key table (group-by, once)':<34} {t_kt:8.3f}  freqCalc {fmt('freqCalc')}")
        print(f"{n:>9} {f'k-anonymity on all {a.m}-combinations':<34} {t_k:8.3f}  kAnon(combs) not timed")
        print(f"{n:>9} {'riskyCells thresholds 20,10,5':<34} {t_c:8.3f}  riskyCells not timed")
        print(
            f"{n:>9} {f'suppression to k=3 on {a.m}-combs':<34} {t_s:8.3f}  localSuppression (all keys) "
            f"{fmt('localSuppression')}; {res.change.details['cells_suppressed']} cells"
        )


if __name__ == "__main__":
    main()
