"""Declared tables beside free queries, on the bundled example survey (issue 13).

Two nodes over the example forced-displacement survey (9 902 persons; threshold 10,
dominance and secondary suppression on; a DP copy with ε 0.5 per query), each under the mix
of bench_service_mix.py: `--clients` concurrent clients, 65 % repeated queries, 30 % fresh
ones (never asked before), 5 % bad tokens, then fresh queries only.

- tables: the survey declares `[camp, sex]`, `[camp, origin]`, `[origin, sex]`,
  `[livelihood, sex]` (sums and means of age and assistance) and `[year, camp]`; the node
  protects them jointly once at start-up (safemicro.service.tables) and answers by lookup.
  Fresh queries are declared tables, sub-tables and whole-row filters never asked before.
- free: the same survey answered query by query under the differencing guard (fresh queries
  of bench_service_mix.py), given `--free-seconds` per phase only: a fresh query takes
  about a second there.
- cell key: the same free queries (counts, crosstabs, sums and means), each filter and
  window cut to one value as the mode's default rule asks, on the survey protected by the
  cell key method instead (no ledger: counts by the ptable, sums and means by their largest
  contributions; safemicro.service.cell_key).

Prints p50/p95 per class, fresh queries/s and the machine load, and checks that the audit
log verifies and holds one entry per request sent.

    .venv/bin/python bench/bench_service_tables.py [--clients 20] [--requests 2000] [--fresh 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import cpu_seconds, serving  # noqa: E402
from bench_service_mix import fresh_queries, mixed, report, setup  # noqa: E402

MEASURES = ["age", "assistance"]
TABLES = [
    {"by": ["camp", "sex"], "measures": MEASURES},
    {"by": ["camp", "origin"], "measures": MEASURES},
    {"by": ["origin", "sex"], "measures": MEASURES},
    {"by": ["livelihood", "sex"], "measures": MEASURES},
    {"by": ["year", "camp"]},
]
VALUES = {
    "camp": [str(i) for i in range(1, 9)],
    "origin": [str(i) for i in range(1, 9)],
    "sex": ["1", "2"],
    "livelihood": [str(i) for i in range(1, 7)],
}


def tables_config(path: Path) -> None:
    """The bench's service config with the survey in declared-tables mode."""
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"]["survey"]["tables"] = TABLES
    path.write_text(yaml.safe_dump(cfg))


def cell_key_config(path: Path) -> None:
    """The bench's service config with the survey protected by the cell key method."""
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"]["survey"]["policy"] = {"threshold": 10, "protection": "cell_key", "cell_key": {"seed": 20261207}}
    path.write_text(yaml.safe_dump(cfg))


