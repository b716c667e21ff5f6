"""Household-relational synthesis: households first, then their members one at a time.

A household survey has two levels: household variables (site, shelter, income, weight)
take one value per household, person variables (relationship, sex, age) one per member.
Synthesizing the flat person file row by row breaks both: members of one synthetic
household would disagree on the site, and rosters would lose their shape (one head, a
spouse close to the head's age, children younger than the head).

:class:`HouseholdSynthesizer` follows the parent-then-children design of REaLTabFormer's
relational model with trees instead of a transformer:

1. a tabular synthesizer (sequential CART by default) draws household rows: the household
   variables plus the size and the number of heads computed from the members;
2. the first member (the head when the data have heads) is drawn conditioned on its
   household row, then member k = 2, 3, ... conditioned on the household row, on k, on
   the size and on the head's and the previous member's values, each with a model
   fitted on the real rosters (the conditions are the model's ``fixed`` predictors);
3. edit rules learned from the data are checked on every drawn member, and failing
   members are drawn again: the members at positions 1..heads are heads and no one else
   is; a member's age minus the head's age lies in the range seen for their relationship.

Household variables are written once per household, so they are identical within a
household by construction, and a household of size s gets exactly s members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.methods.base import rng_for
from safemicro.synth.household_roster import (
    _HEAD,
    _HEADS,
    _HLEFT,
    _LEFT,
    _NOT_PREDICTORS,
    _P,
    _POS,
    _PREV,
    _SIZE,
    _RosterLayout,
)
from safemicro.synth.household_roster import ORDER_NAMES as ORDER_NAMES
from safemicro.synth.household_roster import RELATIONSHIP_NAMES as RELATIONSHIP_NAMES
from safemicro.synth.household_rules import _RosterRules
from safemicro.synth.schema import infer_schema

__all__ = ["HouseholdSynthesizer"]


@dataclass
class _Models:
    households: Any
    first: Any
    members: Any | None  # None when no household has two members


class HouseholdSynthesizer(_RosterLayout, _RosterRules):
    """Synthetic households with members drawn one by one, conditioned on the household.

    ``household`` is the household id column. ``household_level`` lists the household
    variables (default: every column constant within every household; with a separate
    household file, its columns). ``person_order`` (e.g. the line number) orders members
    within a household, heads first; the output numbers them 1..s. ``relationship`` with
    ``head_code`` (default: the code found exactly once in most households) enables the
    head rules. When not given, both are looked up by their usual names
    (:data:`RELATIONSHIP_NAMES`, :data:`ORDER_NAMES`; the notes say what was found).
    ``age`` (default: a numeric column named ``age``, any case) enables the age-gap rules.
    ``context`` lists the person variables whose head and previous-member values
    condition the next member (default: every person variable that is not an identifier,
    free text or constant). ``synthesizer`` makes the tabular model of each stage
    (default :class:`safemicro.synth.cart.CartSynthesizer`, relationship and age visited
    first); it needs ``fit(ds, schema=, fixed=, seed=)`` and ``sample(n, conditions=,
    seed=)``. ``max_tries`` bounds the redraws of a member that breaks a rule; after that
    the rule is imposed. :attr:`notes` says what was inferred, :attr:`checks` how many
    members the last sample redrew or corrected.
    """

    def __init__(
        self,
        household: str,
        household_level: Sequence[str] | None = None,
        person_order: str | None = None,
        relationship: str | None = None,
        head_code: Any = None,
        *,
        age: str | None = None,
        context: Sequence[str] | None = None,
        synthesizer: Callable[[], Any] | None = None,
        max_tries: int = 20,
    ) -> None:
        self.household = household
        self.household_level = None if household_level is None else list(household_level)
        self.person_order = person_order
        self.relationship = relationship
        self.head_code = head_code
        self.age = age
        self.context = None if context is None else list(context)
        self.synthesizer = synthesizer
        self.max_tries = int(max_tries)
        self.notes: list[str] = []
        self.checks: dict[str, int] = {}
        self._fitted = False

    # -- fit ---------------------------------------------------------------------------

    def fit(
        self, persons: Dataset, *, households: Dataset | None = None, seed: int | None = None
    ) -> HouseholdSynthesizer:
        """Learn households and rosters from one person file, or a household + person file."""
        if not isinstance(persons, Dataset) or (households is not None and not isinstance(households, Dataset)):
            raise SafemicroError("HouseholdSynthesizer.fit expects safemicro Dataset objects")
        if persons.n == 0 or (households is not None and households.n == 0):
            raise SafemicroError("no records to learn from", file=persons.source)
        rng, self.seed_ = rng_for(seed)
        self.notes = []
        self._persons_in, self._households_in = persons, households
        h, n_households = self._household_index(persons, households)
        self._rel, self._order = self._roster_columns(persons, h)
        self._split_columns(persons, households, h, n_households)
        self._relationship_setup(persons, h)
        self._age_setup(persons)

        order = self._canonical_order(persons, h)
        hs = h[order]
        start = np.searchsorted(hs, hs)  # sorted row of each member's first member
        pos = np.arange(len(hs)) - start + 1
        size = np.bincount(h, minlength=n_households)
        heads = (
            np.bincount(h, weights=self._is_head(persons.frame[self._rel]), minlength=n_households).astype(np.int64)
            if self._rel
            else None
        )

        table = self._household_table(persons, households, h, n_households, size, heads)
        self._size_range = (int(size.min()), int(size.max())) if n_households else (0, 0)
        self._by_size = self._size_functions(table, size)
        hh_ds = self._dataset(table.select([c for c in table.columns if c not in self._by_size]))
        hh_schema = infer_schema(hh_ds)
        self._hh_pred = [c for c in hh_ds.columns if c == _SIZE or hh_schema[c].kind not in _NOT_PREDICTORS]

        person = persons.frame.gather(order).select(self._person_vars)
        p_schema = infer_schema(self._dataset(person))
        self._person_ids = [v for v in self._person_vars if p_schema[v].kind == "id"]
        if self._context is None:
            self._context = [v for v in self._person_vars if p_schema[v].kind not in _NOT_PREDICTORS]
        self._member_fixed = self._hh_pred + [_POS, _LEFT] + ([_HLEFT] if heads is not None else [])
        self._member_fixed += [_HEAD + c for c in self._context] + [_PREV + c for c in self._context]
        self._fallback = self._fallback_code(person, pos)
        self._age_rules = self._learn_age_rules(person, start, heads[hs] if heads is not None else None)
        # the fixed columns are read with the specs of all households / all persons, so a
        # condition value seen only outside a model's own rows is still understood
        known = {c: hh_schema[c] for c in self._hh_pred}
        for c in self._context:
            known[_HEAD + c] = replace(p_schema[c], name=_HEAD + c)
            known[_PREV + c] = replace(p_schema[c], name=_PREV + c)

        seeds = rng.integers(0, 2**31 - 1, size=3)
        # the roster's structure first: relationship, then age, then the rest
        lead = [c for c in (self._rel, self._age) if c is not None]
        hh_model = self._model().fit(hh_ds, schema=hh_schema, seed=int(seeds[0]))
        rows = table.select(self._hh_pred).gather(hs)
        first = pl.concat([rows, person], how="horizontal").filter(pl.Series(pos == 1))
        first_model = _fit(self._model(lead), self._dataset(first), self._hh_pred, known, int(seeds[1]))
        members_model = None
        later = np.flatnonzero(pos >= 2)
        if len(later):
            frame = self._member_frame(
                rows.gather(later),
                pos[later],
                size[hs[later]],
                None if heads is None else heads[hs[later]],
                person.gather(start[later]),
                person.gather(later - 1),
            )
            frame = pl.concat([frame, person.gather(later)], how="horizontal")
            members_model = _fit(self._model(lead), self._dataset(frame), self._member_fixed, known, int(seeds[2]))
        self._models = _Models(hh_model, first_model, members_model)
        for stage, model in (("households", hh_model), ("first members", first_model), ("members", members_model)):
            self.notes += [f"{stage}: {note}" for note in getattr(model, "notes", None) or []]
        self._n_households = n_households
        self._fitted = True
        return self

    def _model(self, visit_order: Sequence[str] = ()):
        """A fresh tabular synthesizer for one stage."""
        if self.synthesizer is not None:
            return self.synthesizer()
        from safemicro.synth.cart import CartSynthesizer

        return CartSynthesizer(visit_order=list(visit_order) or None)

    def _member_frame(self, rows, pos, size, heads, head: pl.DataFrame, prev: pl.DataFrame) -> pl.DataFrame:
        """Fixed columns of members at positions >= 2: household, position, head, previous member."""
        ctx = self._context
        extra = {_POS: pos, _LEFT: size - pos}
        if heads is not None:
            extra[_HLEFT] = np.maximum(heads - pos + 1, 0)  # heads still to place
        return pl.concat(
            [
                rows,
                pl.DataFrame({k: pl.Series(k, v, dtype=pl.Int64) for k, v in extra.items()}),
                head.select(ctx).rename({c: _HEAD + c for c in ctx}),
                prev.select(ctx).rename({c: _PREV + c for c in ctx}),
            ],
            how="horizontal",
        )

    def _dataset(self, frame: pl.DataFrame) -> Dataset:
        """A model's training data with the codebook entries of the columns it came from."""
        variables = {}
        for name in frame.columns:
            source = name.removeprefix(_HEAD).removeprefix(_PREV)
            meta = self._meta(source)
            if meta is None:
                meta = VariableMeta(
                    name=name, measure="ordinal" if name in (_SIZE, _HEADS, _POS, _LEFT, _HLEFT) else "unknown"
                )
            variables[name] = replace(
                meta,
                name=name,
                value_labels=dict(meta.value_labels),
                missing_values=list(meta.missing_values),
                missing_ranges=list(meta.missing_ranges),
            )
        return Dataset(frame=frame, codebook=Codebook(variables=variables))

    def _meta(self, name: str) -> VariableMeta | None:
        for ds in (self._persons_in, self._households_in):
            if ds is not None and name in ds.columns:
                return ds.codebook.meta(name)
        return None

    # -- sample ------------------------------------------------------------------------

    def sample_tables(self, n_households: int | None = None, *, seed: int | None = None) -> tuple[Dataset, Dataset]:
        """(households, persons): one row per synthetic household and one per member.

        With a household file as input the two tables have its columns and the person
        file's; with one person file, the household table is the id + household variables.
        New household ids are 1..H; the person order column, if any, numbers members 1..s.
        """
        return self._generate(n_households, seed)

    def sample(self, n_households: int | None = None, *, seed: int | None = None) -> Dataset:
        """One person-level file: the input's columns (person then household file's, when two)."""
        hh, persons = self._generate(n_households, seed)
        if self._households_in is None:
            return persons
        hid = self.household
        frame = persons.frame.join(hh.frame, on=hid, how="left", maintain_order="left")
        variables = {**hh.codebook.variables, **persons.codebook.variables}
        codebook = Codebook(variables={c: variables[c] for c in frame.columns}, notes=persons.codebook.notes)
        return Dataset(frame=frame, codebook=codebook)

    def _generate(self, n_households: int | None, seed: int | None) -> tuple[Dataset, Dataset]:
        if not self._fitted:
            raise SafemicroError("HouseholdSynthesizer.sample called before fit")
        n = self._n_households if n_households is None else n_households
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SafemicroError(f"n_households must be a whole number of at least 1, not {n_households!r}")
        n = int(n)
        rng, _ = rng_for(seed)
        self.checks = {"redrawn": 0, "relationship_imposed": 0, "age_imposed": 0}
        models = self._models

        hh = models.households.sample(n, seed=_next(rng)).frame
        lo, hi = self._size_range
        size = np.clip(np.rint(hh[_SIZE].cast(pl.Float64).fill_null(lo).to_numpy()), lo, hi).astype(np.int64)
        hh = hh.with_columns(pl.Series(_SIZE, size, dtype=pl.Int64))
        if _HEADS in hh.columns:
            heads = np.clip(np.rint(hh[_HEADS].cast(pl.Float64).fill_null(0).to_numpy()), 0, size).astype(np.int64)
            hh = hh.with_columns(pl.Series(_HEADS, heads, dtype=pl.Int64))
        else:
            heads = None
        for c, table in self._by_size.items():
            dtype = self._table_dtype(c)
            if table is None:
                hh = hh.with_columns(pl.Series(c, size).cast(dtype))
            else:  # the value of the nearest observed size
                known = table[_SIZE].to_numpy()
                at = np.clip(np.searchsorted(known, size), 0, len(known) - 1)
                below = np.clip(at - 1, 0, None)
                at = np.where(np.abs(known[below] - size) < np.abs(known[at] - size), below, at)
                hh = hh.with_columns(table[c].gather(at).cast(dtype))
        pred = hh.select(self._hh_pred)

        # first members, then members 2, 3, ... of the households that are big enough
        act = np.flatnonzero(size >= 1)
        must = heads[act] >= 1 if heads is not None else None
        first = self._draw(models.first, pred.gather(act), must, None, rng)
        parts = [_tagged(first, act, 1)]
        prev, prev_act = first, act
        head_age = self._ages(first[self._age]) if self._age else None
        for k in range(2, int(size.max(initial=0)) + 1):
            act_k = np.flatnonzero(size >= k)
            at_head = np.searchsorted(act, act_k)
            pos = np.full(len(act_k), k, dtype=np.int64)
            cond = self._member_frame(
                pred.gather(act_k),
                pos,
                size[act_k],
                None if heads is None else heads[act_k],
                first.gather(at_head),
                prev.gather(np.searchsorted(prev_act, act_k)),
            )
            must = heads[act_k] >= k if heads is not None else None
            ages = None
            if head_age is not None and heads is not None:
                ages = np.where(heads[act_k] >= 1, head_age[at_head], np.nan)
            prev = self._draw(models.members, cond, must, ages, rng)
            prev_act = act_k
            parts.append(_tagged(prev, act_k, k))
        members = pl.concat(parts, how="vertical_relaxed").sort([_P + "h", _POS])
        return self._households_out(hh, n), self._persons_out(members, hh)

    def _draw(self, model, cond: pl.DataFrame, must_head, head_age, rng) -> pl.DataFrame:
        """Members for the condition rows; rule breakers are drawn again, then fixed."""
        if cond.height == 0:
            return pl.DataFrame(schema={c: self._persons_in.frame.schema[c] for c in self._person_vars})
        out = model.sample(conditions=cond, seed=_next(rng)).frame.select(self._person_vars)
        for _ in range(self.max_tries):
            bad = self._violations(out, must_head, head_age)
            if not bad.any():
                return out
            self.checks["redrawn"] += int(bad.sum())
            idx = np.flatnonzero(bad)
            redo = model.sample(conditions=cond.gather(idx), seed=_next(rng)).frame.select(self._person_vars)
            take = np.arange(out.height)
            take[idx] = out.height + np.arange(len(idx))
            out = pl.concat([out, redo], how="vertical_relaxed").gather(take)
        return self._impose(out, must_head, head_age)

    def _table_dtype(self, name: str) -> pl.DataType:
        ds = self._households_in if self._households_in is not None else self._persons_in
        return ds.frame.schema[name]

    def _households_out(self, hh: pl.DataFrame, n: int) -> Dataset:
        hid = self.household
        ids = _new_ids(n, self._table_dtype(hid))
        frame = hh.with_columns(ids.alias(hid))
        if self._households_in is not None:
            source = self._households_in
            cols = source.columns
        else:
            source = self._persons_in
            cols = [c for c in source.columns if c == hid or c in self._hh_vars]
        return _clean(source.with_frame(frame.select(cols)), self.notes)

    def _persons_out(self, members: pl.DataFrame, hh: pl.DataFrame) -> Dataset:
        source, hid = self._persons_in, self.household
        h = members[_P + "h"].to_numpy()
        cols = {hid: _new_ids(len(h), source.frame.schema[hid], h + 1)}
        if self._order is not None:
            cols[self._order] = _new_ids(len(h), source.frame.schema[self._order], members[_POS].to_numpy())
        for v in self._person_ids:  # person identifiers: fresh, unique over the file
            cols[v] = _new_ids(len(h), source.frame.schema[v])
        frame = members.with_columns(**cols)
        if self._households_in is None and self._hh_vars:
            frame = pl.concat([frame, hh.select(self._hh_vars).gather(h)], how="horizontal")
        return _clean(source.with_frame(frame.select(source.columns)), self.notes)


