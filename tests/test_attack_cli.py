"""Every release attack command of `safemicro attack` (one shared set of arguments and
options): runs end to end on real files, writes its JSON, and keeps its options."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from safemicro.cli import app

SHARED = ["--control", "--n-attacks", "--seed", "--json", "--html", "--encoding"]
COMMANDS = {
    "singling-out": (["--mode", "univariate", "--columns", "urbrur,sex,age,roof"], ["--mode", "--n-cols", "--columns"]),
    "linkability": (["--first", "urbrur,sex", "--second", "age,roof"], ["--first", "--second", "--neighbors"]),
    "inference": (["--known", "urbrur,sex,age", "--secret", "roof"], ["--known", "--secret", "--regression"]),
    "membership": (["--columns", "urbrur,sex,age,roof"], ["--columns"]),
    "all": (["--secret", "roof", "--known", "urbrur,sex,age"], ["--secret", "--known"]),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory, testdata):
    d = tmp_path_factory.mktemp("attack_cli")
    cols = ["urbrur", "sex", "age", "roof"]
    testdata[:600].select(cols).write_csv(d / "ori.csv")
    testdata[600:900].select(cols).write_csv(d / "ctl.csv")
    testdata[900:1500].select(cols).write_csv(d / "rel.csv")
    return d


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_release_attack_command(files, command):
    own, _ = COMMANDS[command]
    out = files / f"{command}.json"
    args = [
        "attack",
        command,
        str(files / "ori.csv"),
        str(files / "rel.csv"),
        "--control",
        str(files / "ctl.csv"),
        "--n-attacks",
        "40",
        "--seed",
        "3",
        "--json",
        str(out),
        *own,
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    key = command.replace("-", "_")
    assert result["kind"] == "attacks" or key == "all"
    if key == "all":
        assert {"singling_out", "linkability", "inference", "membership"} <= set(result)
    else:
        assert key in result and result["n_attacks"] == 40
    assert "risk" in res.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_release_attack_options(command):
    res = CliRunner().invoke(app, ["attack", command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 0
    for option in SHARED + COMMANDS[command][1]:
        assert option in res.output, option
    assert "original" in res.output and "release" in res.output


def test_membership_needs_a_control(files):
    res = CliRunner().invoke(app, ["attack", "membership", str(files / "ori.csv"), str(files / "rel.csv")])
    assert res.exit_code == 2 and "--control" in res.output


def test_release_attack_bad_input_is_one_line(files):
    res = CliRunner().invoke(
        app,
        ["attack", "inference", str(files / "ori.csv"), str(files / "rel.csv"), "--known", "nope", "--secret", "roof"],
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