def single_valued(queries: list[dict]) -> list[dict]:
    """The queries with each filter and window cut to one value (the cell key mode's
    default rule; a window to its last year, or the survey's first arrival year, 2008, when
    it ends before: a single year the data has no bin for is refused), duplicates dropped."""
    out, seen = [], set()
    for q in queries:
        q = {**q, "filters": {d: v[:1] for d, v in q.get("filters", {}).items()}}
        if "time" in q:
            year = max(q["time"]["end"], "2008")
            q["time"] = {"start": year, "end": year}
        key = json.dumps(q, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(q)
    return out


def fresh_table_queries(n: int, seed: int, repeated: list[dict]) -> list[dict]:
    """`n` distinct queries on declared tables: a table or sub-table, a kind, whole-row
    filters on its dimensions; a fifth on the DP copy (as in bench_service_mix.py)."""
    rng = random.Random(seed)
    seen = {json.dumps(q, sort_keys=True) for q in repeated}
    out: list[dict] = []
    while len(out) < n:
        t = rng.choice(TABLES)
        by = [d for d in t["by"] if rng.random() < 0.8] or t["by"][:1]
        if rng.random() < 0.2:
            q: dict = {"dataset": "survey_dp", "kind": rng.choice(["count", "sum", "mean"]), "by": by}
            if q["kind"] != "count":
                q["measure"] = rng.choice(MEASURES)
        else:
            kinds = ["count"] + (["sum", "mean"] if t.get("measures") else []) + (["crosstab"] if len(by) > 1 else [])
            q = {"dataset": "survey", "kind": rng.choice(kinds), "by": by}
            if q["kind"] in ("sum", "mean"):
                q["measure"] = rng.choice(MEASURES)
            for d in by:
                if d in VALUES and rng.random() < 0.6:
                    q.setdefault("filters", {})[d] = sorted(rng.sample(VALUES[d], rng.randint(1, len(VALUES[d]) - 1)))
            if "year" in by and rng.random() < 0.5:
                a, b = sorted(rng.sample(range(2008, 2025), 2))  # the survey's arrival years
                q["time"] = {"start": str(a), "end": str(b)}
        if rng.random() < 0.3:
            q["margins"] = False
        key = json.dumps(q, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(q)
    return out


def run_mode(
    name: str,
    cfg: Path,
    folder: Path,
    tok: str,
    bad: str,
    fresh: list[dict],
    args,
    seconds: float,
    *,
    only: bool = True,
) -> None:
    from safemicro.service.audit import verify

    started = time.perf_counter()
    server: dict = {}
    with serving(cfg, folder, 1, tries=900, started=server) as url:
        print(
            f"\n== {name}: up in {time.perf_counter() - started:.1f} s; {args.clients} clients, DuckDB store, "
            f"1 server process; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )

        def phase(title: str, *a, **k) -> dict:
            """One run of `mixed`, reported with the CPU the server and these clients spent per request."""
            cpu = cpu_seconds(server["pid"]), sum(os.times()[:2])
            res = asyncio.run(mixed(url, tok, bad, *a, **k))
            report(title, res)
            n = max(1, sum(len(v) for v in res["lat"].values()))
            print(
                f"  CPU per request: server {(cpu_seconds(server['pid']) - cpu[0]) / n * 1000:.1f} ms, "
                f"clients {(sum(os.times()[:2]) - cpu[1]) / n * 1000:.1f} ms"
            )
            return res

        # a client gives up after `seconds` (a free query can wait far longer in the queue)
        mix = "mix (65 % repeated, 30 % fresh, 5 % bad token)"
        runs = [phase(mix, fresh[: args.requests], args.clients, args.requests, seconds, timeout=seconds)]
        if only:
            rest = fresh[args.requests :]
            runs.append(phase("fresh only", rest, args.clients, args.fresh, seconds, shares=(0, 1, 0), timeout=seconds))
        sent = sum(len(v) for r in runs for v in r["lat"].values())
        print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    kinds: dict[str, int] = {}
    for line in (folder / "audit.jsonl").read_text().splitlines():
        k = json.loads(line)["kind"]
        kinds[k] = kinds.get(k, 0) + 1
    per_request = kinds.get("request", 0) + kinds.get("auth", 0) + kinds.get("rejected", 0)
    rep = verify(folder / "audit.jsonl")
    print(
        f"audit: chain {'ok' if rep.ok else 'BROKEN: ' + rep.reason}, {rep.entries} entries; requests sent {sent}, "
        f"request/auth/rejected entries {per_request} ({'every request logged' if per_request == sent else 'MISMATCH'})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000, help="requests in the mixed phase")
    ap.add_argument("--fresh", type=int, default=1500, help="requests in the fresh-only phase")
    ap.add_argument("--seconds", type=float, default=40, help="time limit per phase (tables mode)")
    ap.add_argument("--free-seconds", type=float, default=15, help="time limit per phase (free mode); 0 skips it")
    ap.add_argument("--cell-key-seconds", type=float, default=40, help="time limit per phase (cell key); 0 skips it")
    args = ap.parse_args()
    from bench_service_mix import repeated_queries

    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        folder = Path(tmp) / "tables"
        folder.mkdir()
        cfg, tok, bad = setup(folder, None)
        tables_config(cfg)
        fresh = fresh_table_queries(args.requests + args.fresh + 100, seed=11, repeated=repeated_queries())
        run_mode("declared tables", cfg, folder, tok, bad, fresh, args, args.seconds)
        if args.cell_key_seconds > 0:
            folder = Path(tmp) / "cell_key"
            folder.mkdir()
            cfg, tok, bad = setup(folder, None)
            cell_key_config(cfg)
            fresh = single_valued(fresh_queries(2 * (args.requests + args.fresh) + 100, seed=11))
            run_mode("free queries, cell key", cfg, folder, tok, bad, fresh, args, args.cell_key_seconds)
        if args.free_seconds > 0:
            folder = Path(tmp) / "free"
            folder.mkdir()
            cfg, tok, bad = setup(folder, None)
            fresh = fresh_queries(args.requests + args.fresh + 100, seed=11)
            run_mode("free queries (mix only)", cfg, folder, tok, bad, fresh, args, args.free_seconds, only=False)


if __name__ == "__main__":
    main()
