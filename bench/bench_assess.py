"""Time safemicro's risk assessment against sdcMicro's timings on the same machine kind.

Builds scaled copies of testdata (bench/scaled.py, the recipe of
tests/data/sdcmicro's timing copy) at 4 580, 100 000 and 1 000 000 rows, with and without
1 % missing key cells (cached as Parquet in bench/data/), and times each call in a fresh
process that reads the file (wall: best of 3 after a warm-up; peak memory: the process's
max RSS, as sdcMicro's numbers are). Prints each
time next to sdcMicro's two runs and the ratio against the faster of them.

    python bench/bench_assess.py [--sizes 4580,100000,1000000] [--json results.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMINGS = HERE.parent / "tests" / "data" / "sdcmicro_reference" / "timings_sdcmicro.csv"
KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]

# our call -> (sdcMicro call it corresponds to, what it computes)
CASES = {
    "key_table": ("freqCalc", "fk, Fk on 7 keys with weights"),
    "key_table_na": ("freqCalc_na", "fk, Fk with 1 % missing key cells (NA wildcards)"),
    "assess": ("measure_risk", "7 keys, weight, household: fk, Fk, individual/global/household risk"),
    "suda2": ("suda2", "SUDA2 scores and DIS-SUDA on 7 keys"),
    "ldiversity": ("ldiversity", "l-diversity (distinct/entropy/recursive) of hhcivil on 7 keys"),
}


def data_file(n: int, missing: float) -> Path:
    """The scaled copy as Parquet in bench/data/ (made once), so that a timed process
    holds only the data it works on, as sdcMicro's processes did."""
    path = HERE / "data" / f"testdata_{n}_{missing:g}.parquet"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from scaled import scaled_testdata

        path.parent.mkdir(exist_ok=True)
        scaled_testdata(n, missing_share=missing).write_parquet(path)
    return path


def best_of(fn, reps: int = 3) -> float:
    """Seconds of the fastest of ``reps`` calls after a warm-up call."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_case(case: str, n: int, reps: int = 3) -> dict:
    """Runs inside a fresh process: build data, warm up, time the best of ``reps``."""
    import numpy as np
    import polars as pl

    from safemicro.assess import assess
    from safemicro.io import Dataset
    from safemicro.keys import build_key_table
    from safemicro.risk.ldiversity import ldiversity
    from safemicro.risk.suda2 import suda2

    df = pl.read_parquet(data_file(n, 0.01 if case == "key_table_na" else 0.0))
    w = df["sampling_weight"].to_numpy().astype(np.float64)
    calls = {
        "key_table": lambda: build_key_table(df, KEYS7, w),
        "key_table_na": lambda: build_key_table(df, KEYS7, w),
        "assess": lambda: assess(Dataset(df), keys=KEYS7, weight="sampling_weight", household="ori_hid"),
        "suda2": lambda: suda2(df, KEYS7),
        "ldiversity": lambda: ldiversity(df, KEYS7, ["hhcivil"]),
    }
    best = best_of(calls[case], reps)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": case, "rows": n, "seconds": best, "max_rss_kb": rss_kb}


def sdcmicro_timings() -> dict[tuple[str, int], list[tuple[float, int]]]:
    out: dict[tuple[str, int], list[tuple[float, int]]] = {}
    with TIMINGS.open() as f:
        for row in csv.DictReader(f):
            out.setdefault((row["call"], int(row["rows"])), []).append((float(row["seconds"]), int(row["max_rss_kb"])))
    return out


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
    header = f"{'call':<13} {'rows':>9} {'safemicro s':>12} {'sdcMicro s':>15} {'speed-up':>9} {'MB ours':>8} {'MB sdcMicro':>12}"
    print(header)
    print("-" * len(header))
    for n in [int(s) for s in a.sizes.split(",")]:
        for missing in (0.0, 0.01):
            data_file(n, missing)
        for case in a.cases.split(","):
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", case, str(n)], capture_output=True, text=True, check=True
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            theirs = ref.get((CASES[case][0], n), [])
            if theirs:
                fastest = min(t for t, _ in theirs)
                r["sdcmicro_seconds"] = [t for t, _ in theirs]
                r["speedup_vs_fastest"] = fastest / r["seconds"]
                r["sdcmicro_max_rss_kb"] = min(m for _, m in theirs)
                their_s = "–".join(f"{t:g}" for t, _ in theirs)
                ratio = f"{r['speedup_vs_fastest']:.0f}×"
                their_mb = f"{r['sdcmicro_max_rss_kb'] / 1024:.0f}"
            else:
                their_s, ratio, their_mb = "n/a", "", ""
            results.append(r)
            print(
                f"{case:<13} {n:>9,} {r['seconds']:>12.4f} {their_s:>15} {ratio:>9} "
                f"{r['max_rss_kb'] / 1024:>8.0f} {their_mb:>12}",
                flush=True,
            )
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
