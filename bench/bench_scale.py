"""Assessment at 10M, 30M and 100M records: engines against a bare DuckDB group-by.

Generates scaled copies of sdcMicro's testdata (bench/scaled.py: households drawn with
replacement, perturbed keys, weight and household id) to one Parquet file in chunks of
5M rows, so generation fits memory, optionally with 1 % missing key cells. Each case runs
in a fresh process that reports its own time (excluding imports) and peak RSS:

- ``duckdb_bare``: ``SELECT keys, count(*), sum(weight) ... GROUP BY keys`` (the floor);
- ``assess_<engine>``: ``safemicro.scale.assess_source`` (fk, Fk with NA wildcards,
  individual/global/household risk, k-violations) through polars-streaming, duckdb, spark
  (local[2]; its JVM's memory is not in the Python process's peak RSS; the case then runs
  polars-streaming on the same file, asserts that every number is identical and prints
  both times); ``assess_<engine>+measures`` adds SUDA2 and the l-diversity of hhcivil
  and age;
- ``assess_polars``: read the file into memory and run ``safemicro.assess`` (the default);
- ``anonymize_<engine>``: ``safemicro.scale.anonymize_source`` with a recode and local
  suppression to k = 3, the released Parquet written row group by row group.

Prints seconds, seconds per 10M rows, peak RSS, the ratio to the bare group-by in the same
run, the ratio to sdcMicro's 1M-row ``measure_risk`` time scaled linearly and the 1-minute
load average at the end of the case (the machine is shared).
Run big sizes under the shared lock::

    flock /work/wt/bigmem.lock /usr/bin/time -v python bench/bench_scale.py \
        --sizes 10000000,30000000 --cases duckdb_bare,assess_duckdb,assess_polars
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMINGS = HERE.parent / "tests" / "data" / "sdcmicro_reference" / "timings_sdcmicro.csv"
KEYS7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
CHUNK = 5_000_000
PLAN = """
roles: {keys: [urbrur, roof, walls, water, electcon, relat, sex], weight: sampling_weight, household: ori_hid}
targets: {k: 3}
steps:
  - recode: {variable: water, map: {7: 6, 8: 6, 9: 6}}
  - local_suppression: {k: 3}
