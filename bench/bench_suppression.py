"""Time local suppression against sdcMicro's localSuppression timings.

Uses the scaled copies of testdata made by bench_assess.py / scaled.py (cached as Parquet
in bench/data/), 7 keys, k = 3. Each case runs in a fresh process that reads the file and
times the call (best of 3 after a warm-up); prints the time, the cells suppressed, sdcMicro's
two runs and the speed-up against the faster of them.

    python bench/bench_suppression.py [--sizes 4580,100000,1000000] [--methods optimal,sdcmicro]
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

from bench_assess import KEYS7, data_file, sdcmicro_timings  # noqa: E402


def run_case(method: str, n: int, missing: float, reps: int = 3) -> dict:
    """Runs inside a fresh process."""
    import polars as pl

    from safemicro.io import Dataset
    from safemicro.methods.suppression import local_suppression

    ds = Dataset(pl.read_parquet(data_file(n, missing)))
    result = local_suppression(ds, keys=KEYS7, k=3, method=method)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        local_suppression(ds, keys=KEYS7, k=3, method=method)
        best = min(best, time.perf_counter() - t0)
    return {
        "method": method,
        "rows": n,
        "missing": missing,
        "seconds": best,
        "cells": result.change.details["cells_suppressed"],
        "unsafe_before": result.change.details["n_unsafe_records_before"],
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    p.add_argument("--methods", default="optimal,sdcmicro")
    p.add_argument("--missing", default="0,0.01", help="shares of missing key cells")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--worker", nargs=3, metavar=("METHOD", "N", "MISSING"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(run_case(a.worker[0], int(a.worker[1]), float(a.worker[2]))))
        return
    ref = sdcmicro_timings()
    header = (
        f"{'method':<9} {'rows':>9} {'NA':>5} {'seconds':>8} {'cells':>6} {'unsafe':>7} "
        f"{'sdcMicro s':>13} {'speed-up':>9} {'MB':>5}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for n in [int(s) for s in a.sizes.split(",")]:
        for missing in [float(s) for s in a.missing.split(",")]:
            data_file(n, missing)
            for method in a.methods.split(","):
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", method, str(n), str(missing)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                theirs = [t for t, _ in ref.get(("localSuppression", n), [])]
                if theirs and missing == 0:  # sdcMicro was timed on the complete copies
                    r["sdcmicro_seconds"] = theirs
                    r["speedup_vs_fastest"] = min(theirs) / r["seconds"]
                    their_s = "–".join(f"{t:g}" for t in theirs)
                    ratio = f"{r['speedup_vs_fastest']:.0f}×"
                else:
                    their_s, ratio = "n/a", ""
                results.append(r)
                print(
                    f"{method:<9} {n:>9,} {missing:>5g} {r['seconds']:>8.3f} {r['cells']:>6} "
                    f"{r['unsafe_before']:>7} {their_s:>13} {ratio:>9} {r['max_rss_kb'] / 1024:>5.0f}",
                    flush=True,
                )
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
