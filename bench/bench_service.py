"""Load on the aggregate service over loopback: 20 async clients (httpx), bounded in count and time.

Starts `safemicro serve` on 127.0.0.1 with a generated displacement dataset (DuckDB store;
`--postgres URL` or `--postgres temp` for PostgreSQL), then runs three phases and prints queries per second and
p50/p99 latency of each:

- cached: a small set of queries asked again and again (the node re-serves the stored,
  signed release after authentication and audit logging);
- fresh: every query different (threshold/dominance/secondary suppression, differencing
  ledger check, release stored, audit entries; answers 200 or 409);
- dp: different DP queries until the dataset budget refuses (403 after that).

    .venv/bin/python bench/bench_service.py [--records 20000] [--requests 2000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(n: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    provinces = [f"P{i}" for i in range(1, 6)]
    districts = [(p, f"{p}D{j}") for p in provinces for j in range(1, 7)]
    idx = rng.integers(0, len(districts), n)
    return pl.DataFrame(
        {
            "person_id": [f"p{i:07d}" for i in range(n)],
            "province": [districts[i][0] for i in idx],
            "district": [districts[i][1] for i in idx],
            "arrival": [f"2024-{m:02d}-15" for m in rng.integers(1, 13, n)],
            "status": rng.choice(["refugee", "idp", "host", "returnee"], n, p=[0.4, 0.35, 0.2, 0.05]),
            "sex": rng.choice(["f", "m"], n),
            "income": np.round(rng.gamma(2.0, 150.0, n), 1),
        }
    )


def setup(folder: Path, records: int, database: str | None) -> tuple[Path, str]:
    from safemicro.service.tokens import generate_keypair

    generate_keypair(folder / "issuer")
    generate_keypair(folder / "node")
    make_data(records).write_csv(folder / "people.csv")
    dims = {
        "province": {"kind": "admin", "column": "province"},
        "district": {"kind": "admin", "column": "district", "parent": "province"},
        "month": {"kind": "time", "column": "arrival", "bin": "month"},
        "group": {"kind": "category", "column": "status"},
        "sex": {"kind": "category", "column": "sex"},
    }
    base = {
        "file": "people.csv",
        "unit": "person_id",
        "dimensions": dims,
        "measures": {"income": {"column": "income", "lower": 0, "upper": 5000}},
    }
    cfg = {
        "audience": "bench",
        "database": database or f"duckdb:///{folder / 'state.duckdb'}",
        "issuer_public_key": "issuer.pub",
        "signing_key": "node.key",
        "audit_log": "audit.jsonl",
        "datasets": {
            "people": base,
            "people_dp": {
                **base,
                "queries": ["count", "sum"],
                "dp": {"enabled": True, "epsilon_per_query": 0.01, "analyst_budget": 100.0, "dataset_budget": 2.0},
            },
        },
    }
    (folder / "service.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "service.yaml", analyst_token(folder)


def analyst_token(folder: Path) -> str:
    """An hour's token of the bench audience, granted every query on every dataset, signed
    with the issuer key ``setup`` wrote into ``folder``."""
    from safemicro.service.tokens import issue_token, load_private_key

    grants = [
        {
            "dataset": "*",
            "queries": ["count", "sum", "mean", "crosstab"],
            "dimensions": ["*"],
            "measures": ["*"],
            "actions": ["query"],
        }
    ]
    return issue_token(
        load_private_key(folder / "issuer.key"), audience="bench", subject="bench", grants=grants, minutes=60
    )


def cached_queries() -> list[dict]:
    return [
        {"dataset": "people", "kind": "count", "by": ["province"]},
        {"dataset": "people", "kind": "count", "by": ["group", "sex"]},
        {"dataset": "people", "kind": "sum", "measure": "income", "by": ["province"]},
        {"dataset": "people", "kind": "count", "by": ["month"], "filters": {"sex": ["f"]}},
    ]


def fresh_queries(n: int) -> list[dict]:
    rng = np.random.default_rng(7)
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    out = []
    for i in range(n):
        by = [["province"], ["district"], ["group"], ["sex", "group"], ["month"], ["province", "sex"]][i % 6]
        a, b = sorted(rng.choice(12, 2, replace=False))
        q = {
            "dataset": "people",
            "kind": ["count", "crosstab", "sum"][i % 3] if len(by) == 2 else ["count", "sum"][i % 2],
            "by": by,
            "time": {"start": months[a], "end": months[b]},
        }
        if q["kind"] == "sum":
            q["measure"] = "income"
        out.append(q)
    return out


def dp_queries(n: int) -> list[dict]:
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    windows = [(a, b) for a in range(12) for b in range(a, 12)]
    combos = [(w, sex, g) for w in windows for sex in ["f", "m"] for g in ["refugee", "idp", "host", "returnee"]]
    return [
        {
            "dataset": "people_dp",
            "kind": "count",
            "by": ["province"],
            "time": {"start": months[a], "end": months[b]},
            "filters": {"sex": [sex], "group": [g]},
        }
        for (a, b), sex, g in combos[:n]
    ]


async def run_phase(url: str, token: str, queries: list[dict], clients: int, limit: int, seconds: float):
    """Send up to `limit` queries from `clients` concurrent clients (cycling over `queries`)."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    counter = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal counter
        async with httpx.AsyncClient(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as h:
            while counter < limit and time.perf_counter() < deadline:
                q = queries[counter % len(queries)]
                counter += 1
                t0 = time.perf_counter()
                r = await h.post("/v1/query", json=q)
                latencies.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    lat = sorted(latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {
        "requests": len(lat),
        "seconds": wall,
        "qps": len(lat) / wall,
        "p50_ms": p(0.5),
        "p99_ms": p(0.99),
        "mean_ms": statistics.fmean(lat) * 1000,
        "codes": codes,
    }


def with_store(args, run) -> None:
    """``run(args)``, with ``--postgres temp`` replaced by a throw-away cluster (as the tests start)."""
    cluster = None
    if args.postgres == "temp":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from service_support import Postgres

        cluster = Postgres().start()
        args.postgres = cluster.create_database("bench")
    try:
        run(args)
    finally:
        if cluster is not None:
            cluster.stop()


@contextmanager
def serving(cfg: Path, folder: Path, workers: int, tries: int = 600, started: dict | None = None):
    """A ``safemicro serve`` process on a free loopback port, logging to ``folder/server.log``;
    yields its URL once it answers, and stops it (killed if still deciding abandoned queries).
    ``started`` (a dict) receives the process id under "pid" (for :func:`cpu_seconds`)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "wb")
    command = [sys.executable, "-m", "safemicro.cli", "serve", str(cfg), "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    if started is not None:
        started["pid"] = proc.pid
    try:
        for _ in range(tries):
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("server did not start: " + (folder / "server.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (and its reaped children) used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000, help="per phase (fresh and dp phases use a quarter)")
    ap.add_argument("--seconds", type=float, default=60, help="time limit per phase")
    ap.add_argument("--workers", type=int, default=1, help="server processes (more than 1 needs --postgres)")
    ap.add_argument(
        "--postgres",
        help="a PostgreSQL URL for the node's store instead of DuckDB; 'temp' starts a "
        "throw-away cluster (initdb/pg_ctl, as the tests do)",
    )
    with_store(ap.parse_args(), run)


def run(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        folder = Path(tmp)
        cfg, tok = setup(folder, args.records, args.postgres)
        with serving(cfg, folder, args.workers) as url:
            store = "PostgreSQL" if args.postgres else "DuckDB"
            print(
                f"records {args.records}, {args.clients} clients on loopback, {store} store, "
                f"{args.workers} server process(es), "
                f"load {os.getloadavg()[0]:.2f}"
            )
            phases = [
                ("cached", cached_queries(), args.requests),
                ("fresh", fresh_queries(args.requests // 4), args.requests // 4),
                ("dp", dp_queries(args.requests // 4), args.requests // 4),
            ]
            print(f"{'phase':8} {'requests':>8} {'qps':>8} {'p50 ms':>8} {'p99 ms':>8}  status codes")
            for name, queries, limit in phases:
                res = asyncio.run(run_phase(url, tok, queries, args.clients, limit, args.seconds))
                codes = ", ".join(f"{k}: {v}" for k, v in sorted(res["codes"].items()))
                print(
                    f"{name:8} {res['requests']:>8} {res['qps']:>8.0f} {res['p50_ms']:>8.1f} {res['p99_ms']:>8.1f}  {codes}"
                )
            print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
