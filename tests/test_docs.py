"""The documentation site builds with `mkdocs build --strict` (every warning an error: a
broken link, a docstring the API reference cannot render, a guide code block that raises,
anything loaded from the network), and the guide's numbers are the ones the code computes.

The tutorials are rendered without being executed here (SAFEMICRO_DOCS_EXECUTE=false):
tests/test_tutorials.py runs each of them in a fresh kernel, and `make docs` executes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (in the test extra) installs MkDocs")
pytest.importorskip("material")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "SAFEMICRO_DOCS_EXECUTE": "false",
        "NO_MKDOCS_2_WARNING": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return out


def test_every_page_is_built(site):
    for page in [
        "index.html",
        "guide/03-risk.html",
        "guide/09-mistakes.html",
        "tutorials/05_mosaic_attack.html",
        "course/index.html",
        "reference/assess.html",
    ]:
        assert (site / page).stat().st_size > 2000, page


def test_guide_numbers_come_from_the_code(site):
    """Independent of the page: the example survey assessed with its reviewed plan here."""
    from safemicro.assess import assess
    from safemicro.examples import SURVEY_PLAN, generate_survey
    from safemicro.plan import load_plan

    s = assess(generate_survey(), plan=load_plan(SURVEY_PLAN)).summary
    page = (site / "guide" / "03-risk.html").read_text()
    assert f"{s['global_risk']['percent']:.2f} %" in page
    assert f"{s['k_anonymity']['violations']['3']:,}" in page
    assert "<svg" in page  # the figures are drawn at build time, inline


def test_api_reference_is_read_from_the_docstrings(site):
    page = (site / "reference" / "assess.html").read_text()
    assert "Assess the disclosure risk of" in page and "max_global_risk" in page


def test_nothing_is_loaded_from_the_network(site):
    import re

    fetched = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']?https?://|import\(\s*["']https?://""")
    offenders = [p.name for p in site.rglob("*.html") if fetched.search(p.read_text())]
    assert not offenders
