"""The main job on the bundled example, end to end: what `make demo` runs.

Generate the example forced-displacement survey, write it as Stata, read it back (labels
included), draft a release plan from the data, then assess the risk as a curator would
after reviewing that draft -- with the bundled, reviewed plan of the example
(``examples/survey_plan.yaml``) -- including SUDA2 and l-diversity, and write the JSON
summary, per-record risks and the HTML report. Then anonymize: the scientific use file
bundle (``suf/``) from the raw file, and the public use file bundle (``puf/``) from the
SUF bundle with ``examples/survey_plan_puf.yaml`` (nested tiers), documented for a
microdata library (``puf_docs/``: DDI Codebook 2.5, HTML codebook, Data Package). Finally
synthesize the households (``synthetic/``: the synthetic file, its internal report and an
evaluation page comparing it with real data kept back from the synthesizer). The mobile
section (``mobile/``) goes from synthetic call records to an analyst's displacement report
through a running node (see safemicro.demo_mobility).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from rich.console import Console

from safemicro import io
from safemicro.assess import assess
from safemicro.draft import draft_plan
from safemicro.examples import SURVEY_PLAN, SURVEY_PUF_PLAN
from safemicro.examples.survey import generate_survey
from safemicro.outputs import check_folder, mark_folder
from safemicro.plan import load_plan, save_plan
from safemicro.release import anonymize


def run_demo(out_dir: str | Path, *, console: Console | None = None, mobile: bool = True) -> dict[str, Path]:
    """Run the demo into ``out_dir`` (new, empty, or an earlier demo's); returns the paths written.
    With ``mobile``, also the mobile-data section into ``out_dir/mobile`` (safemicro.demo_mobility)."""
    console = console or Console(quiet=True)
    out = check_folder(out_dir, overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    mark_folder(out)
    paths = {
        "example data": out / "survey.dta",
        "draft plan": out / "plan.draft.yaml",
        "reviewed plan": out / "plan.yaml",
        "summary": out / "risk.json",
        "records": out / "risk_records.csv",
        "report": out / "risk_report.html",
        "SUF bundle": out / "suf",
        "PUF plan": out / "plan_puf.yaml",
        "PUF bundle": out / "puf",
        "PUF documentation": out / "puf_docs",
        "synthetic data": out / "synthetic" / "survey_synthetic.dta",
        "synthesis report": out / "synthetic" / "synthesis.json",
        "evaluation": out / "synthetic" / "evaluation.html",
    }
    console.print("generating the example survey …")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        io.write(generate_survey(), paths["example data"])
    for w in caught:
        console.print(f"note: {w.message}", highlight=False)
    dataset = io.read(paths["example data"])
    draft = draft_plan(dataset)
    save_plan(draft.plan, paths["draft plan"])
    flagged = ", ".join(draft.plan.roles.direct_ids) or "none"
    console.print(f"draft: direct identifiers flagged: {flagged}", highlight=False)
    console.print(f"draft: keys proposed: {', '.join(draft.plan.roles.keys)}", highlight=False)
    shutil.copyfile(SURVEY_PLAN, paths["reviewed plan"])
    plan = load_plan(paths["reviewed plan"])
    console.print(f"assessing with the reviewed plan: keys {', '.join(plan.roles.keys)}", highlight=False)
    result = assess(dataset, plan=plan, suda=True)
    result.write_json(paths["summary"])
    result.write_records(paths["records"])
    result.write_html(paths["report"], title="Disclosure risk — example displacement survey")
    s = result.summary
    console.print(
        f"{s['n_records']:,} records, {s['k_anonymity']['violations']['3']:,} violate 3-anonymity, "
        f"global risk {s['global_risk']['percent']:.2f} %"
    )
    shutil.copyfile(SURVEY_PUF_PLAN, paths["PUF plan"])
    for tier, source, plan_path in (
        ("SUF", paths["example data"], paths["reviewed plan"]),
        ("PUF", paths["SUF bundle"], paths["PUF plan"]),
    ):
        console.print(f"anonymizing: {tier} from {source.name} with {plan_path.name} …", highlight=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            release = anonymize(source, plan_path)
            release.write(paths[f"{tier} bundle"], overwrite=True)
        for w in caught:
            console.print(f"note: {w.message}", highlight=False)
        before, after = release.report["risk_before"], release.report["risk_after"]
        k = release.plan.targets.k
        console.print(
            f"{tier}: {before['k_anonymity']['violations'][str(k)]:,} → "
            f"{after['k_anonymity']['violations'][str(k)]:,} records violate {k}-anonymity, global risk "
            f"{before['global_risk']['percent']:.2f} % → {after['global_risk']['percent']:.3f} %; "
            + ("targets met" if release.targets_met else "TARGETS NOT MET"),
            highlight=False,
        )
    _document(paths, console)
    _synthesize(dataset, plan, paths, console)
    console.print(
        f"curator workbench on this data: safemicro workbench {paths['example data']} "
        "(opens the browser on 127.0.0.1 with a one-time token; --no-browser prints the URL)",
        highlight=False,
    )
    if mobile:
        from safemicro.demo_mobility import run_mobile_demo

        paths.update(run_mobile_demo(out / "mobile", console=console))
    return paths


def _document(paths: dict[str, Path], console: Console) -> None:
    """DDI Codebook 2.5, HTML codebook and Data Package of the PUF, study fields from its plan."""
    from safemicro.metadata import document

    console.print("documenting the PUF (DDI Codebook 2.5, codebook, Data Package) …")
    written = document(paths["PUF bundle"], paths["PUF documentation"], plan=paths["PUF plan"])
    console.print(f"PUF documentation: {', '.join(p.name for p in written.values())}", highlight=False)


def _household_split(dataset, household: str, *, share: float, seed: int | None):
    """(training, holdout): whole households, ``share`` of them held back at random."""
    import numpy as np
    import polars as pl

    ids = dataset.frame.get_column(household).unique(maintain_order=True)
    held = ids.gather(np.random.default_rng(seed).permutation(ids.len())[: round(share * ids.len())])
    in_holdout = pl.col(household).is_in(held.implode())
    return (dataset.with_frame(dataset.frame.filter(~in_holdout)), dataset.with_frame(dataset.frame.filter(in_holdout)))


def _synthesize(dataset, plan, paths: dict[str, Path], console: Console) -> None:
    """Household-relational synthetic data with safeguards, and its evaluation."""
    import json

    from safemicro.atomic import write_text
    from safemicro.evaluate import evaluate, write_evaluation_html
    from safemicro.synth.synthesis import synthesize

    console.print("synthesizing households (CART, copy safeguards; 20 % of households kept back for the evaluation) …")
    paths["synthetic data"].parent.mkdir(exist_ok=True)
    train, holdout = _household_split(dataset, plan.roles.household, share=0.2, seed=plan.seed)
    result = synthesize(train, plan=plan, seed=plan.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Stata's user-missing note was shown above
        result.write(paths["synthetic data"])
    write_text(paths["synthesis report"], json.dumps(result.report, indent=2, ensure_ascii=False, default=str) + "\n")
    real, kept_back = (d.with_frame(d.frame.drop(plan.roles.direct_ids)) for d in (train, holdout))
    evaluation = evaluate(
        real,
        result.dataset,
        holdout=kept_back,
        keys=plan.roles.keys,
        secrets=plan.roles.sensitive,
        target="legal_status",
        seed=1,
    )
    write_evaluation_html(evaluation, paths["evaluation"])
    guards = result.report["safeguards"]
    s = evaluation["summary"]
    console.print(
        f"synthetic: {result.dataset.n:,} persons; quality {s['quality']:.3f}, k-marginal {s['k_marginal']:.0f}; "
        f"replicated uniques replaced: {guards['replicated_uniques']['units_replaced']} households; "
        f"Q_δ {'passed' if guards['q_delta']['passed'] else 'NOT passed'}; "
        f"privacy checks {'passed' if s['privacy_passed'] else 'NOT passed'}",
        highlight=False,
    )
