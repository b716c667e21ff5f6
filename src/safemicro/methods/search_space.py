"""The search space of :func:`~safemicro.methods.search.search_levels` and its answer.

Each key's hierarchy as a list of global recodes, and per level a lookup array from
original code to class code (with the entropy lost), checked to cover every value and to
nest; the lattice of their levels with the tags the search puts on its nodes; and
:class:`SearchResult`, the node the search chose and how it got there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column
from safemicro.methods.recode import global_recode, read_hierarchy

_RECODE_ARGS = {"breaks", "method", "right", "include_lowest", "labels", "codes", "map", "hierarchy", "level"}


def _level_kwargs(level: Any, var: str) -> dict[str, Any]:
    """One hierarchy level as keyword arguments of :func:`global_recode`."""
    if isinstance(level, bool):
        raise SafemicroError(f"level {level!r} of {var} is not a recode", column=var)
    if isinstance(level, (list, tuple)) or isinstance(level, int):
        return {"breaks": list(level) if isinstance(level, (list, tuple)) else int(level)}
    if isinstance(level, dict) and level:
        if any(k in level for k in ("breaks", "map", "hierarchy")):
            unknown = sorted(str(k) for k in level if k not in _RECODE_ARGS)
            if unknown:
                raise SafemicroError(f"a level of {var} has unknown recode arguments: {', '.join(unknown)}", column=var)
            return dict(level)
        return {"map": dict(level)}
    raise SafemicroError(
        f"a level of {var} must be breaks (a list or a number of bands), a mapping or a recode spec; got {level!r}",
        column=var,
    )


def hierarchy_levels(spec: Any, var: str) -> list[dict[str, Any]]:
    """A key's hierarchy as a list of recodes (level 1, 2, ...): from a list of levels or an
    ARX hierarchy table (the release plan's ``hierarchies:`` entry of ``var``)."""
    if isinstance(spec, str) or (isinstance(spec, dict) and set(spec) == {"hierarchy"}):
        table = spec if isinstance(spec, str) else spec["hierarchy"]
        rows = read_hierarchy(table, variable=var)
        height = len(next(iter(rows.values())))
        return [{"hierarchy": rows, "level": lv} for lv in range(1, height + 1)]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise SafemicroError(
            f"the hierarchy of {var} must be a non-empty list of levels or an ARX hierarchy", column=var
        )
    return [_level_kwargs(lv, var) for lv in spec]


@dataclass
class _Key:
    name: str
    levels: list[dict[str, Any]]  # recode kwargs, level 1..h
    luts: list[np.ndarray]  # per level 0..h: original code -> class code (0 = missing)
    cards: list[int]  # classes per level
    entropy: list[float]  # entropy loss per level

    @property
    def height(self) -> int:
        return len(self.levels)


def _prepare_key(ds: Dataset, name: str, levels: list[dict[str, Any]], value_count: np.ndarray) -> _Key:
    """Class lookup arrays per level, from the same recodes that will be applied."""
    sub = ds.with_frame(ds.frame.select(name))
    codes0, card0 = encode_column(ds.analysis_column(name))
    luts, cards = [np.arange(card0 + 1, dtype=np.int64)], [card0]
    for i, kwargs in enumerate(levels, start=1):
        try:
            rec = global_recode(sub, variable=name, **kwargs).dataset
        except TypeError as exc:
            raise SafemicroError(f"level {i} of {name}: {exc}", column=name) from None
        codes, card = encode_column(rec.analysis_column(name))
        lost = (codes == 0) & (codes0 != 0)
        if lost.any():
            raise SafemicroError(
                f"level {i} of {name} leaves {int(lost.sum())} observed values outside every band; "
                "a hierarchy level must cover every value (widen the breaks or set include_lowest)",
                column=name,
            )
        lut = np.zeros(card0 + 1, dtype=np.int64)
        lut[codes0] = codes
        # the recode must be a function of the value and coarsen the previous level
        if (lut[codes0] != codes).any():
            raise SafemicroError(f"level {i} of {name} is not a function of the original value", column=name)
        prev = luts[-1]
        pairs = np.unique(np.column_stack([prev[1:], lut[1:]]), axis=0)
        if len(np.unique(pairs[:, 0])) != len(pairs):
            raise SafemicroError(
                f"level {i} of {name} splits a category of level {i - 1}; each level must merge "
                "whole categories of the level below (hierarchies must be nested)",
                column=name,
            )
        luts.append(lut)
        cards.append(card)
    entropy = []
    n_v = value_count[1:]
    seen = n_v > 0
    for lut in luts:
        cls = np.bincount(lut, weights=value_count, minlength=int(lut.max()) + 1)
        size = cls[lut[1:]]
        entropy.append(float(np.sum(n_v[seen] * np.log2(size[seen] / n_v[seen]))))
    return _Key(name, levels, luts, cards, entropy)


@dataclass
class SearchResult:
    """The chosen node and how the search got there (JSON-friendly via :meth:`to_dict`)."""

    levels: dict[str, int]  # chosen level per key (0 = original)
    heights: dict[str, int]  # number of levels above 0 per key
    loss: float
    loss_kind: str
    records_to_suppress: int  # records in keys still violating the target at the chosen node
    suppression_limit: int  # the most records the target allows to suppress
    meets_target: bool  # False: no node does; the most general one was chosen
    nodes: int  # lattice size
    evaluated: int  # nodes whose key table was computed
    minimal_nodes: list[dict[str, int]] = field(default_factory=list)  # the anonymous frontier
    seconds: float = 0.0

    @property
    def pruned(self) -> int:
        return self.nodes - self.evaluated

    def to_dict(self) -> dict[str, Any]:
        """Everything but the timing, so the change record is the same on every run."""
        out = asdict(self)
        out.pop("seconds")
        out["pruned"] = self.pruned
        return out


class _Lattice:
    """Nodes as mixed-radix indices over the keys with hierarchies, with their tags."""

    def __init__(self, heights: list[int], max_nodes: int):
        self.heights = np.asarray(heights, dtype=np.int64)
        radix = self.heights + 1
        self.size = int(np.prod(radix)) if len(radix) else 1
        if self.size > max_nodes:
            raise SafemicroError(
                f"the generalisation lattice has {self.size:,} nodes (more than {max_nodes:,}); "
                "give fewer levels or fewer keys with hierarchies"
            )
        self.strides = np.ones(len(radix), dtype=np.int64)
        for j in range(len(radix) - 2, -1, -1):
            self.strides[j] = self.strides[j + 1] * radix[j + 1]
        idx = np.arange(self.size, dtype=np.int64)
        self.levels = (
            (idx[:, None] // self.strides[None, :]) % radix[None, :] if len(radix) else np.zeros((1, 0), np.int64)
        )
        self.status = np.full(self.size, -1, dtype=np.int8)  # -1 unknown, 0 not anonymous, 1 anonymous

    def tag(self, node: int, anonymous: bool) -> None:
        lv = self.levels[node]
        if anonymous:
            self.status[(self.levels >= lv).all(axis=1)] = 1
        else:
            self.status[(self.levels <= lv).all(axis=1)] = 0

    def successors(self, node: int) -> list[int]:
        lv = self.levels[node]
        return [node + int(self.strides[j]) for j in range(len(lv)) if lv[j] < self.heights[j]]
