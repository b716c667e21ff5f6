"""Time targeted record swapping (and its table information loss) on scaled testdata.

testdata has no geography, so its household-level urbrur > water play a two-level
hierarchy; household size is the similarity profile, relat, sex, hhcivil the risk
variables, k = 3, swap rate 5 % (urbrur and water made one value per household: the
scaled copies redraw them per record in 10 % of households) (the settings of tests/test_record_swap.py). Prints the time
(best of 2 after a warm-up), the households swapped and sdcMicro's ``recordSwap`` time on
the same rows when tests/data/sdcmicro_reference/timings_sdcmicro.csv has one.

    flock /work/wt/bigmem.lock /usr/bin/time -v python bench/bench_record_swap.py [--sizes 4580,100000,1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_assess import data_file, sdcmicro_timings  # noqa: E402


def run(n: int, reps: int = 2) -> dict:
    import polars as pl

    from safemicro.io import Dataset
    from safemicro.methods import record_swap
    from safemicro.utility.info_loss import table_info_loss

    # scaled.py redraws a household-level key per record for 10 % of households: take the
    # first member's value so the geography is one per household again
    df = pl.read_parquet(data_file(n, 0.0)).with_columns(
        pl.len().over("ori_hid").alias("hsize"), *(pl.col(c).first().over("ori_hid") for c in ("urbrur", "water"))
    )
    ds = Dataset(df)
    kwargs = dict(
        household="ori_hid",
        hierarchy=["urbrur", "water"],
        similar=[["hsize"]],
        risk_variables=["relat", "sex", "hhcivil"],
        k_anonymity=3,
        swaprate=0.05,
        seed=1,
    )
    result = record_swap(ds, **kwargs)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        result = record_swap(ds, **kwargs)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    table_info_loss(df, result.dataset.frame, ["water", "relat"])
    loss = time.perf_counter() - t0
    d = result.change.details
    return {
        "rows": n,
        "seconds": best,
        "info_loss_seconds": loss,
        "households": d["households"],
        **{k: d[k] for k in ("households_swapped", "no_donor")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    a = p.parse_args()
    ref = sdcmicro_timings()
    print(
        f"{'rows':>9} {'safemicro s':>12} {'infoLoss s':>11} {'households':>11} {'swapped':>8} {'no donor':>9}  sdcMicro recordSwap"
    )
    for n in (int(s) for s in a.sizes.split(",")):
        r = run(n)
        theirs = ref.get(("recordSwap", n))
        other = ", ".join(f"{s:.2f} s" for s, _ in theirs) if theirs else "no timing in the reference"
        print(
            f"{n:>9} {r['seconds']:>12.3f} {r['info_loss_seconds']:>11.3f} {r['households']:>11} "
            f"{r['households_swapped']:>8} {r['no_donor']:>9}  {other}"
        )


if __name__ == "__main__":
    main()
