"""The user's files are safe: an output only replaces a regular file or a folder safemicro
wrote, every command checks its outputs before any work, `document` writes all or nothing.

Named pipes stand in for devices (a test must not touch /dev/null); they are refused the
same way, and a pipe that is still a pipe afterwards shows nothing was written into it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import SDC_DATA
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.outputs import MARKER

KEYS = "urbrur,roof,walls,water,sex"
PLAN = f"""
roles:
  keys: [{KEYS}]
  weight: sampling_weight
targets:
  k: 3
steps:
  - local_suppression: {{k: 3}}
seed: 1
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A small extract of sdcMicro's testdata, a plan for it and a second copy as 'release'."""
    root = tmp_path_factory.mktemp("outputs")
    data = root / "data.csv"
    pl.read_csv(SDC_DATA / "testdata.csv").head(300).write_csv(data)
    release = root / "release.csv"
    release.write_bytes(data.read_bytes())
    plan = root / "plan.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    return {"data": data, "release": release, "plan": plan}


def run(*args) -> tuple[int, str, str]:
    r = CliRunner(env={"SAFEMICRO_DEBUG": None}).invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def is_fifo(p: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(p).st_mode)


def foreign_folder(path: Path) -> Path:
    """A folder of someone else's files (no safemicro marker)."""
    path.mkdir()
    (path / "thesis.docx").write_bytes(b"years of work")
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ item 7: only regular files


COMMANDS_WITH_A_FILE_OUTPUT = {
    "assess --json": lambda f, out: ["assess", f["data"], "--keys", KEYS, "--json", out],
    "init --force": lambda f, out: ["init", f["data"], "--out", out, "--force"],
    "synthesize --out": lambda f, out: ["synthesize", f["data"], "--out", out, "--seed", "1"],
    "evaluate --json": lambda f, out: ["evaluate", f["data"], f["release"], "--json", out, "--n-attacks", "0"],
    "attack singling-out --html": lambda f, out: ["attack", "singling-out", f["data"], f["release"], "--html", out],
    "example": lambda f, out: ["example", out, "--households", "20"],
}


@pytest.mark.parametrize("command", list(COMMANDS_WITH_A_FILE_OUTPUT))
def test_named_pipe_is_never_replaced(files, tmp_path, command):
    suffix = ".dta" if command == "example" else ".csv" if command.startswith("synth") else ".out"
    pipe = tmp_path / f"pipe{suffix}"
    os.mkfifo(pipe)
    code, stdout, stderr = run(*COMMANDS_WITH_A_FILE_OUTPUT[command](files, pipe))
    assert code == 2, (stdout, stderr)
    assert "named pipe" in stderr and str(pipe) in stderr and "regular file" in stderr, stderr
    assert "Traceback" not in stdout + stderr
    assert is_fifo(pipe)  # still the pipe: not replaced by a regular file
    assert stdout.strip() == ""  # refused before any work: nothing computed, nothing printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [pipe.name]  # no temporary file left


