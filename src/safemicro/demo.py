"""The main job on the bundled example, end to end: what `make demo` runs.

Generate the example forced-displacement survey, write it as Stata, read it back (labels
included), draft a release plan from the data, then assess the risk as a curator would
after reviewing that draft -- with the bundled, reviewed plan of the example
(``examples/survey_plan.yaml``) -- including SUDA2 and l-diversity, and write the JSON
summary, per-record risks and the HTML report. Then anonymize: the scientific use file
bundle (``suf/``) from the raw file, and the public use file bundle (``puf/``) from the
SUF bundle with ``examples/survey_plan_puf.yaml`` (nested tiers).
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
from safemicro.release import anonymize
from safemicro.examples.survey import generate_survey
from safemicro.plan import load_plan, save_plan


def run_demo(out_dir: str | Path, *, console: Console | None = None) -> dict[str, Path]:
    """Run the demo into ``out_dir``; returns the paths written."""
    console = console or Console(quiet=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    return paths
