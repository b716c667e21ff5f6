"""The curator workbench end to end: Playwright driving Debian's chromium against a real
`safemicro workbench` server on 127.0.0.1 (Playwright never downloads a browser here).

The curator's path on the example survey: accept the draft roles, set the keys, look at
the risk, add a recode and a local suppression (3-anonymity violations go to 0), undo the
suppression (they come back), redo it, download the plan, release; the bundle is the one
`safemicro anonymize` writes with the downloaded plan (SHA256SUMS equal). Then the server
restarts mid-project and the curator continues. Screenshots of every page are saved under
the test's tmp folder (and in $WB_SHOTS when set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safemicro.cli import app as cli_app
from safemicro.examples.survey import write_example
from workbench_support import CHROMIUM, Server

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (/usr/bin/chromium; `make browser`)"
)
sync_api = pytest.importorskip("playwright.sync_api")

KEYS = ["camp", "origin", "hh_size", "relationship", "sex", "age"]
NOT_KEYS = ["arrival_year", "livelihood", "marital", "education", "disability"]  # the draft's other keys


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("workbench")
    write_example(work / "survey.dta", n_households=800)  # `safemicro example --households 800`: quicker, same survey
    return work


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page, work: Path, name: str) -> None:
    page.screenshot(path=str(work / "shots" / f"{name}.png"), full_page=True)
    if os.environ.get("WB_SHOTS"):
        Path(os.environ["WB_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "shots" / f"{name}.png", Path(os.environ["WB_SHOTS"]) / f"{name}.png")


def go(page, name: str) -> None:
    """Follow a navigation link (htmx swaps the page in and pushes the URL)."""
    page.click(f"#nav-{name}")
    page.wait_for_selector(f"#nav-{name}.on")


def violations(page, column: str = "now") -> int:
    return int(page.locator(f"#cmp-{column}-3").inner_text().replace(",", ""))


def test_curator_path_release_equals_cli(work, browser):
    (work / "shots").mkdir(exist_ok=True)
    server = Server(work / "project", work / "survey.dta")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page.goto(server.url)  # the token in the URL becomes a cookie, and leaves the URL
        assert "token=" not in page.url
        go(page, "data")
        assert page.locator("#variables tbody tr").count() > 20
        assert "Neema transit centre" in page.locator("#variables").inner_text()  # value labels
        shot(page, work, "1-data")

        go(page, "roles")
        page.click("#accept-draft")
        page.wait_for_selector("#message:has-text('draft roles accepted')")
        for name in NOT_KEYS:
            page.select_option(f"#role-{name}", "other")
            page.uncheck(f"input[name=hhlevel_{name}]")
        for name in KEYS:
            assert page.locator(f"#role-{name}").input_value() == "key"
        page.click("#save-roles")
        page.wait_for_selector("#message:has-text('roles saved')")
        shot(page, work, "2-roles")

        go(page, "risk")
        before = int(page.locator("#viol-3").inner_text().replace(",", ""))
        assert before > 0.6 * int(page.locator("#n-records").inner_text().replace(",", ""))  # most records
        page.locator("#riskiest tbody tr").first.click()  # which variables make it rare?
        page.wait_for_selector("#why-table")
        assert page.locator("#why-table tbody tr").count() == len(KEYS)
        page.wait_for_selector("#plot-risk svg")
        shot(page, work, "3-risk")

        go(page, "methods")
        page.select_option("#step-select", "recode")
        page.click("#choose-step")
        page.fill("#p_variable", "age")
        page.fill("#p_breaks", "[0, 5, 10, 15, 18, 25, 35, 45, 60, 200]")
        page.select_option("#p_right", "false")
        page.click("#submit-step")
        page.wait_for_selector("#message:has-text('recode')")
        after_recode = violations(page)
        assert 0 < after_recode < before
        page.select_option("#step-select", "local_suppression")
        page.click("#choose-step")
        page.fill("#p_k", "3")
        page.click("#submit-step")
        page.wait_for_selector("#message:has-text('local_suppression')")
        assert violations(page) == 0
        assert violations(page, "original") == before
        shot(page, work, "4-methods")

        page.click("#undo")
        page.wait_for_selector("#message:has-text('undone')")
        assert violations(page) == after_recode  # they come back
        page.click("#redo")
        page.wait_for_selector("#message:has-text('redone')")
        assert violations(page) == 0

        with page.expect_download() as dl:
            page.click("#download-plan")
        plan_file = work / "plan.yaml"
        dl.value.save_as(plan_file)
        assert "local_suppression" in plan_file.read_text()

        go(page, "utility")
        page.wait_for_selector("#utility-yaml")
        shot(page, work, "5-utility")

        go(page, "attack")
        page.click("#run-attack")
        page.wait_for_selector("#attack-measured", timeout=30_000)
        shot(page, work, "6-attack")

        go(page, "release")
        page.uncheck("input[name=document]")
        page.click("#run-release")
        page.wait_for_selector("#sha256sums", timeout=30_000)
        shot(page, work, "7-release")
        go(page, "synthetic")
        shot(page, work, "8-synthetic")
        page.close()
    finally:
        server.stop()

    result = CliRunner().invoke(
        cli_app, ["anonymize", str(work / "survey.dta"), "--plan", str(plan_file), "--out", str(work / "cli")]
    )
    assert result.exit_code == 0, result.output
    released = work / "project" / "results" / "release"
    assert (released / "SHA256SUMS").read_text() == (work / "cli" / "SHA256SUMS").read_text()
    assert (work / "survey.dta").read_bytes() == (work / "project" / "data" / "survey.dta").read_bytes()


def test_restart_mid_project_and_continue(work, browser):
    """The server stops and starts again on the same project: roles, steps, history and the
    undo stack are all there, the old token no longer opens it, and work goes on."""
    if not (work / "project" / "project.json").is_file():
        pytest.skip("needs the curator path's project")
    server = Server(work / "project", work / "survey.dta")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(server.url)
        go(page, "methods")
        assert page.locator("#steps > li").count() == 2
        assert violations(page) == 0
        page.locator("#step-1 button.danger").click()  # remove the local suppression
        page.wait_for_selector("#message:has-text('removed step 2')")
        assert violations(page) > 0
        page.click("#undo")
        page.wait_for_selector("#message:has-text('undone')")
        assert violations(page) == 0

        # bad input through the browser: a clear message on the page, the state unchanged
        state = (work / "project" / "project.json").read_bytes()
        page.fill("#paste-yaml", "recode: {variable: agee, breaks: [0, 18, 200]}")
        page.click("#paste-submit")
        assert "did you mean 'age'" in page.locator("#error").inner_text()
        assert page.locator("#steps > li").count() == 2
        go(page, "data")
        page.set_input_files(
            "#upload-file",
            files=[{"name": "broken.sav", "mimeType": "application/octet-stream", "buffer": b"\0" * 4096}],
        )
        page.click("#upload")
        page.wait_for_selector("#error")
        assert "broken.sav" in page.locator("#error").inner_text()
        shot(page, work, "9-bad-upload")
        assert (work / "project" / "project.json").read_bytes() == state
        page.close()
    finally:
        server.stop()
