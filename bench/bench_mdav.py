"""Time safemicro's MDAV microaggregation against sdcMicro's, the fast variant's loss, and
the robust and weighted microaggregation and the noise variants.

Data (expend, income, savings; k = 3): testdata itself at 4 580 rows and
``testdata_scaled_100k.csv.gz`` at 100 000 rows, the inputs sdcMicro's timings were taken
on (bench/datafiles.py: made by the same recipe when that file is not beside the clone); at 1 000 000 rows the scaled copy of bench/scaled.py (cached in bench/data/ by
bench_assess.data_file). Each case runs in a fresh process that reads its file, calls
once to warm up (numba's compiled kernels come from its disk cache), then keeps the best
of 3 wall times; memory is the process's max RSS. Prints each time next to sdcMicro's two
runs (``mdav``) and the speed-up against the faster one, and the information loss IL1s
(Σ|x − x'|/(sd·√2), sd of the original) with each microaggregation's ratio to exact MDAV.
sdcMicro's timings have no ``rmd``, weighted or ``addNoise`` call ("n/a").

    python bench/bench_mdav.py [--sizes 4580,100000,1000000] [--cases mdav,mdav_fast,rmd,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_assess import data_file, sdcmicro_timings  # noqa: E402
from datafiles import carried, scaled_100k  # noqa: E402

NV = ["expend", "income", "savings"]
CASES = {
    "mdav": "exact MDAV (sdcMicro's)",
    "mdav_fast": "MDAV within principal-axis blocks",
    "mdav_weighted": "exact MDAV groups, means weighted by sampling_weight",
    "rmd": "MDAV around the MCD centre in the robust Mahalanobis metric",
    "noise_restricted": "correlated noise (amount 0.01), mean and covariance restored exactly",
    "noise_romm": "random orthogonal matrix masking, blocks of 50 (amount 0.01)",
    "noise_outdect": "noise 0.01·sd, 0.05·sd on robust outliers",
}
MICROAGGREGATION = ("mdav", "mdav_fast", "mdav_weighted", "rmd")


def input_file(n: int) -> Path:
    if n == 4580:
        return carried("sdcmicro", "testdata.csv")
    if n == 100_000:
        return scaled_100k()
    return data_file(n, 0.0)


def run_case(case: str, n: int, reps: int = 3) -> dict:
    """Runs inside a fresh process: read the data, warm up, time the best of ``reps``."""
    import polars as pl

    from safemicro.io import Dataset
    from safemicro.methods.aggregation import microaggregation
    from safemicro.methods.perturb import add_noise
    from safemicro.utility.numeric import il1s

    path = input_file(n)
    df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    ds = Dataset(df)

    def call():
        if case.startswith("noise_"):
            return add_noise(ds, variables=NV, amount=0.01, method=case[6:], seed=1)
        method = {"mdav_fast": "fast", "rmd": "rmd"}.get(case, "mdav")
        weights = "sampling_weight" if case == "mdav_weighted" else None
        return microaggregation(ds, variables=NV, k=3, method=method, weights=weights)

    result = call()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss = il1s(df.select(NV).to_numpy(), result.dataset.frame.select(NV).to_numpy())
    return {
        "case": case,
        "rows": n,
        "seconds": best,
        "max_rss_kb": rss_kb,
        "il1s": loss,
        "groups": result.change.details.get("n_groups"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--worker", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(run_case(a.worker[0], int(a.worker[1]))))
        return
    ref = sdcmicro_timings()
    results = []
    header = (
        f"{'call':<16} {'rows':>9} {'safemicro s':>12} {'sdcMicro s':>15} {'speed-up':>9} "
        f"{'MB ours':>8} {'IL1s':>12} {'IL1s/exact':>10}"
    )
    print(header)
    print("-" * len(header))
    for n in [int(s) for s in a.sizes.split(",")]:
        input_file(n)  # build the cached copy outside the timed process
        exact_loss = None
        for case in a.cases.split(","):
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", case, str(n)], capture_output=True, text=True, check=True
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            theirs = ref.get(("mdav", n), []) if case == "mdav" else []
            if theirs:
                fastest = min(t for t, _ in theirs)
                r["sdcmicro_seconds"] = [t for t, _ in theirs]
                r["speedup_vs_fastest"] = fastest / r["seconds"]
                their_s = "–".join(f"{t:g}" for t, _ in theirs)
                ratio = f"{r['speedup_vs_fastest']:.0f}×"
            else:
                their_s, ratio = ("not feasible" if case == "mdav" and n >= 1_000_000 else "n/a"), ""
            if case == "mdav":
                exact_loss = r["il1s"]
            vs_exact = exact_loss and case in MICROAGGREGATION
            rel = f"{r['il1s'] / exact_loss:.4f}" if vs_exact else ""
            r["il1s_vs_exact"] = r["il1s"] / exact_loss if vs_exact else None
            results.append(r)
            print(
                f"{case:<16} {n:>9,} {r['seconds']:>12.4f} {their_s:>15} {ratio:>9} "
                f"{r['max_rss_kb'] / 1024:>8.0f} {r['il1s']:>12.1f} {rel:>10}",
                flush=True,
            )
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
