"""The out-of-core ``safemicro anonymize --engine ...``: released Parquet + JSON report."""

from __future__ import annotations

import json
from pathlib import Path

from safemicro.atomic import atomic_directory
from safemicro.errors import SafemicroError
from safemicro.plan import load_plan
from safemicro.scale.anonymize import anonymize_source


def anonymize_out_of_core(
    data: Path, plan_path: Path, output: Path, engine: str, *, overwrite: bool, require_targets: bool
) -> None:
    """Write ``output/<data stem>.parquet`` and ``output/report.json`` (risk before and
    after, cells changed per step) or nothing (exit 3 with ``require_targets`` unmet)."""
    import typer
    from rich.console import Console

    if data.suffix.lower() != ".parquet":
        raise SafemicroError("the out-of-core anonymize reads a Parquet file", file=str(data))
    plan = load_plan(plan_path)
    with atomic_directory(output, overwrite=overwrite) as tmp:
        result = anonymize_source(data, plan, tmp / f"{data.stem}.parquet", engine=engine, show_progress=None)
        k = plan.targets.k
        met = not k or result.after["k_anonymity"]["violations"][str(int(k))] == 0
        if require_targets and not met:
            Console(stderr=True).print(f"[bold red]error:[/] {k}-anonymity not reached; no bundle written")
            raise typer.Exit(3)
        report = {
            "engine": engine,
            "n_records": result.n_records,
            "steps": result.steps,
            "risk_before": result.before,
            "risk_after": result.after,
            "timings_seconds": {k: round(v, 3) for k, v in result.timings.items()},
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False, default=str) + "\n")
    out = Console()
    for step in result.steps:
        out.print(f"step {step['index']} {step['name']}: {sum(step['changed'].values()):,} cells changed", markup=False)
    out.print(f"released: {output / (data.stem + '.parquet')} ({result.n_records:,} records)", markup=False)