# -- helpers ---------------------------------------------------------------------------


def _next(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _fit(model, ds: Dataset, fixed: list[str], known: dict, seed: int):
    """Fit with the inferred schema, the fixed columns' specs taken from ``known``."""
    schema = infer_schema(ds)
    schema.columns.update({c: known[c] for c in fixed if c in known})
    return model.fit(ds, schema=schema, fixed=fixed, seed=seed)


def _tagged(frame: pl.DataFrame, households: np.ndarray, k: int) -> pl.DataFrame:
    return frame.with_columns(pl.Series(_P + "h", households, dtype=pl.Int64), pl.lit(k, dtype=pl.Int64).alias(_POS))


def _new_ids(n: int, dtype: pl.DataType, values: np.ndarray | None = None) -> pl.Series:
    """Ids 1..n (or ``values``) in the column's type; text when that type cannot hold them."""
    s = pl.Series(np.arange(1, n + 1) if values is None else values)
    target = pl.String if not (dtype.is_numeric() or dtype == pl.String) else dtype
    return s.cast(pl.String) if target == pl.String else s.cast(target)


def _clean(ds: Dataset, notes: list[str]) -> Dataset:
    """The synthesizer's notes join the codebook's; row-indexed codebook data (Stata
    extended missing letters) does not carry over to new records."""
    ds.codebook.extended_missing = {}
    ds.codebook.notes = list(ds.codebook.notes) + notes
    return ds
