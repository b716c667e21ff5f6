"""The workbench's calls into the library, cached so a change recomputes only what it must.

Running a plan's steps goes through :func:`safemicro.pipeline.prepare_steps` /
:func:`~safemicro.pipeline.run_steps` like a release; the data after each prefix of steps
is kept (a few entries, least recently used dropped), so adding a step at the end runs
that one step only. Risk is :func:`safemicro.assess.assess` on the result with the roles
that remain after the steps. Nothing here computes a risk or changes a value itself.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from safemicro.assess import Assessment
from safemicro.io import Dataset
from safemicro.methods.base import ROW_ID, Change
from safemicro.pipeline import prepare_steps, run_steps
from safemicro.plan import Plan
from safemicro.release import assess_after

# entries kept per kind: data after a prefix of steps (a copy of the data each), assessments
# (per-record risks: smaller), the rest (the row-id-tagged data, utility comparisons)
CACHE_ENTRIES = {"run": 8, "risk": 24, "other": 4}
MEMO_ENTRIES = 64


@dataclass
class State:
    """The data after a plan's steps, with what each step changed."""

    dataset: Dataset
    changes: list[Change]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Engine:
    """Step results and assessments for one project's data, cached by plan prefix."""

    def __init__(self) -> None:
        self._cache: dict[str, OrderedDict[str, Any]] = {kind: OrderedDict() for kind in CACHE_ENTRIES}
        self._memo: OrderedDict[str, Any] = OrderedDict()
        self.seconds = {"steps": 0.0, "assess": 0.0}  # time spent in library calls (for the benchmark)
        self._lock = threading.Lock()

    def _get(self, key: str, kind: str = "other") -> Any:
        with self._lock:
            cache = self._cache[kind]
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        return None

    def _put(self, key: str, value: Any, kind: str = "other") -> None:
        with self._lock:
            cache = self._cache[kind]
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > CACHE_ENTRIES[kind]:
                cache.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            for cache in self._cache.values():
                cache.clear()
            self._memo.clear()

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """A small derived result (a plot, a table) kept apart from the big cached data."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = make()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > MEMO_ENTRIES:
                self._memo.popitem(last=False)
        return value

    @staticmethod
    def _base(dataset: Dataset, plan: Plan) -> list[Any]:
        roles = plan.roles.model_dump(mode="json")
        return [id(dataset), roles, plan.targets.model_dump(mode="json"), plan.alpha, plan.seed]

    def tagged(self, dataset: Dataset) -> Dataset:
        """``dataset`` with the hidden row id a release adds (utility aligns rows by it)."""
        key = _digest("tagged", id(dataset))
        hit = self._get(key)
        if hit is None or hit[0] is not dataset:
            frame = dataset.frame.with_columns(pl.int_range(0, dataset.n, dtype=pl.Int64).alias(ROW_ID))
            hit = (dataset, dataset.with_frame(frame))
            self._put(key, hit)
        return hit[1]

    def run(self, dataset: Dataset, plan: Plan, upto: int | None = None) -> State:
        """The data after the first ``upto`` steps (all by default), with the hidden row id."""
        dataset = self.tagged(dataset)
        steps = plan.steps if upto is None else plan.steps[:upto]
        prepared = prepare_steps(plan.model_copy(update={"steps": steps}), dataset.columns, seed=plan.seed or 0)
        base = self._base(dataset, plan)
        start, state = 0, State(dataset, [])
        for i in range(len(steps), 0, -1):  # the longest prefix already computed
            hit = self._get(_digest("run", base, steps[:i]), "run")
            if hit is not None:
                start, state = i, hit
                break
        for i in range(start, len(steps)):
            t0 = time.perf_counter()
            current, changes = run_steps(state.dataset, prepared[i : i + 1])
            self.seconds["steps"] += time.perf_counter() - t0
            state = State(current, [*state.changes, *changes])
            self._put(_digest("run", base, steps[: i + 1]), state, "run")
        return state

    def risk(self, dataset: Dataset, plan: Plan, upto: int | None = None, *, suda: bool = False) -> Assessment:
        """The assessment of the data after the first ``upto`` steps."""
        steps = plan.steps if upto is None else plan.steps[:upto]
        key = _digest("risk", self._base(dataset, plan), steps, suda, plan.scenario.model_dump(mode="json"))
        hit = self._get(key, "risk")
        if hit is not None:
            return hit
        state = self.run(dataset, plan, upto)
        t0 = time.perf_counter()
        result = assess_after(self.tagged(dataset), state.dataset, plan, state.changes, suda=suda)[2]
        self.seconds["assess"] += time.perf_counter() - t0
        self._put(key, result, "risk")
        return result

    def utility(self, dataset: Dataset, plan: Plan) -> dict[str, Any]:
        """The plan's utility comparison, original vs the data after every step."""
        key = _digest("utility", self._base(dataset, plan), plan.steps, plan.utility.model_dump(mode="json"))
        hit = self._get(key)
        if hit is not None:
            return hit
        from safemicro.pipeline import in_released_coding
        from safemicro.utility import compare

        state = self.run(dataset, plan)
        tagged = self.tagged(dataset)
        prepared = prepare_steps(plan, tagged.columns, seed=plan.seed or 0)
        coded, recoded, new_coding = in_released_coding(tagged, prepared)
        result = compare(
            tagged,
            state.dataset,
            roles=plan.roles,
            utility=plan.utility,
            coded=coded,
            recoded=recoded,
            new_coding=new_coding,
            changes=state.changes,
        )
        self._put(key, result)
        return result
