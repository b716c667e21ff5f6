"""The tutorials (docs/tutorials/*.py, jupytext) run from a clean kernel, and the course
exercises are made from them: a failing cell fails the suite, so the training material
cannot go stale. Each notebook runs in a fresh kernel process with this tree's src first on
the path and the clone's root as working directory (as in `make docs`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the test extra installs jupytext, nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("[0-9]*.py"))
sys.path.insert(0, str(ROOT / "docs" / "scripts"))
from exercises import ANSWER_HERE, build  # noqa: E402


def run_notebook(path: Path):
    """Execute every cell of the tutorial in a new kernel; raises on the first failing cell."""
    nb = jupytext.read(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}, allow_errors=False
    )
    client.execute(env=env)
    return nb


def test_there_are_seven_tutorials():
    assert [p.stem[:2] for p in TUTORIALS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_from_a_clean_kernel(path):
    nb = run_notebook(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # plots inline: every tutorial shows at least one figure
    assert any("image/png" in o.get("data", {}) for o in outputs), "no inline plot"


def test_a_failing_cell_fails_the_run(tmp_path):
    """The harness itself: a tutorial whose public call raises is reported, not skipped."""
    bad = tmp_path / "99_broken.py"
    bad.write_text("# %%\nfrom safemicro.assess import assess\n\n# %%\nassess(None, keys=['nope'])\n")
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        run_notebook(bad)


def test_exercises_trainer_keeps_and_participant_drops_solutions(tmp_path):
    import nbformat

    written = build(tmp_path)
    assert len(written["trainer"]) == len(written["participant"]) == len(TUTORIALS)
    total = 0
    for trainer, participant in zip(written["trainer"], written["participant"]):
        t, p = nbformat.read(trainer, as_version=4), nbformat.read(participant, as_version=4)
        tags = lambda nb, tag: [c for c in nb.cells if tag in c.metadata.get("tags", [])]
        solutions = tags(t, "solution")
        assert solutions and tags(t, "exercise"), f"{trainer.name}: no exercise"
        assert not tags(p, "solution")
        assert [c.source.strip() for c in tags(p, "answer")] == [ANSWER_HERE.strip()] * len(solutions)
        # everything else is the same cell for cell
        assert len(t.cells) == len(p.cells)
        assert [c.source for c in t.cells if c not in solutions] == [
            c.source for c in p.cells if "answer" not in c.metadata.get("tags", [])
        ]
        total += len(solutions)
    assert total >= 10
