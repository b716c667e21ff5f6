"""Exact linkage of an intruder's register (1M, 10M rows) against a 1M-row release, blocked
on the key table (:mod:`safemicro.attack.record_linkage.blocked`).

Data (bench/scaled.py, cached as Parquet in bench/data/): the release is the 1M-row scaled
testdata with a person id; the register holds released people (all of them, at most half
the register) with their 7 keys, 5 % of the cells unknown, plus scaled-testdata people who
are not in the release (another seed, 5 % unknown), shuffled. Each linkage runs in a fresh process under /usr/bin/time -v (peak
RSS of that process only), writing the per-record claims as Parquet too.

    python bench/bench_linkage_scale.py --register 1000000
    flock /work/wt/bigmem.lock python bench/bench_linkage_scale.py --register 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]


def files(n_release: int, n_register: int) -> tuple[Path, Path]:
    import numpy as np
    import polars as pl
    from scaled import scaled_testdata

    data = HERE / "data"
    data.mkdir(exist_ok=True)
    rel = data / f"link_release_{n_release}.parquet"
    reg = data / f"link_register_{n_release}_{n_register}.parquet"
    if not rel.exists():
        df = scaled_testdata(n_release).with_row_index("pid").with_columns(pl.col("pid").cast(pl.Int64))
        df.write_parquet(rel)
    if not reg.exists():
        people = pl.read_parquet(rel, columns=["pid", *KEYS7])
        n_in = min(n_release, n_register // 2)
        others = scaled_testdata(n_register - n_in, seed=7).select(KEYS7).with_row_index("pid", offset=n_release)
        both = pl.concat([people.head(n_in), others.with_columns(pl.col("pid").cast(pl.Int64))], how="vertical_relaxed")
        rng = np.random.default_rng(11)
        both = both.with_columns(
            [pl.when(pl.Series(rng.random(both.height) < 0.05)).then(None).otherwise(pl.col(c)).alias(c) for c in KEYS7]
        )
        both.sample(fraction=1.0, shuffle=True, seed=12).write_parquet(reg)
    return rel, reg


CHILD = """
import json, sys, time
t0 = time.perf_counter()
from safemicro.attack.record_linkage.blocked import link_exact_blocked
out = link_exact_blocked(sys.argv[1], sys.argv[2], {keys!r}, truth="pid", claims_out=sys.argv[3], show_progress=False)
s = out.summary()
s["wall"] = time.perf_counter() - t0
s["timings"] = out.timings
print(json.dumps(s))
"""


def run(rel: Path, reg: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        cmd = ["/usr/bin/time", "-v", sys.executable, "-c", CHILD.format(keys=KEYS7), str(rel), str(reg)]
        p = subprocess.run([*cmd, str(Path(tmp) / "claims.parquet")], capture_output=True, text=True, env=env)
        if p.returncode:
            raise SystemExit(p.stderr)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        out["peak_rss_gb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)[1]) / 2**20
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--release", type=int, default=1_000_000)
    ap.add_argument("--register", default="1000000")
    a = ap.parse_args()
    for n in [int(x) for x in a.register.split(",")]:
        t0 = time.perf_counter()
        rel, reg = files(a.release, n)
        made = time.perf_counter() - t0
        r = run(rel, reg)
        t = r["timings"]
        print(
            f"register {n:>11,} x release {a.release:,}: {r['wall']:.1f} s wall with imports, "
            f"the call {t['total']:.1f} s (release keys {t['release_keys']:.1f}, pairs {t['pairs']:.1f}, match {t['match']:.2f}, "
            f"claims written {t['total'] - t['release_keys'] - t['pairs'] - t['match']:.1f}), "
            f"peak RSS {r['peak_rss_gb']:.2f} GB; {r['n_register_keys']:,} register keys, "
            f"{r['n_release_keys']:,} released keys, {r['n_key_pairs']:,} pairs; "
            f"true match rate {r['true_match_rate']:.4f}, re-identified {r['reidentified']:,} "
            f"(data made in {made:.0f} s)"
        )


if __name__ == "__main__":
    main()