def test_symbolic_link_to_a_pipe_is_refused_and_to_a_file_followed(files, tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    link = tmp_path / "risk.csv"
    link.symlink_to(pipe)
    code, _, stderr = run("assess", files["data"], "--keys", KEYS, "--records", link)
    assert code == 2 and "named pipe (FIFO) (through a symbolic link)" in stderr, stderr
    assert is_fifo(pipe) and link.is_symlink()
    # a link to a regular file: the file it points to is replaced, the link stays a link
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link.unlink()
    link.symlink_to(target)
    code, _, stderr = run("assess", files["data"], "--keys", KEYS, "--records", link)
    assert code == 0, stderr
    assert link.is_symlink() and "Fk" in target.read_text().splitlines()[0].split(",")


def test_library_writers_refuse_a_pipe_too(tmp_path):
    """The atomic writers apply the same rule: the library is as safe as the command line."""
    from safemicro import io
    from safemicro.atomic import write_text
    from safemicro.io import Dataset

    pipe = tmp_path / "p.csv"
    os.mkfifo(pipe)
    with pytest.raises(SafemicroError, match="named pipe"):
        write_text(pipe, "x")
    with pytest.raises(SafemicroError, match="named pipe"):
        io.write(Dataset(frame=pl.DataFrame({"a": [1]})), pipe)
    assert is_fifo(pipe)


# ------------------------------------------------------- folders: only the ones safemicro wrote


COMMANDS_WITH_A_FOLDER_OUTPUT = {
    "anonymize --overwrite": lambda f, out: ["anonymize", f["data"], "--plan", f["plan"], "--out", out, "--overwrite"],
    "document": lambda f, out: ["document", f["data"], "--out", out],
    "demo": lambda f, out: ["demo", "--out", out],
}


@pytest.mark.parametrize("command", list(COMMANDS_WITH_A_FOLDER_OUTPUT))
def test_foreign_folder_is_never_replaced(files, tmp_path, command):
    folder = foreign_folder(tmp_path / "mine")
    before = tree(folder)
    code, stdout, stderr = run(*COMMANDS_WITH_A_FOLDER_OUTPUT[command](files, folder))
    assert code == 2, (stdout, stderr)
    assert "not written by safemicro" in stderr and str(folder) in stderr, stderr
    assert tree(folder) == before
    assert stdout.strip() == ""  # nothing done before the refusal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder left


def test_publish_dry_run_refuses_a_foreign_folder(files, tmp_path):
    docs = tmp_path / "docs"
    assert run("document", files["data"], "--out", docs, "--only", "ddi")[0] == 0
    folder = foreign_folder(tmp_path / "requests")
    code, stdout, stderr = run("publish", docs, "--dry-run", folder, "--tier", "puf")
    assert code == 2 and "not written by safemicro" in stderr and stdout.strip() == "", stderr
    assert tree(folder) == {"thesis.docx": b"years of work"}
    # into a new folder it works, and a second dry run may replace the first (it is marked)
    for _ in range(2):
        code, _, stderr = run("publish", docs, "--dry-run", tmp_path / "req2", "--tier", "puf")
        assert code == 0, stderr
    assert (tmp_path / "req2" / MARKER).is_file()


def marked_folder(path: Path) -> Path:
    """A folder an earlier safemicro run wrote (it holds the marker), with one stale file."""
    path.mkdir()
    (path / MARKER).write_text("")
    (path / "report.json").write_text("{}")
    return path


def test_output_folder_holding_the_input_is_refused(files, tmp_path):
    """--overwrite of a bundle folder that holds the input would delete the input."""
    bundle = marked_folder(tmp_path / "bundle")
    inside = bundle / "input.csv"
    inside.write_bytes(files["data"].read_bytes())
    code, stdout, stderr = run("anonymize", inside, "--plan", files["plan"], "--out", bundle, "--overwrite")
    assert code == 2 and "would replace the input" in stderr, stderr
    assert inside.is_file() and stdout.strip() == ""


def test_a_folder_safemicro_wrote_is_replaced_with_overwrite(files, tmp_path):
    bundle = marked_folder(tmp_path / "bundle")
    code, stdout, stderr = run("anonymize", files["data"], "--plan", files["plan"], "--out", bundle, "--overwrite")
    assert code == 0, stderr
    assert "k = 3" in stdout
    assert (bundle / MARKER).is_file() and (bundle / "report.json").read_text() != "{}"


# --------------------------------------------------------- item 8: outputs checked before work


def test_anonymize_into_a_non_empty_folder_fails_before_running_the_plan(files, tmp_path):
    bundle = marked_folder(tmp_path / "bundle")
    code, stdout, stderr = run("anonymize", files["data"], "--plan", files["plan"], "--out", bundle)
    assert code == 2 and "--overwrite" in stderr, stderr
    assert "k = 3" not in stdout + stderr and "step" not in stdout  # the plan never ran
    assert (bundle / "report.json").read_text() == "{}"


def test_outputs_are_checked_before_the_input_is_read(tmp_path):
    """A broken input and a bad output: the output is reported, so it was checked first."""
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n", encoding="utf-8")
    pipe = tmp_path / "pipe.out"
    os.mkfifo(pipe)
    folder = foreign_folder(tmp_path / "mine")
    for args in (
        ["assess", ragged, "--keys", "a", "--html", pipe],
        ["init", ragged, "--out", pipe, "--force"],
        ["synthesize", ragged, "--out", pipe],
        ["evaluate", ragged, ragged, "--json", pipe],
        ["attack", "membership", ragged, ragged, "--control", ragged, "--json", pipe],
        ["document", ragged, "--out", folder],
        ["publish", tmp_path, "--dry-run", folder],
    ):
        code, stdout, stderr = run(*args)
        assert code == 2, (args, stdout, stderr)
        assert "ragged" not in stderr.replace(str(ragged), ""), (args, stderr)  # not the input's error
        assert str(pipe) in stderr or str(folder) in stderr, (args, stderr)


def test_evaluate_never_overwrites_the_synthetic_input(files, tmp_path):
    synth = tmp_path / "synth.csv"
    synth.write_bytes(files["release"].read_bytes())
    code, _, stderr = run("evaluate", files["data"], synth, "--json", synth, "--n-attacks", "0")
    assert code == 2 and "overwrite an input" in stderr, stderr
    assert synth.read_bytes() == files["release"].read_bytes()


# ------------------------------------------------------------ item 9: document is all or none


def test_document_failing_on_its_last_file_leaves_nothing(files, tmp_path):
    """A folder where the last file cannot go (a sub-folder named codebook.html): before, the
    CSV and datapackage.json were written, then the codebook failed -- a partial set."""
    out = tmp_path / "docs"
    (out / "codebook.html").mkdir(parents=True)
    code, _, stderr = run("document", files["data"], "--out", out)
    assert code == 2, stderr
    assert [p.name for p in out.iterdir()] == ["codebook.html"]  # nothing new beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_document_failure_keeps_the_earlier_documentation(files, tmp_path, monkeypatch):
    """The HTML codebook is written last; no real input makes it fail after the data package
    is written, so one writer (render_codebook) is made to fail to show that the staging
    folder is thrown away and the earlier documentation stays byte for byte."""
    from safemicro.metadata import documentation

    out = tmp_path / "docs"
    first = documentation.document(files["data"], out)
    assert set(first) == {"csv", "datapackage", "ddi", "html"}
    before = tree(out)

    def broken(doc):
        raise ValueError("a value label the template cannot show")

    monkeypatch.setattr("safemicro.metadata.codebook_html.render_codebook", broken)
    with pytest.raises(ValueError):
        documentation.document(files["release"], out)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # no staging folder left
    monkeypatch.undo()
    again = documentation.document(files["release"], out, outputs=("ddi",))  # its own folder: replaced
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "ddi.xml"]) and set(again) == {"ddi"}
