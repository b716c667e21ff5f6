"""The aggregate service under a realistic mix, on the bundled example survey (issue 13).

Starts `safemicro serve` on 127.0.0.1 over the example forced-displacement survey
(`safemicro.examples.survey`, 9 902 persons in 2 000 households; threshold 10, dominance
and secondary suppression on, a DP copy with ε 0.5 per query), then:

- mix: `--clients` concurrent clients, each request drawn as 65 % a repeated query (a small
  set asked again and again), 30 % a fresh one (never asked before: protection, the
  differencing ledger, storage; 200 or 409) and 5 % a bad token (401); prints requests/s
  and p50/p95/p99 per class;
- fresh: only fresh queries, for throughput (fresh queries/s);
- audit: the node's audit log verified (hash chain) and one "request", "auth" or
  "rejected" entry counted per HTTP request sent (a request still queued when the server
  is killed at the end, its client having timed out, can be missing).

The survey is served here as exact free queries under the differencing ledger, the thorough
and slow way (each fresh query is searched against everything released before: seconds
under this load). The ways built to answer fresh queries fast, declared tables and the cell
key method, are measured by bench_service_tables.py on the same survey and mix.

    .venv/bin/python bench/bench_service_mix.py [--clients 20] [--requests 1500] [--fresh 600]
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

import httpx
import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import analyst_token, serving, with_store  # noqa: E402


def setup(folder: Path, database: str | None) -> tuple[Path, str, str]:
    from safemicro.examples.survey import generate_survey
    from safemicro.service.tokens import generate_keypair

    generate_keypair(folder / "issuer")
    generate_keypair(folder / "node")
    df = generate_survey().frame
    df = df.with_columns(
        person_id=pl.col("hhid").cast(pl.String) + "-" + pl.col("line_no").cast(pl.String),
        arrival=pl.format("{}-06-30", pl.col("arrival_year")),
    ).select("person_id", "camp", "origin", "sex", "hh_size", "arrival", "age", "assistance", "income", "livelihood")
    df.write_csv(folder / "survey.csv")
    dims = {
        "camp": {"kind": "category", "column": "camp"},
        "origin": {"kind": "category", "column": "origin"},
        "sex": {"kind": "category", "column": "sex"},
        "livelihood": {"kind": "category", "column": "livelihood"},
        "year": {"kind": "time", "column": "arrival", "bin": "year"},
    }
    measures = {
        "age": {"column": "age", "lower": 0, "upper": 100},
        "assistance": {"column": "assistance", "lower": 0, "upper": 500},
    }
    base = {"file": "survey.csv", "unit": "person_id", "dimensions": dims, "measures": measures}
    cfg = {
        "audience": "bench",
        "database": database or f"duckdb:///{folder / 'state.duckdb'}",
        "issuer_public_key": "issuer.pub",
        "signing_key": "node.key",
        "audit_log": "audit.jsonl",
        "datasets": {
            "survey": {
                **base,
                "queries": ["count", "sum", "mean", "crosstab"],
                "policy": {"threshold": 10, "secondary": True},
            },
            "survey_dp": {
                **base,
                "queries": ["count", "sum", "mean"],
                "dp": {"enabled": True, "epsilon_per_query": 0.5, "analyst_budget": 1e6, "dataset_budget": 1e6},
            },
        },
    }
    (folder / "service.yaml").write_text(yaml.safe_dump(cfg))
    tok = analyst_token(folder)
    head, claims, sig = tok.split(".")
    bad = f"{head}.{claims}.{sig[:-6]}AAAAAA"  # tampered signature: 401
    return folder / "service.yaml", tok, bad


def repeated_queries() -> list[dict]:
    return [
        {"dataset": "survey", "kind": "count", "by": ["camp"]},
        {"dataset": "survey", "kind": "count", "by": ["camp", "sex"]},
        {"dataset": "survey", "kind": "mean", "measure": "age", "by": ["sex"]},
        {"dataset": "survey", "kind": "sum", "measure": "assistance", "by": ["camp"]},
        {"dataset": "survey_dp", "kind": "count", "by": ["camp"]},
        {"dataset": "survey_dp", "kind": "mean", "measure": "age", "by": ["sex"]},
    ]


def fresh_queries(n: int, seed: int) -> list[dict]:
    """`n` distinct queries (never the repeated ones): kinds, groupings, filters, windows."""
    rng = random.Random(seed)
    years = [str(y) for y in range(2006, 2025)]
    values = {
        "camp": [str(i) for i in range(1, 9)],
        "origin": [str(i) for i in range(1, 9)],
        "sex": ["1", "2"],
        "livelihood": [str(i) for i in range(1, 7)],
    }
    groupings = [
        ["camp"],
        ["origin"],
        ["sex"],
        ["livelihood"],
        ["camp", "sex"],
        ["origin", "sex"],
        ["camp", "origin"],
        ["livelihood", "sex"],
        ["year"],
    ]
    seen: set[str] = set(json.dumps(q, sort_keys=True) for q in repeated_queries())
    out = []
    while len(out) < n:
        by = rng.choice(groupings)
        ds = "survey_dp" if rng.random() < 0.2 else "survey"
        kind = rng.choice(["count", "sum", "mean"] + (["crosstab"] if len(by) == 2 and ds == "survey" else []))
        q: dict = {"dataset": ds, "kind": kind, "by": by}
        if kind in ("sum", "mean"):
            q["measure"] = rng.choice(["age", "assistance"])
        free = [d for d in values if d not in by]
        if rng.random() < 0.6:
            d = rng.choice(free)
            q["filters"] = {d: sorted(rng.sample(values[d], rng.randint(1, max(1, len(values[d]) - 1))))}
        if "year" not in by and rng.random() < 0.5:
            a, b = sorted(rng.sample(range(len(years)), 2))
            q["time"] = {"start": years[a], "end": years[b]}
        key = json.dumps(q, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(q)
    return out


async def mixed(
    url: str,
    token: str,
    bad: str,
    fresh: list[dict],
    clients: int,
    limit: int,
    seconds: float,
    shares=(0.65, 0.30, 0.05),
    seed: int = 3,
    timeout: float = 60,
) -> dict:
    rng = random.Random(seed)
    repeated = repeated_queries()
    lat: dict[str, list[float]] = {"repeated": [], "fresh": [], "bad token": []}
    codes: dict[str, dict[int, int]] = {k: {} for k in lat}
    dp: list[float] = []  # the fresh ones on a DP dataset (also in lat["fresh"])
    other: list[float] = []  # the other fresh ones (also in lat["fresh"])
    fresh_iter = iter(fresh)
    sent = 0
    # the clients exist before the clock starts: building one (its SSL context) blocks this
    # event loop for ~70 ms, which the first requests of the other clients would be charged
    pool = [httpx.AsyncClient(base_url=url, timeout=timeout) for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    async def client(h: httpx.AsyncClient) -> None:
        nonlocal sent
        async with h:
            while sent < limit and time.perf_counter() < deadline:
                sent += 1
                r = rng.random()
                tok = token
                if r < shares[0]:
                    kind, q = "repeated", rng.choice(repeated)
                elif r < shares[0] + shares[1]:
                    q = next(fresh_iter, None)
                    if q is None:
                        kind, q = "repeated", rng.choice(repeated)
                    else:
                        kind = "fresh"
                else:
                    kind, q, tok = "bad token", rng.choice(repeated), bad
                t0 = time.perf_counter()
                try:
                    resp = await h.post("/v1/query", json=q, headers={"Authorization": f"Bearer {tok}"})
                    code: int | str = resp.status_code
                except httpx.TimeoutException:
                    code = "timeout"
                lat[kind].append(time.perf_counter() - t0)
                if kind == "fresh":
                    (dp if q["dataset"].endswith("_dp") else other).append(lat[kind][-1])
                codes[kind][code] = codes[kind].get(code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client(h) for h in pool))
    return {"wall": time.perf_counter() - start, "lat": lat, "codes": codes, "fresh_dp": dp, "fresh_other": other}


def pct(xs: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(xs), q)) * 1000 if xs else float("nan")


def report(name: str, res: dict) -> None:
    total = sum(len(v) for v in res["lat"].values())
    print(
        f"{name}: {total} requests in {res['wall']:.1f} s = {total / res['wall']:.0f} req/s; "
        f"fresh {len(res['lat']['fresh']) / res['wall']:.0f}/s"
    )
    print(f"  {'class':10} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  status codes")
    for kind, xs in res["lat"].items():
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(res["codes"][kind].items(), key=str))
        print(f"  {kind:10} {len(xs):>6} {pct(xs, 0.5):>8.1f} {pct(xs, 0.95):>8.1f} {pct(xs, 0.99):>8.1f}  {codes}")
    for name, key in (("of which DP", "fresh_dp"), ("not DP", "fresh_other")):
        xs = res.get(key) or []
        if xs and res.get("fresh_dp"):
            rate = f"{len(xs) / res['wall']:.0f}/s"
            print(f"  {name:10} {len(xs):>6} {pct(xs, 0.5):>8.1f} {pct(xs, 0.95):>8.1f} {pct(xs, 0.99):>8.1f}  {rate}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1500, help="requests in the mixed phase")
    ap.add_argument("--fresh", type=int, default=600, help="requests in the fresh-only phase")
    ap.add_argument("--seconds", type=float, default=90, help="time limit per phase")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--postgres", help="PostgreSQL URL, or 'temp' for a throw-away cluster")
    with_store(ap.parse_args(), run)


def run(args) -> None:
    from safemicro.service.audit import verify

    with tempfile.TemporaryDirectory(prefix="bench-mix-") as tmp:
        folder = Path(tmp)
        cfg, tok, bad = setup(folder, args.postgres)
        with serving(cfg, folder, args.workers, tries=900) as url:
            print(
                f"example survey, {args.clients} clients on loopback, "
                f"{'PostgreSQL' if args.postgres else 'DuckDB'} store, {args.workers} server process(es); "
                f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            fresh = fresh_queries(args.requests + args.fresh + 100, seed=11)
            mix = asyncio.run(mixed(url, tok, bad, fresh[: args.requests], args.clients, args.requests, args.seconds))
            report("mix (65 % repeated, 30 % fresh, 5 % bad token)", mix)
            only = asyncio.run(
                mixed(
                    url,
                    tok,
                    bad,
                    fresh[args.requests :],
                    args.clients,
                    args.fresh,
                    args.seconds,
                    shares=(0.0, 1.0, 0.0),
                )
            )
            report("fresh only", only)
            sent = sum(len(v) for r in (mix, only) for v in r["lat"].values())
            print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
        kinds: dict[str, int] = {}
        for e in entries:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        per_request = kinds.get("request", 0) + kinds.get("auth", 0) + kinds.get("rejected", 0)
        rep = verify(folder / "audit.jsonl")
        print(
            f"audit: chain {'ok' if rep.ok else 'BROKEN: ' + rep.reason}, {rep.entries} entries; "
            f"requests sent {sent}, request/auth/rejected entries {per_request} "
            f"({'every request logged' if per_request == sent else 'MISMATCH'}); kinds {kinds}"
        )


if __name__ == "__main__":
    main()
