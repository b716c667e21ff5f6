"""What a curator reads and joins: risk.csv carries the record's row number (and household
id) to join it back to the input; ``safemicro steps`` shows words, not reStructuredText."""

from __future__ import annotations

import re

import polars as pl
from typer.testing import CliRunner

from conftest import SDC_DATA
from safemicro.cli import app
from safemicro.plaintext import rst_to_plain


def _run(*args):
    return CliRunner(env={"SAFEMICRO_DEBUG": None, "COLUMNS": "220"}).invoke(app, [str(a) for a in args])


def test_risk_csv_joins_back_to_the_input(tmp_path):
    data = tmp_path / "data.csv"
    frame = pl.read_csv(SDC_DATA / "testdata.csv").head(400)
    frame.write_csv(data)
    out = tmp_path / "risk.csv"
    r = _run("assess", data, "--keys", "urbrur,roof,walls,sex", "--household", "ori_hid", "--records", out)
    assert r.exit_code == 0, r.stderr
    risk = pl.read_csv(out)
    assert risk.columns[:2] == ["row", "ori_hid"]
    assert risk.get_column("row").to_list() == list(range(1, 401))  # 1-based, as in error messages
    assert risk.get_column("ori_hid").to_list() == frame.get_column("ori_hid").to_list()
    # the join a curator does: risk back onto the records by row number
    joined = frame.with_row_index("row", offset=1).join(risk.select("row", "fk"), on="row")
    assert joined.height == 400
    # without a household the row number alone
    r = _run("assess", data, "--keys", "urbrur,roof", "--records", out)
    assert r.exit_code == 0 and pl.read_csv(out).columns[:2] == ["row", "fk"]


def test_steps_prints_plain_text():
    r = _run("steps")
    assert r.exit_code == 0, r.stderr
    assert "``" not in r.stdout and not re.search(r":\w+:`", r.stdout), r.stdout
    # the description column read cell by cell (the console may be narrow and wrap it)
    cells = [line.split("│")[3].strip() for line in r.stdout.splitlines() if line.count("│") == 4]
    described = " ".join(c for c in cells if c)
    assert "topcode/bottomcode: values beyond value become replacement" in described
    assert "recode: bands (breaks), a merge (map) or a hierarchy level" in described


def test_rst_roles_links_and_emphasis_become_words():
    assert rst_to_plain(":func:`~safemicro.methods.recode.topcode` and :class:`Plan`") == "topcode and Plan"
    assert (
        rst_to_plain(":ref:`the plan <plan-section>`, `sdcMicro <https://sdcTools.github.io>`_") == "the plan, sdcMicro"
    )
    assert rst_to_plain("**not** *always*, but 2 * 3 * 4 stays") == "not always, but 2 * 3 * 4 stays"
    assert rst_to_plain("For example::") == "For example:"