"""


def generate(n: int, missing: float, folder: Path, copies_of: int = 0) -> Path:
    """The scaled copy as one Parquet file of 1M-row row groups, written chunk by chunk.
    ``copies_of``: instead, n / copies_of copies of the ``copies_of``-row file with new
    household ids (quick for timing: the same scan and per-record work, the key counts
    scaled; sample uniques then differ from a fresh draw)."""
    path = folder / f"scale_{n}_{missing:g}.parquet"
    if path.exists():
        return path
    if copies_of:
        return _copies(n, missing, folder, copies_of, path)
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from scaled import scaled_testdata

    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    writer, offset, done = None, 0, 0
    while done < n:
        size = min(CHUNK, n - done)
        df = scaled_testdata(size, seed=20240601 + done // CHUNK, missing_share=missing)
        df = df.with_columns(df["ori_hid"] + offset)
        offset = int(df["ori_hid"].max())
        table = df.to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table.cast(writer.schema), row_group_size=1_000_000)
        done += size
        del df, table
    writer.close()
    tmp.rename(path)
    return path


def _copies(n: int, missing: float, folder: Path, base_n: int, path: Path) -> Path:
    import polars as pl
    import pyarrow.parquet as pq

    base = pl.read_parquet(generate(base_n, missing, folder))
    step = int(base["ori_hid"].max())
    tmp = path.with_suffix(".part")
    writer = None
    for i in range(n // base_n):
        table = base.with_columns(pl.col("ori_hid") + i * step).to_arrow()
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
    writer.close()
    tmp.rename(path)
    return path


def run_case(case: str, path: str) -> dict:
    """Inside a fresh process: run one case; wall and CPU seconds (all threads: on a
    shared machine CPU time is the fairer ratio), peak RSS, and what the case adds."""
    roles = {"keys": KEYS7, "weight": "sampling_weight", "household": "ori_hid"}
    extra: dict = {}
    if case == "duckdb_bare":
        import duckdb

        cols = ", ".join(KEYS7)
        sql = f"SELECT {cols}, count(*), sum(sampling_weight) FROM read_parquet('{path}') GROUP BY {cols}"
        run = lambda: duckdb.sql(sql).fetchall()  # noqa: E731
    elif case == "assess_polars":
        from safemicro import io
        from safemicro.assess import assess

        run = lambda: assess(io.read(path), **roles)  # noqa: E731
    elif case.startswith("anonymize_"):
        from safemicro.plan import Plan
        from safemicro.scale.anonymize import anonymize_source

        released = Path(path).with_name("released.parquet")
        engine = case.removeprefix("anonymize_").replace("_", "-")

        def run():
            extra["steps"] = anonymize_source(path, Plan.from_yaml(PLAN), released, engine=engine).timings
            released.unlink()

    else:
        from safemicro.engine import get_engine
        from safemicro.scale import assess_source

        name = case.removeprefix("assess_").replace("_", "-")
        if name.endswith("+measures"):  # SUDA2 and l-diversity too
            name = name.removesuffix("+measures")
            roles = {**roles, "suda": True, "sensitive": ["hhcivil", "age"]}
        # built outside the timing, as duckdb is imported outside it (Spark: the JVM starts)
        engine = get_engine(name, master="local[2]") if name == "spark" else get_engine(name)

        def run():
            extra["summary"] = assess_source(path, engine=engine, **roles).summary

    wall, cpu = time.perf_counter(), time.process_time()
    run()
    out = {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "load_1min": os.getloadavg()[0],
    }
    if "summary" in extra:
        out["steps"] = extra["summary"]["timings_seconds"]
        if case.startswith("assess_spark"):
            from safemicro.scale import assess_source

            t0 = time.perf_counter()
            ref = assess_source(path, engine="polars-streaming", **roles).summary
            out["polars_streaming_seconds"] = time.perf_counter() - t0
            out["same_numbers_as_polars"] = _same(extra["summary"], ref)
            assert out["same_numbers_as_polars"], "Spark's numbers differ from polars-streaming's"
    elif "steps" in extra:
        out["steps"] = {k: round(v, 3) for k, v in extra["steps"].items()}
    return out


def _same(a: dict, b: dict) -> bool:
    """Every count equal and every risk sum equal to 1e-12 relative."""
    import math

    close = all(
        math.isclose(a[p][k], b[p][k], rel_tol=1e-12)
        for p in ("global_risk", "household_risk")
        for k in ("mean", "expected_reidentifications")
    )
    exact = [("k_anonymity",), ("missing_in_keys",), ("household_risk", "household_sizes")]
    same = all(_get(a, path) == _get(b, path) for path in exact)
    ind = all(a["individual_risk"][k] == b["individual_risk"][k] for k in ("max", "median", "n_risky", "histogram"))
    suda = (a["suda2"] is None) == (b["suda2"] is None)
    if a["suda2"] is not None:
        x, y = dict(a["suda2"]), dict(b["suda2"])
        suda = math.isclose(x.pop("sum_dis"), y.pop("sum_dis"), rel_tol=1e-12) and x == y
    ldiv = a["l_diversity"] == b["l_diversity"]  # computed from the same pair counts
    return close and same and ind and suda and ldiv


def _get(d: dict, path: tuple) -> object:
    for p in path:
        d = d[p]
    return d


def sdcmicro_1m() -> float:
    with open(TIMINGS) as f:
        return min(
            float(r["seconds"]) for r in csv.DictReader(f) if r["rows"] == "1000000" and r["call"] == "measure_risk"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000000,30000000")
    p.add_argument("--missing", default="0,0.01")
    p.add_argument(
        "--cases",
        default="duckdb_bare,assess_polars_streaming,assess_duckdb,assess_polars",
        help="also: assess_spark, anonymize_polars_streaming, anonymize_duckdb",
    )
    p.add_argument("--folder", type=Path, default=Path("/tmp/safemicro_scale"))
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--json", type=Path)
    p.add_argument("--run-case", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--generate", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--copies-of", type=int, default=0, help="build each size from copies of a file of this size")
    a = p.parse_args()
    if a.generate:
        generate(int(a.generate[0]), float(a.generate[1]), Path(a.generate[2]), int(a.generate[3]))
        return
    if a.run_case:
        print(json.dumps(run_case(*a.run_case)))
        return
    sdc = sdcmicro_1m()
    results = []
    print(
        f"{'rows':>11} {'miss':>5} {'case':<27} {'s':>7} {'s/10M':>6} {'cpu s':>7} {'RSS GB':>6} "
        f"{'x duckdb':>8} {'x duckdb cpu':>12} {'x sdcMicro':>10} {'load':>5}"
    )
    for n in [int(x) for x in a.sizes.split(",")]:
        for missing in [float(x) for x in a.missing.split(",")]:
            # generated in a child process: a child inherits its parent's peak RSS
            gen = [str(n), str(missing), str(a.folder), str(a.copies_of if n > a.copies_of else 0)]
            subprocess.run([sys.executable, __file__, "--generate", *gen], check=True)
            path = a.folder / f"scale_{n}_{missing:g}.parquet"
            floor = None
            for case in a.cases.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--run-case", case, str(path)], capture_output=True, text=True
                )
                if out.returncode != 0:
                    print(f"{n:>11,} {missing:>5g} {case:<27} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if case == "duckdb_bare":
                    floor = r
                ratio = r["seconds"] / floor["seconds"] if floor else float("nan")
                ratio_cpu = r["cpu_seconds"] / floor["cpu_seconds"] if floor else float("nan")
                vs_sdc = r["seconds"] / (sdc * n / 1e6)
                print(
                    f"{n:>11,} {missing:>5g} {case:<27} {r['seconds']:>7.2f} {r['seconds'] / n * 1e7:>6.2f} "
                    f"{r['cpu_seconds']:>7.2f} {r['peak_rss_gb']:>6.2f} {ratio:>8.2f} {ratio_cpu:>12.2f} "
                    f"{vs_sdc:>10.4f} {r['load_1min']:>5.1f}  {r.get('steps', '')}",
                    flush=True,
                )
                if "same_numbers_as_polars" in r:
                    print(
                        f"{'':>17} spark local[2] {r['seconds']:.1f} s, polars-streaming {r['polars_streaming_seconds']:.1f} s "
                        f"on the same file ({r['seconds'] / r['polars_streaming_seconds']:.1f}x); every number identical"
                    )
                results.append(
                    {"rows": n, "missing": missing, "case": case, **r, "x_duckdb": ratio, "x_sdcmicro": vs_sdc}
                )
            if not a.keep:
                path.unlink()
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
