"""`safemicro synthesize` (CART) on 1M and 10M records: fitted on a 200k sample by default.

Input: the scaled testdata of bench/scaled.py (cached in bench/data/), the 7 keys, hhcivil,
age and income. Each run is a fresh `safemicro synthesize FILE --out OUT --report R` process
under /usr/bin/time -v (peak RSS), generating as many records as the input; the report's
fit / sample / safeguards seconds are printed, with the marginal check of
safemicro.synth.fit_sample: the largest |p̂ − p| over the cells of the one- and two-way
tables of the keys against the full input, and the sampling term of the bound
(simultaneous z, without the CART's own error b, which needs a full-data fit).

    python bench/bench_synth_scale.py --sizes 1000000
    flock /work/wt/bigmem.lock python bench/bench_synth_scale.py --sizes 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
COLUMNS = [*KEYS7, "hhcivil", "age", "income"]


def input_file(n: int) -> Path:
    import polars as pl
    from bench_assess import data_file

    out = HERE / "data" / f"synth_input_{n}.parquet"
    if not out.exists():
        pl.scan_parquet(data_file(n, 0.0)).select(COLUMNS).sink_parquet(out)
    return out


def main() -> None:
    import numpy as np
    import polars as pl

    from safemicro.synth.fit_sample import marginal_bound, marginal_shares, simultaneous_z

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--fit-sample", type=int, default=None)
    a = ap.parse_args()
    for n in [int(x) for x in a.sizes.split(",")]:
        src = input_file(n)
        with tempfile.TemporaryDirectory() as tmp:
            out, rep = Path(tmp) / "synthetic.parquet", Path(tmp) / "report.json"
            cmd = [sys.executable, "-m", "safemicro.cli", "synthesize", str(src), "--out", str(out)]
            cmd += ["--report", str(rep), "--keys", ",".join(KEYS7), "--seed", "1"]
            if a.fit_sample is not None:
                cmd += ["--fit-sample", str(a.fit_sample)]
            env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
            p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
            if p.returncode:
                raise SystemExit(p.stderr[-3000:])
            wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr)[1]
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)[1]) / 2**20
            report = json.loads(rep.read_text())
            cells = marginal_shares([pl.read_parquet(src, columns=KEYS7), pl.read_parquet(out, columns=KEYS7)], KEYS7)
        t = report["timings_seconds"]
        fs = report.get("fit_sample") or {"n": n}
        p0, p1 = cells["p0"].to_numpy(), cells["p1"].to_numpy()
        z = simultaneous_z(cells.height)
        term = marginal_bound(p0, fs["n"], report["n_records"], n_full=n, z=z, p_synth=p1)
        qd = report["safeguards"]["q_delta"]
        print(
            f"{n:>11,} records, fitted on {fs['n']:,}: wall {wall} (fit {t['fit']:.1f} s, sample "
            f"{t['sample']:.1f} s, safeguards {t['safeguards']:.1f} s), peak RSS {rss:.2f} GB; "
            f"{cells.height} cells: max |p̂-p| {np.abs(p1 - p0).max():.5f}, max |p̂-p|/sampling term "
            f"{(np.abs(p1 - p0) / term).max():.2f} (z = {z:.2f}); Q_δ {qd['q_delta']:.4f} vs {qd['threshold']:.4f}"
        )


if __name__ == "__main__":
    main()
