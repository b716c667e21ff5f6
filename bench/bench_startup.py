"""Whole-process time of `safemicro --help` and `safemicro assess` on the 1M-row Parquet file.

A user waits for the process, not for the call: imports, reading the file, the risk
measures and the JSON output together. Each command runs ``--runs`` times in a fresh
process (after one warm-up, so the file and the byte-compiled modules are in the page
cache, as when a curator re-runs a command); prints the median and best wall time, the
median CPU time (user + system, which the load of other processes on the machine changes
much less than the wall time) and, for assess, the ratio against sdcMicro's
``measureRisk`` on the same 1M rows (its faster run, tests/data/sdcmicro_reference).

The data file is the scaled testdata copy of bench/scaled.py (cached in bench/data/).
Targets (issue 17): assess ≤ 0.6 s, --help ≤ 0.2 s. ``--before REF`` also times the code of
git revision REF (its ``src/`` exported to bench/data/src-REF), its runs interleaved with
this checkout's, so that both see the same load on a shared machine.

    python bench/bench_startup.py [--runs 5] [--rows 1000000] [--before REF]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_anonymize_scale import source_tree  # noqa: E402
from bench_assess import KEYS7, data_file, sdcmicro_timings  # noqa: E402


def timed(cmd: list[str], trees: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    """Per source tree: median/best wall and median CPU seconds of ``cmd`` over ``runs``
    fresh processes, the trees taking turns."""
    envs = {label: {**os.environ, "PYTHONPATH": str(src)} for label, src in trees.items()}
    for env in envs.values():
        subprocess.run(cmd, check=True, capture_output=True, env=env)  # warm-up
    walls: dict[str, list[float]] = {label: [] for label in trees}
    cpus: dict[str, list[float]] = {label: [] for label in trees}
    for _ in range(runs):
        for label, env in envs.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            walls[label].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[label].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        label: {
            "median": statistics.median(walls[label]),
            "best": min(walls[label]),
            "cpu": statistics.median(cpus[label]),
        }
        for label in trees
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--before", help="git revision to compare with, in the same run")
    a = p.parse_args()
    trees = {"before": source_tree(a.before)} if a.before else {}
    trees["after" if a.before else "this"] = source_tree(None)
    data = data_file(a.rows, 0.0)
    out = HERE / "data" / "startup_risk.json"
    cli = [sys.executable, "-m", "safemicro.cli"]
    cases = {
        "safemicro --help": (cli + ["--help"], 0.2),
        f"safemicro assess ({a.rows:,} rows, JSON)": (
            cli
            + ["assess", str(data), "--keys", ",".join(KEYS7), "--weight", "sampling_weight"]
            + ["--household", "ori_hid", "--json", str(out)],
            0.6,
        ),
    }
    sdc = min(s for s, _ in sdcmicro_timings().get(("measure_risk", a.rows), [(float("nan"), 0)]))
    load = [os.getloadavg()[0]]
    print(
        f"{'command':<40} {'code':>6} {'median s':>9} {'best s':>7} {'CPU s':>6} {'target':>7} {'sdcMicro s':>11} {'ratio':>6}"
    )
    for name, (cmd, target) in cases.items():
        results = timed(cmd, trees, a.runs)
        load.append(os.getloadavg()[0])
        for label, r in results.items():
            peer = sdc if "assess" in name else float("nan")
            ratio = f"{peer / r['median']:.0f}x" if peer == peer else ""
            print(
                f"{name:<40} {label:>6} {r['median']:>9.3f} {r['best']:>7.3f} {r['cpu']:>6.3f} {target:>7.1f} "
                f"{(f'{peer:.1f}' if peer == peer else ''):>11} {ratio:>6}"
            )
    print(f"load average {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores; {a.runs} runs each")


if __name__ == "__main__":
    main()
