"""The main job on the bundled example, end to end: what `make demo` runs.

Generate the example forced-displacement survey, write it as Stata, read it back (labels
and missing codes included), draft a release plan, assess the risk with SUDA2 and
l-diversity, and write the JSON summary, per-record risks and the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from safemicro import io
from safemicro.assess import assess
from safemicro.draft import draft_plan
from safemicro.examples.survey import generate_survey
from safemicro.plan import save_plan


def run_demo(out_dir: str | Path, *, console: Console | None = None) -> dict[str, Path]:
    """Run the demo into ``out_dir``; returns the paths written."""
    console = console or Console(quiet=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "example data": out / "survey.dta",
        "draft plan": out / "plan.yaml",
        "summary": out / "risk.json",
        "records": out / "risk_records.csv",
        "report": out / "risk_report.html",
    }
    console.print("generating the example survey …")
    io.write(generate_survey(), paths["example data"])
    dataset = io.read(paths["example data"])
    draft = draft_plan(dataset)
    save_plan(draft.plan, paths["draft plan"])
    flagged = ", ".join(draft.plan.roles.direct_ids) or "none"
    console.print(f"direct identifiers flagged: {flagged}")
    console.print(f"keys proposed: {', '.join(draft.plan.roles.keys)}")
    result = assess(dataset, plan=draft.plan, suda=True)
    result.write_json(paths["summary"])
    result.write_records(paths["records"])
    result.write_html(paths["report"], title="Disclosure risk — example displacement survey")
    s = result.summary
    console.print(
        f"{s['n_records']:,} records, {s['k_anonymity']['violations']['3']:,} violate 3-anonymity, "
        f"global risk {s['global_risk']['percent']:.2f} %"
    )
    return paths
