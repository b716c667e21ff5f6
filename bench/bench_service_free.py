"""Fresh free (undeclared) queries decided in-process, one at a time (issue 13).

Builds the node of bench_service_mix.py (the example survey, threshold 10, secondary
suppression, the differencing ledgers) without HTTP and answers the SDC queries among the
first `--queries` fresh queries of the mix in order, timing each `Node.query` (protection,
ledger checks, storage, audit). Prints p50/p95/mean, the status codes and the ledger's
size at the end: the cost of the exact differencing search as the ledger grows, without
the queueing and client timeouts of the HTTP bench.

    .venv/bin/python bench/bench_service_free.py [--queries 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service_mix import fresh_queries, repeated_queries, setup  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=60, help="fresh queries of the mix (the SDC ones are timed)")
    args = ap.parse_args()
    from safemicro.service.config import load_config
    from safemicro.service.node import Node, Refusal
    from safemicro.service.queries import Query

    with tempfile.TemporaryDirectory(prefix="bench-free-") as tmp:
        cfg, tok, _ = setup(Path(tmp), None)
        node = Node(load_config(cfg))
        who = node.authenticate(tok, "/v1/query")
        todo = repeated_queries()[:4] + [q for q in fresh_queries(args.queries, seed=11) if q["dataset"] == "survey"]
        print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        lat, codes = [], {}
        for q in todo:
            t = time.perf_counter()
            try:
                node.query(who, Query(**q))
                code = 200
            except Refusal as r:
                code = r.status
            lat.append((time.perf_counter() - t) * 1000)
            codes[code] = codes.get(code, 0) + 1
        guard = node.guards["survey"]
        x = np.asarray(lat)
        print(
            f"{len(x)} SDC queries: p50 {np.median(x):.0f} ms, p95 {np.percentile(x, 95):.0f} ms, "
            f"mean {x.mean():.0f} ms, max {x.max():.0f} ms; codes {dict(sorted(codes.items()))}; "
            f"ledger {guard.atoms} atoms, rank {guard.rank}; searches skipped {guard.shortcuts}, "
            f"blocks proved without empty classes {guard.proved_without_empty}, "
            f"out of time {guard.undecided} (budget {guard.search_seconds:g} s)"
        )
        print(f"load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        node.close()


if __name__ == "__main__":
    main()
