"""Course exercises from the tutorials: a trainer's and a participant's notebook of each.

Every tutorial (docs/tutorials/*.py, jupytext percent format) may hold cells tagged
``exercise`` (the question) and ``solution`` (the answer). The trainer's notebook keeps
everything; the participant's replaces each solution cell by an empty cell to work in.
Both are unexecuted .ipynb files, made from the same source, so they never diverge.

    python docs/scripts/exercises.py --out build/exercises
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jupytext
import nbformat

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
ANSWER_HERE = "# Your answer here\n"


def participant_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with every ``solution`` cell replaced by an empty code cell."""
    out = nbformat.from_dict(nb)
    cells = []
    for cell in out.cells:
        if "solution" in cell.get("metadata", {}).get("tags", []):
            cells.append(nbformat.v4.new_code_cell(ANSWER_HERE, metadata={"tags": ["answer"]}))
        else:
            cells.append(cell)
    out.cells = cells
    return out


def build(out_dir: Path, tutorials: Path = TUTORIALS) -> dict[str, list[Path]]:
    """Write trainer/ and participant/ notebooks of every tutorial; returns the paths."""
    written: dict[str, list[Path]] = {"trainer": [], "participant": []}
    for source in sorted(tutorials.glob("[0-9]*.py")):
        nb = jupytext.read(source)
        for version, notebook in (("trainer", nb), ("participant", participant_version(nb))):
            target = out_dir / version / f"{source.stem}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".ipynb.tmp")
            nbformat.write(notebook, tmp)
            tmp.replace(target)
            written[version].append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/exercises"))
    args = parser.parse_args()
    written = build(args.out)
    for version, paths in written.items():
        print(f"{version}: {len(paths)} notebooks in {args.out / version}")


if __name__ == "__main__":
    main()
