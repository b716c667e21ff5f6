"""`safemicro` on the command line: a thin shell over the library.

Every user error ends in one line on stderr and exit code 2; nothing half-written is left.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from safemicro.cli_groups import LazyGroup
from safemicro.cli_support import check_outputs, command_group, err, out
from safemicro.cli_support import friendly as _friendly
from safemicro.cli_support import split_list as _split
from safemicro.cli_support import write_all as _write_all
from safemicro.errors import SafemicroError

app = command_group(
    "Statistical disclosure control for microdata: assess risk, anonymize, synthesize, attack, document and publish releases, and serve protected aggregates.",
    # the commands that live beside their libraries (attack, document, serve, ...) are
    # imported when named, not by every command (safemicro.cli_groups)
    cls=LazyGroup,
)


@app.command()
@_friendly
def assess(
    data: Path = typer.Argument(..., help="CSV, Parquet, Stata .dta, SPSS .sav or SAS .sas7bdat file"),
    plan: Path | None = typer.Option(None, "--plan", help="release plan (YAML) giving the roles"),
    keys: str | None = typer.Option(None, "--keys", help="categorical key variables, comma-separated"),
    weight: str | None = typer.Option(None, "--weight", help="sampling weight variable"),
    household: str | None = typer.Option(None, "--household", help="household id variable"),
    household_level: str | None = typer.Option(
        None, "--household-level", help="keys that must be constant within a household"
    ),
    sensitive: str | None = typer.Option(None, "--sensitive", help="sensitive variables (l-diversity)"),
    numeric: str | None = typer.Option(None, "--numeric", help="continuous key variables"),
    suda: bool = typer.Option(False, "--suda", help="compute SUDA2 and DIS-SUDA scores"),
    population: Path | None = typer.Option(None, "--population", help="the population file (k-map, δ-presence)"),
    model: bool = typer.Option(False, "--model-risk", help="tau1/tau2, population uniques, exact risk"),
    model_method: list[str] = typer.Option(
        [], "--model-risk-method", help="modRisk estimator beside the default: CE, PML, weightedLLM, IPF (repeatable)"
    ),
    alpha: float | None = typer.Option(None, "--alpha", help="weight of a missing value as a wildcard (0..1)"),
    k: list[int] = typer.Option([], "--k", help="extra k for k-anonymity counts (repeatable)"),
    max_global_risk: float = typer.Option(0.01, "--max-global-risk", help="for the record threshold"),
    json_out: Path | None = typer.Option(None, "--json", help="write the summary as JSON"),
    records_out: Path | None = typer.Option(None, "--records", help="write per-record risk as CSV"),
    html_out: Path | None = typer.Option(None, "--html", help="write the HTML report"),
    encoding: str | None = typer.Option(None, "--encoding", help="text encoding of a CSV file"),
    engine: str = typer.Option(
        "polars",
        "--engine",
        help="polars (in memory); duckdb or polars-streaming (out of core, Parquet/CSV); spark",
    ),
) -> None:
    """Assess the disclosure risk of a microdata file."""
    if plan and (keys or weight or household or sensitive or numeric or household_level):
        raise SafemicroError("give the roles either with --plan or with --keys/--weight/..., not both", file=str(plan))
    outputs = [p for p in (json_out, records_out, html_out) if p]
    check_outputs([data, plan, population], outputs)
    the_plan = None
    if plan:
        from safemicro.plan import load_plan

        the_plan = load_plan(plan)
    options = {  # what every engine takes
        "plan": the_plan,
        "keys": _split(keys),
        "weight": weight,
        "household": household,
        "alpha": alpha,
        "ks": k or (),
        "max_global_risk": max_global_risk,
        "model_risk": _model_risk_option(model, model_method),
    }
    if engine != "polars":
        from safemicro.scale import assess_source

        if records_out or numeric or household_level:
            raise SafemicroError("--records, --numeric and --household-level need --engine polars")
        scaled = assess_source(data, engine=engine, sensitive=_split(sensitive), suda=suda, **options)
        _write_all([(p, w) for p, w in ((json_out, scaled.write_json), (html_out, scaled.write_html)) if p])
        _print_summary(scaled.summary)
        return
    kwargs = {"encoding": encoding} if encoding else {}
    dataset = _read_while_importing(data, kwargs)
    from safemicro.assess import assess as run_assess

    if the_plan:
        the_plan.check_columns(dataset.frame.columns, source=plan)
    result = run_assess(
        dataset,
        household_level=_split(household_level),
        sensitive=_split(sensitive),
        numeric_keys=_split(numeric),
        suda=suda,
        population=population,
        **options,
    )
    _write_all(
        [
            (path, writer)
            for path, writer in (
                (json_out, result.write_json),
                (records_out, result.write_records),
                (html_out, result.write_html),
            )
            if path
        ]
    )
    _print_summary(result.summary)
    for label, path in (("summary", json_out), ("records", records_out), ("report", html_out)):
        if path:
            out.print(f"{label}: {path}", highlight=False, markup=False)


def _model_risk_option(enabled: bool, methods: list[str]) -> bool | dict:
    """``--model-risk`` alone: True; with ``--model-risk-method``: the estimators to add."""
    if not methods:
        return enabled
    from safemicro.risk.model_methods import METHODS  # SciPy: only when estimators are named

    chosen = [m for value in methods for m in _split(value)]
    for m in chosen:
        if m not in METHODS:
            raise SafemicroError(f"--model-risk-method: unknown estimator {m!r}; one of {', '.join(METHODS)}")
    return {"methods": chosen} if chosen else enabled


def _read_while_importing(data: Path, kwargs: dict):
    """Read ``data`` in a thread (Polars decodes it without the GIL) while this one imports
    NumPy and the risk measures: at a million records each takes about a tenth of a second.
    The measures use BLAS on the small key table at most, so OpenBLAS starts one thread
    rather than a pool that spins on every core at import (unless the user set a number).
    The cyclic GC is paused meanwhile: imports make long-lived objects, not garbage, and
    its passes over them cost ~40 ms here."""
    from safemicro.background import Background
    from safemicro.io.readers import read

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        reading = Background(read, data, **kwargs)
        import safemicro.assess  # noqa: F401 - NumPy, Pydantic models, the risk measures

        return reading.result()
    finally:
        if gc_was_on:
            gc.enable()


def _print_summary(s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"Disclosure risk — {escape(s.get('source') or 'data')}", show_header=False)
    t.add_row("records", f"{s['n_records']:,}")
    t.add_row("keys", escape(", ".join(s["keys"])))
    if s["k_anonymity"] is None:  # continuous-only data
        t.add_row("k-anonymity, global and individual risk", "not applicable (no categorical keys)")
    else:
        _print_key_risk(t, s)
    if s.get("numeric_risk"):
        nr = s["numeric_risk"]
        t.add_row("numeric keys", escape(", ".join(nr["variables"])))
        t.add_row(
            "interval disclosure",
            f"{nr['interval_disclosure']:.4f} (share of records whose values all lie within ±5 % sd)",
        )
        t.add_row("records with an outlying numeric value", f"{nr['n_records_with_outlier']:,}")
    if s.get("suda2"):
        t.add_row("SUDA2: records with MSUs", f"{s['suda2']['n_score_gt0']:,}")
    for c in s.get("checks") or []:
        t.add_row(c["target"], _mark(c) + f" — {escape(c['message'])}")
    out.print(t)


def _mark(check: dict) -> str:
    """met / not met / n/a (a target that does not apply, e.g. k without categorical keys)."""
    if check["passed"] is None:
        return "[dim]n/a[/]"
    return "[green]met[/]" if check["passed"] else "[red]not met[/]"


def _print_key_risk(t, s: dict) -> None:
    t.add_row("distinct keys", f"{s['k_anonymity']['n_distinct_keys']:,}")
    for kk, v in s["k_anonymity"]["violations"].items():
        t.add_row(f"records violating {kk}-anonymity", f"{v:,}")
    g = s["global_risk"]
    t.add_row(
        "global risk", f"{g['percent']:.3f} % ({g['expected_reidentifications']:.2f} expected re-identifications)"
    )
    if s.get("household_risk"):
        h = s["household_risk"]
        t.add_row("household risk", f"{h['percent']:.3f} % ({h['expected_reidentifications']:.2f} expected)")
    i = s["individual_risk"]
    t.add_row("max individual risk", f"{i['max']:.4f}")
    t.add_row("records with risk > 0.1", f"{i['n_above_0_1']:,}")


@app.command()
@_friendly
def init(
    data: Path = typer.Argument(..., help="the microdata file"),
    output: Path = typer.Option(Path("plan.yaml"), "--out", "-o", help="where to write the draft plan"),
    tier: str = typer.Option("suf", "--tier", help="puf, suf or enclave"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing plan"),
    encoding: str | None = typer.Option(None, "--encoding", help="text encoding of a CSV file"),
) -> None:
    """Draft a release plan from the data: direct identifiers, keys, weight, household."""
    from safemicro import io
    from safemicro.draft import draft_plan
    from safemicro.plan import save_plan

    check_outputs([data], [output])
    if output.exists() and not force:
        raise SafemicroError("plan exists already (use --force to overwrite)", file=str(output))
    kwargs = {"encoding": encoding} if encoding else {}
    draft = draft_plan(io.read(data, **kwargs), tier=tier)
    save_plan(draft.plan, output)
    _print_reasons(draft)
    out.print(f"draft plan: {output} — review every role before you rely on it", highlight=False, markup=False)


def _print_reasons(draft) -> None:
    from rich.table import Table

    t = Table(title="Draft roles", show_lines=False)
    t.add_column("variable")
    t.add_column("role")
    t.add_column("why")
    role_of = {v: r for v, r in draft.plan.roles.assignments()}
    for name, why in draft.reasons.items():
        t.add_row(escape(name), role_of.get(name, "other"), escape(why))
    out.print(t)


@app.command()
@_friendly
def anonymize(
    data: Path = typer.Argument(..., help="microdata file, or a SUF release bundle folder (for a PUF)"),
    plan: Path = typer.Option(..., "--plan", help="release plan (YAML) with roles, targets and steps"),
    output: Path = typer.Option(..., "--out", "-o", help="folder for the release bundle"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing bundle folder"),
    require_targets: bool = typer.Option(
        False, "--require-targets", help="fail (exit 3, nothing written) if the risk targets are not met"
    ),
    copy: list[str] = typer.Option(
        [],
        "--copy",
        help="also write the released file as csv, parquet, dta or sav (repeatable; added to the plan's "
        "release.copies, default parquet)",
    ),
    engine: str = typer.Option(
        "polars",
        "--engine",
        help="polars (in memory, full bundle); duckdb/polars-streaming/spark: Parquet in row groups",
    ),
) -> None:
    """Apply a release plan and write the release bundle (data, reports, form, lock, checksums)."""
    from safemicro.plan import load_plan
    from safemicro.release import anonymize as run_anonymize

    check_outputs([data, plan], folders=[output], overwrite=overwrite)
    if engine != "polars":
        from safemicro.scale.cli import anonymize_out_of_core

        anonymize_out_of_core(data, plan, output, engine, overwrite=overwrite, require_targets=require_targets)
        return
    the_plan = load_plan(plan)
    if copy:
        wanted = list(dict.fromkeys([*the_plan.release.copies, *(c.strip().lower().lstrip(".") for c in copy)]))
        try:
            the_plan.release.copies = wanted
        except ValueError:
            raise SafemicroError(f"--copy takes csv, parquet, dta or sav, got {', '.join(copy)}") from None
    release = run_anonymize(data, the_plan)
    for c in release.report["checks"]:
        mark = _mark(c)
        out.print(f"{escape(c['target'])}: {mark} — {escape(c['message'])}", highlight=False)
    if not release.targets_met:
        if require_targets:
            err.print("[bold red]error:[/] risk targets not met; no bundle written", highlight=False)
            raise typer.Exit(3)
        err.print("[yellow]warning:[/] risk targets not met (see report.html)", highlight=False)
    for step in release.report["steps"]:
        total = sum(step["changed"].values())
        out.print(f"step {step['index']} {step['name']}: {total:,} cells changed", highlight=False, markup=False)
    paths = release.write(output, overwrite=overwrite)
    out.print(f"release bundle: {output} ({len(paths)} files)", highlight=False, markup=False)


@app.command()
@_friendly
def steps() -> None:
    """List the plan steps (anonymization methods) and their parameters."""
    from rich.table import Table

    from safemicro.methods import STEPS
    from safemicro.plaintext import first_paragraph

    t = Table(title="Plan steps", show_lines=True)
    t.add_column("step", no_wrap=True)  # a name the user copies into a plan
    t.add_column("parameters (default)")
    t.add_column("what it does")
    for name in sorted(STEPS):
        spec = STEPS[name]
        params = []
        for field, info in spec.params.model_fields.items():
            default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
            params.append(f"{field} ({default})")
        t.add_row(name, escape("\n".join(params)), escape(first_paragraph(spec.params.__doc__ or spec.run.__doc__)))
    out.print(t)


@app.command()
@_friendly
def verify(bundle: Path = typer.Argument(..., help="release bundle folder")) -> None:
    """Check a release bundle against its SHA256SUMS."""
    from safemicro.release import verify_bundle

    if not bundle.is_dir():
        raise SafemicroError("not a folder", file=str(bundle))
    problems = verify_bundle(bundle)
    for p in problems:
        err.print(f"[red]{escape(p)}[/]", highlight=False)
    if problems:
        raise typer.Exit(1)
    out.print(f"{bundle}: all checksums verify", highlight=False, markup=False)


@app.command()
@_friendly
def example(
    output: Path = typer.Argument(Path("survey.dta"), help="file to write (.dta, .sav, .csv, .parquet)"),
    households: int = typer.Option(2000, "--households", help="number of households"),
    seed: int = typer.Option(20261122, "--seed"),
) -> None:
    """Write the bundled example: a synthetic forced-displacement household survey."""
    from safemicro import io
    from safemicro.examples.survey import generate_survey

    check_outputs([], [output])
    io.write(generate_survey(n_households=households, seed=seed), output)
    out.print(f"example survey: {output}", highlight=False, markup=False)


@app.command()
@_friendly
def demo(output: Path = typer.Option(Path("out"), "--out", help="output folder")) -> None:
    """The main job on the bundled example: generate, draft a plan, assess, anonymize (SUF, then a nested PUF)."""
    from safemicro.demo import run_demo

    check_outputs([], folders=[output], overwrite=True)
    paths = run_demo(output, console=out)
    for label, path in paths.items():
        out.print(f"{label}: {path}", highlight=False, markup=False)


def main() -> None:
    # Pydantic scans every installed package's entry points for its plugins (~10 ms) when it
    # builds the first model; no command uses any. PYDANTIC_DISABLE_PLUGINS= (empty) keeps them.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app()
    finally:
        # The process ends here: Python's shutdown would walk every object still alive with the
        # cyclic GC (~0.1 s of CPU after `assess` on a million records). Frozen, they are freed
        # by reference counting and the OS as before; the outputs are closed files already.
        gc.disable()
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
