"""`safemicro anonymize` (a recode + local suppression to k = 3) on 1M-30M rows, before and after.

Each run is a fresh `safemicro anonymize FILE --plan PLAN --out BUNDLE` process on the scaled
testdata copies of bench/scaled.py (7 keys, weight, household id; cached as Parquet in
bench/data/), timed with /usr/bin/time -v for the peak memory. ``--before REF`` also runs
the code of git revision REF (its ``src/`` exported to bench/data/src-REF) on the same
files, so the speed-up is measured in the same benchmark run. Issue 17's target: 30M rows
in ≤ 60 s (251 s before). The CPU time (user + system) is printed too: on a machine
shared with other work it moves much less than the wall time.

From 10M rows up run it under the shared lock, one benchmark at a time on the machine:

    flock /work/wt/bigmem.lock python bench/bench_anonymize_scale.py --sizes 1000000,10000000,30000000 --before 1f8e4fc
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_assess import data_file  # noqa: E402

PLAN = """\
roles: {keys: [urbrur, roof, walls, water, electcon, relat, sex], weight: sampling_weight, household: ori_hid}
targets: {k: 3}
steps: [{recode: {variable: water, breaks: 3}}, {local_suppression: {k: 3}}]
seed: 1
"""


def source_tree(ref: str | None) -> Path:
    """``src/`` of this checkout, or of git revision ``ref`` (exported once)."""
    if ref is None:
        return ROOT / "src"
    out = HERE / "data" / f"src-{ref}"
    if not out.exists():
        tmp = Path(tempfile.mkdtemp(dir=HERE / "data"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        (tmp / "src").rename(out)
        tmp.rmdir()
    return out


def run(src: Path, data: Path, plan: Path, out: Path) -> dict[str, float]:
    """One anonymize process: wall and CPU seconds, peak RSS (GB), files written."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "safemicro.cli", "anonymize", str(data)]
    cmd += ["--plan", str(plan), "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"anonymize failed ({src}):\n{done.stderr[-2000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr))
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".parquet", ".csv"))
    shutil.rmtree(out)
    return {"seconds": wall, "cpu": cpu, "rss_gb": int(rss.group(1)) / 2**20 if rss else float("nan"), "files": files}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,10000000")
    p.add_argument("--before", help="git revision to compare with (e.g. 1f8e4fc)")
    p.add_argument("--after", help="git revision to measure (default: this checkout's src/)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_anonymize_"))
    plan = work / "plan.yaml"
    plan.write_text(PLAN)
    trees = {"before": source_tree(a.before)} if a.before else {}
    trees["after"] = source_tree(a.after)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"{'rows':>11} {'code':>7} {'seconds':>8} {'CPU s':>7} {'s/10M':>7} {'peak GB':>8} {'speed-up':>9}  data files"
    )
    for n in [int(s) for s in a.sizes.split(",")]:
        data = data_file(n, 0.0)
        results = {}
        for label, src in trees.items():
            r = results[label] = run(src, data, plan, work / f"bundle_{label}")
            speed = results["before"]["seconds"] / r["seconds"] if label == "after" and "before" in results else None
            print(
                f"{n:>11,} {label:>7} {r['seconds']:>8.1f} {r['cpu']:>7.1f} {r['seconds'] * 1e7 / n:>7.1f} {r['rss_gb']:>8.2f} "
                f"{(f'{speed:.1f}x' if speed else ''):>9}  {', '.join(r['files'])}",
                flush=True,
            )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
