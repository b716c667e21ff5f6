"""Scale of the mobile-data path: events per second and peak memory of each stage.

Generates synthetic call records (``--subscribers`` SIMs x ``--days``, ``--mean-events`` on
an active day, 30 % silent days), then runs each stage in its own process under
``/usr/bin/time -v`` and prints wall time, events per second and peak RSS:

- generate: the synthetic records, streamed day by day to Parquet;
- ingest: checks, HMAC pseudonyms, clean day partitions and QA;
- daily-polars / daily-duckdb: stage i (per-subscriber daily tables), day partition by
  day partition, with each engine;
- features: stage ii (homes, status, metrics) and the reference table over the daily tables.

Generated data are deleted afterwards unless ``--keep``. Big sizes use several GB: run them
under the shared lock, e.g.

    flock /work/wt/bigmem.lock .venv/bin/python bench/bench_mobility.py --subscribers 1000000 --days 10 --mean-events 14.3

(1 M x 10 days x 14.3 x 0.7 = 100 M events; 10 M subscribers are the 1 B target.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("generate", "ingest", "daily-polars", "daily-duckdb", "features")
KEY = b"bench-operator-key-0123456789abcdef"


def _bar(stage: str, total: int):
    """A rich progress bar over day partitions, on stderr (the driver passes it through)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        f"  {stage}", BarColumn(), MofNCompleteColumn(), "days", TimeElapsedColumn(), console=Console(stderr=True)
    )
    bar.start()
    task = bar.add_task(stage, total=total)
    return bar, lambda *_: bar.advance(task)


def run_stage(stage: str, root: Path, a: argparse.Namespace) -> None:
    """One stage in this process (the driver calls it through /usr/bin/time -v)."""
    bar, step = _bar(stage, None if stage == "features" else a.days)  # features: not by day
    try:
        _run_stage(stage, root, a, step)
    finally:
        bar.stop()


def _run_stage(stage: str, root: Path, a: argparse.Namespace, step) -> None:
    if stage == "generate":
        from safemicro.mobility.synth import Scenario, SynthConfig
        from safemicro.mobility.synth_days import generate

        cfg = SynthConfig(
            n_subscribers=a.subscribers,
            days=a.days,
            seed=1,
            mean_events=a.mean_events,
            scenario=Scenario(origins=["R1D1C1", "R1D1C2"], day=max(1, a.days // 2)),
        )
        generate(root / "raw", cfg, progress=step)
    elif stage == "ingest":
        from safemicro.mobility.ingest import ingest

        raw = root / "raw"
        qa = ingest(
            raw / "events",
            raw / "cells.csv",
            raw / "bridge.csv",
            root / "ingested",
            KEY,
            units=raw / "units.csv",
            progress=step,
        )
        print(json.dumps({"events": sum(d["clean_rows"] for d in qa["days"])}))
    elif stage.startswith("daily-"):
        from safemicro.mobility.daily import stage_i

        stage_i(root / "ingested", root / stage, engine=stage.split("-")[1], progress=step)
    elif stage == "features":
        import polars as pl

        from safemicro.mobility.features import subscriber_features, window_days
        from safemicro.mobility.reference import reference_table

        start = dt.date(2024, 1, 1)
        half = max(1, a.days // 2)
        cells = pl.read_parquet(root / "ingested" / "cells.parquet")
        base = window_days(start, start + dt.timedelta(days=half))
        follow = window_days(start + dt.timedelta(days=half), start + dt.timedelta(days=a.days))
        feats = subscriber_features(root / "daily-polars", cells, base, follow)
        ref = reference_table(feats, cells, root / "daily-polars", base + follow)
        ref.write_parquet(root / "reference.parquet")
        print(json.dumps({"subscribers": ref.height}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--mean-events", type=float, default=14.3)
    p.add_argument("--dir", type=Path, default=Path("/tmp/safemicro-bench-mobility"))
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    a = p.parse_args()
    if a.stage:
        run_stage(a.stage, a.dir, a)
        return
    a.dir.mkdir(parents=True, exist_ok=True)
    events = None
    print(f"{a.subscribers} subscribers x {a.days} days, {a.mean_events} events per active day")
    try:
        for stage in a.stages.split(","):
            timing = a.dir / f"time-{stage}.txt"
            cmd = [
                "/usr/bin/time",
                "-v",
                "-o",
                str(timing),
                sys.executable,
                __file__,
                "--stage",
                stage,
                "--dir",
                str(a.dir),
            ]
            cmd += ["--subscribers", str(a.subscribers), "--days", str(a.days), "--mean-events", str(a.mean_events)]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ)  # stderr: the bar
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"stage {stage} failed")
            usage = timing.read_text()
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", usage).group(1)) / 1024**2
            cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", usage))
            for line in r.stdout.splitlines():
                if line.startswith("{") and "events" in line:
                    events = json.loads(line)["events"]
            rate = f"{events / wall / 1e6:.2f} M events/s" if events else ""
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(
                f"{stage:13s} {wall:8.1f} s  cpu {cpu:7.1f} s  peak RSS {rss:5.2f} GB  {rate:20s} load {load}",
                flush=True,
            )
        if events:
            print(f"events: {events:,}")
        print(f"disk: {sum(f.stat().st_size for f in a.dir.rglob('*') if f.is_file()) / 1024**3:.2f} GB")
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
