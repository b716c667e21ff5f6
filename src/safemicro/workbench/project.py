"""A workbench project: one folder holding everything a curator's session made.

::

    project.json     the state: the data file's name, the plan (roles, targets, steps,
                     seed), the undo/redo history of plans, the draft's reasons
    data/<file>      a byte copy of the imported file (the original is never touched)
    results/         release bundle, documentation, attack and synthesis outputs

The plan *is* the step history: every change (roles, a step added, edited, moved or
removed, a plan opened) pushes the previous plan on the undo stack and writes
``project.json`` atomically, so a refresh, a second tab or a server restart loses nothing.
Changes are validated against the data before they are saved: a bad change raises a
:class:`SafemicroError` and leaves the state as it was.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safemicro.atomic import write_text
from safemicro.errors import SafemicroError
from safemicro.io import READ_EXTENSIONS, Dataset, read
from safemicro.pipeline import draw_seed, prepare_steps
from safemicro.plan import Plan

STATE = "project.json"
MAX_UNDO = 200
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """The last path part of a browser-given file name, reduced to safe characters, with a
    readable extension; never a path (no folders, no leading dots)."""
    base = _SAFE_NAME.sub("_", Path(str(name).replace("\\", "/")).name).lstrip(".")
    if not base or not base.lower().endswith(READ_EXTENSIONS):
        raise SafemicroError(f"not a data file safemicro reads ({', '.join(READ_EXTENSIONS)})", file=name or "(none)")
    return base


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> Plan:
    """A stored plan, parsed once (YAML parsing is slow; callers get copies)."""
    return Plan.from_yaml(text)


class Project:
    """The project folder and its state; every mutation is validated, then saved atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.lock = threading.RLock()
        # plans are kept as YAML text: JSON would turn a recode map's numeric keys into strings
        self.state: dict[str, Any] = {"data": None, "plan": Plan().to_yaml(), "undo": [], "redo": []}
        if (self.folder / STATE).is_file():
            try:
                self.state.update(json.loads((self.folder / STATE).read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise SafemicroError(f"cannot read the project state: {exc}", file=str(self.folder / STATE)) from None
        self._dataset: tuple[Path, float, Dataset] | None = None

    # -- paths and data ------------------------------------------------------------------

    @property
    def data_path(self) -> Path | None:
        name = self.state.get("data")
        return None if name is None else self.folder / "data" / name

    @property
    def results(self) -> Path:
        return self.folder / "results"

    def dataset(self) -> Dataset:
        """The imported data (read once, cached while the file is unchanged)."""
        path = self.data_path
        if path is None:
            raise SafemicroError("no data yet: upload or open a file on the Data page")
        mtime = path.stat().st_mtime
        if self._dataset is None or self._dataset[:2] != (path, mtime):
            self._dataset = (path, mtime, read(path))
        return self._dataset[2]

    def import_file(self, source: Path, name: str | None = None) -> Dataset:
        """Copy ``source`` into ``data/`` (as ``name``), read it; a file that does not read is
        removed again and the state stays as it was. A new file starts a new plan: the
        draft roles, no steps, a fresh seed."""
        from safemicro.draft import draft_plan

        name = safe_filename(name or source.name)
        target = self.folder / "data" / name
        staging = self.folder / "data" / f".importing-{name}"
        staging.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging)
        try:
            ds = read(staging)
            if ds.n == 0:
                raise SafemicroError("the file has no records", file=name)
        except SafemicroError as exc:
            staging.unlink(missing_ok=True)
            exc.file = name
            raise
        except Exception as exc:  # a reader library's own error on a corrupt file
            staging.unlink(missing_ok=True)
            raise SafemicroError(f"cannot read the file: {exc}", file=name) from None
        with self.lock:
            staging.replace(target)
            draft = draft_plan(ds)
            plan = draft.plan.model_copy(update={"seed": draw_seed()})
            self.state.update(
                data=name,
                draft=plan.to_yaml(),
                reasons=draft.reasons,
                notes=draft.notes,
                plan=Plan(targets=plan.targets, scenario=plan.scenario, seed=plan.seed).to_yaml(),
                undo=[],
                redo=[],
            )
            self.save()
        self._dataset = None
        return ds

    # -- the plan and its history --------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        return _parsed(self.state["plan"]).model_copy(deep=True)

    @property
    def draft(self) -> Plan | None:
        return _parsed(self.state["draft"]).model_copy(deep=True) if self.state.get("draft") else None

    def previous_plan(self) -> Plan | None:
        """The plan before the last change (what the Methods page compares with)."""
        return _parsed(self.state["undo"][-1]["plan"]).model_copy(deep=True) if self.state["undo"] else None

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(self.folder / STATE, json.dumps(self.state, indent=1, ensure_ascii=False) + "\n")

    def check(self, plan: Plan) -> None:
        """Raise if ``plan`` does not fit the data: roles (when they changed: checking them reads
        every record), utility variables, every step."""
        ds = self.dataset()
        plan.check_columns(ds.columns)
        if plan.roles != _parsed(self.state["plan"]).roles:
            from safemicro.roles import validate_roles

            validate_roles(ds, plan.roles)
        for name in plan.utility.variables():
            if name not in ds.columns:
                raise SafemicroError("utility: not a column of the data", column=name)
        prepare_steps(plan, ds.columns, seed=plan.seed or 0)

    def change(self, update: dict[str, Any], what: str, trial: Callable[[Plan], Any] | None = None) -> Plan:
        """A new plan = the current one with ``update`` (fields of the plan); validated (and run
        by ``trial``, which raises when a step fails), then saved with the old plan on the
        undo stack."""
        with self.lock:
            data = self.plan.model_dump(mode="python")
            data.update(copy.deepcopy(update))
            try:
                plan = Plan.model_validate(data)
            except Exception as exc:
                from pydantic import ValidationError

                from safemicro.plan import validation_error

                if isinstance(exc, ValidationError):
                    raise validation_error(exc, "plan", None, model=Plan) from None
                raise
            self.check(plan)
            if trial is not None:
                trial(plan)
            self.state["undo"] = [*self.state["undo"][-MAX_UNDO:], {"plan": self.state["plan"], "what": what}]
            self.state["redo"] = []
            self.state["plan"] = plan.to_yaml()
            self.save()
            return plan

    def open_plan(self, text: str, name: str = "plan.yaml", trial: Callable[[Plan], Any] | None = None) -> Plan:
        """Replace the plan by an uploaded one (replayed on the data); a plan without a seed gets
        the project's."""
        plan = Plan.from_yaml(text, source=name)
        data = plan.model_dump(mode="python")
        if data.get("seed") is None:
            data["seed"] = self.plan.seed or draw_seed()
        return self.change(data, f"opened {name}", trial)

    def undo(self) -> str:
        return self._step_back("undo", "redo")

    def redo(self) -> str:
        return self._step_back("redo", "undo")

    def _step_back(self, take: str, keep: str) -> str:
        """Make the last plan of the ``take`` stack current; the current one goes on ``keep``."""
        with self.lock:
            if not self.state[take]:
                raise SafemicroError(f"nothing to {take}")
            last = self.state[take].pop()
            self.state[keep].append({"plan": self.state["plan"], "what": last["what"]})
            self.state["plan"] = last["plan"]
            self.save()
            return last["what"]

    def history(self) -> list[str]:
        return [entry["what"] for entry in self.state["undo"]]

    def set_setting(self, name: str, value: Any) -> None:
        with self.lock:
            self.state.setdefault("settings", {})[name] = value
            self.save()

    def setting(self, name: str, default: Any = None) -> Any:
        return self.state.get("settings", {}).get(name, default)
