"""The synthetic-data commands: `safemicro synthesize` (CART, households, DP) and
`safemicro evaluate` (utility and privacy of a synthetic file against the real one)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from safemicro.cli_support import check_outputs, err, friendly, out, write_all
from safemicro.cli_support import split_list as _split

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the synthetic-data commands to ``app``."""
    app.command()(synthesize)
    app.command()(evaluate)


@friendly
def synthesize(
    data: Path = typer.Argument(..., help="microdata file (CSV, Parquet, Stata, SPSS)"),
    output: Path = typer.Option(..., "--out", "-o", help="synthetic file to write (format from the extension)"),
    plan: Path | None = typer.Option(None, "--plan", help="release plan: roles (keys, household, direct ids)"),
    n: int | None = typer.Option(None, "--n", help="records to draw (households in household mode)"),
    seed: int | None = typer.Option(None, "--seed", help="random seed (drawn and reported when absent)"),
    epsilon: float | None = typer.Option(None, "--epsilon", help="differential privacy: total epsilon (MST)"),
    delta: float = typer.Option(1e-6, "--delta", help="differential privacy: delta"),
    household: str | None = typer.Option(None, "--household", help="household id: household-relational synthesis"),
    keys: str | None = typer.Option(
        None, "--keys", help="key variables for the replicated-uniques safeguard (default: the plan's keys)"
    ),
    report: Path | None = typer.Option(None, "--report", help="write the internal JSON report (holds the seed)"),
    hierarchy: list[Path] | None = typer.Option(
        None, "--hierarchy", help="DP: a public hierarchy, CSV 'child,parent' named as the columns (repeatable)"
    ),
    fit_sample: int | None = typer.Option(None, "--fit-sample", help="fit on N sampled records (0: all)"),
) -> None:
    """Synthesize a file with copy safeguards (CART; households; DP with --epsilon)."""
    import json

    from safemicro.synth.synthesis import synthesize as run_synthesize

    outputs = [p for p in (output, report) if p]
    check_outputs([data, plan, *(hierarchy or [])], outputs)
    result = run_synthesize(
        data,
        plan=plan,
        n=n,
        seed=seed,
        epsilon=epsilon,
        delta=delta,
        household=household,
        keys=_split(keys) or None,
        hierarchies=hierarchy,
        fit_sample=fit_sample,
    )
    jobs = [(output, lambda tmp: _write_like(result.dataset, tmp, output))]
    if report:
        text = json.dumps(result.report, indent=2, ensure_ascii=False, default=str) + "\n"
        jobs.append((report, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    write_all(jobs)
    guards = result.report["safeguards"]
    ru = guards.get("replicated_uniques", {})
    qd = guards.get("q_delta", {})
    out.print(
        f"{result.report['method']}: {result.dataset.n:,} synthetic records; "
        f"replicated uniques replaced: {ru.get('units_replaced', 0)} {ru.get('unit', 'record')}s; "
        f"Q_δ {qd.get('q_delta', float('nan')):.4f} (threshold {qd.get('threshold', float('nan')):.4f}, "
        + ("passed" if qd.get("passed") else "NOT passed")
        + ")",
        highlight=False,
        markup=False,
    )
    if result.report.get("privacy"):
        p = result.report["privacy"]
        out.print(f"privacy: epsilon {p.get('epsilon')}, delta {p.get('delta')}", highlight=False, markup=False)
    for note in result.report["notes"]:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    out.print(f"synthetic data: {output}", highlight=False, markup=False)


@friendly
def evaluate(
    real: Path = typer.Argument(..., help="the real data the synthesizer was fitted on"),
    synth: Path = typer.Argument(..., help="the synthetic data"),
    holdout: Path | None = typer.Option(None, "--holdout", help="real records the synthesizer never saw"),
    keys: str | None = typer.Option(None, "--keys", help="key variables for replicated uniques, comma-separated"),
    target: str | None = typer.Option(None, "--target", help="column(s) for train-on-synthetic/test-on-real"),
    group: str | None = typer.Option(None, "--group", help="geography for the k-marginal score (e.g. PUMA)"),
    secrets: str | None = typer.Option(
        None, "--secrets", help="sensitive columns the inference attack guesses, comma-separated"
    ),
    attacks: int = typer.Option(
        500, "--n-attacks", help="attacks per scenario of the attack suite (needs --holdout; 0 skips it)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed for splits, bootstrap and permutations"),
    json_out: Path | None = typer.Option(None, "--json", help="write the result as JSON"),
    html_out: Path | None = typer.Option(None, "--html", help="write the HTML report"),
) -> None:
    """Utility and privacy of a synthetic file against the real one (and a holdout)."""
    import json

    from safemicro import io
    from safemicro.evaluate import evaluate as run_evaluate
    from safemicro.evaluate import write_evaluation_html

    outputs = [p for p in (json_out, html_out) if p]
    check_outputs([real, synth, holdout], outputs)
    result = run_evaluate(
        io.read(real),
        io.read(synth),
        holdout=io.read(holdout) if holdout else None,
        keys=_split(keys) or None,
        target=_split(target) or None,
        group=group,
        seed=seed,
        attacks=attacks,
        secrets=_split(secrets) or None,
    )
    jobs = []
    if json_out:
        text = json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
        jobs.append((json_out, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    if html_out:
        jobs.append((html_out, lambda tmp: write_evaluation_html(result, tmp)))
    write_all(jobs)
    for name, value in (result.get("summary") or {}).items():
        if not isinstance(value, (dict, list)):
            out.print(f"{name}: {value}", highlight=False, markup=False)
    for label, path in (("result", json_out), ("report", html_out)):
        if path:
            out.print(f"{label}: {path}", highlight=False, markup=False)


def _write_like(dataset, tmp: Path, target: Path) -> None:
    """Write to the staged path in the target's format (the writers look at the extension)."""
    from safemicro import io

    staged = tmp.with_name(
        tmp.name + "".join(target.suffixes[-2:] if target.name.endswith(".csv.gz") else target.suffixes[-1:])
    )
    try:
        io.write(dataset, staged, report_as=target)
        staged.replace(tmp)
    finally:
        staged.unlink(missing_ok=True)
