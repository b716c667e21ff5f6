"""Time the differencing guard on 100 000 records: 300 queries, each checked against the
ledger of every released cell and committed when safe (target: under 30 s on 2 cores).

Moved here from the test suite, where a wall-clock bound fails on a busy machine; the
guard's answers are tested in tests/test_service_differencing.py against an oracle.

    python bench/bench_differencing.py [--records 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import polars as pl

from safemicro.service.differencing import DifferencingGuard

TARGET_S = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    n = args.records
    df = pl.DataFrame(
        {
            "admin2": rng.choice([f"a{i:02d}" for i in range(30)], n),
            "month": rng.integers(1, 13, n),
            "group": rng.choice(["idp", "refugee", "returnee", "host"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    guard = DifferencingGuard(df, threshold=10)
    start, cpu = time.perf_counter(), time.process_time()
    accepted = 0
    for _ in range(args.queries):
        unit = f"a{rng.integers(30):02d}"
        lo = int(rng.integers(1, 12))
        hi = int(rng.integers(lo, 13))
        cells = [
            {"admin2": {"in": [unit]}, "month": {"between": [lo, hi]}, "group": {"in": [g]}}
            for g in ("idp", "refugee", "returnee", "host")
        ]
        if guard.check(cells).ok:
            guard.commit(cells)
            accepted += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.2f}")
    print(
        f"{args.queries} queries of 4 cells on {n:,} records: {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"(target {TARGET_S:.0f} s); {accepted} accepted"
    )


if __name__ == "__main__":
    main()
