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

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.keys import encode_column
from safemicro.methods.base import rng_for
from safemicro.synth.schema import infer_schema

__all__ = ["HouseholdSynthesizer"]

# Internal columns (never in the output). The prefix keeps them apart from user columns.
_P = "__hh_"
_SIZE, _HEADS, _POS, _LEFT, _HLEFT = (_P + s for s in ("size", "heads", "pos", "left", "heads_left"))
_HEAD, _PREV = _P + "head_", _P + "prev_"

# Usual names (any case) of the relationship-to-head and member line-number columns,
# used when the caller does not name them.
RELATIONSHIP_NAMES = ("relationship", "relation", "relat", "rel_head", "relhead", "reltohead", "relationship_to_head", "hhrel")
ORDER_NAMES = ("line_no", "lineno", "line", "line_number", "member_no", "memberno", "person_no", "pernum")

# Column kinds that never condition other columns: identifiers, free text, constants.
_NOT_PREDICTORS = ("id", "text", "constant")


@dataclass
class _Models:
    households: Any
    first: Any
    members: Any | None  # None when no household has two members


class HouseholdSynthesizer:
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
    ) -> "HouseholdSynthesizer":
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
                rows.gather(later), pos[later], size[hs[later]], None if heads is None else heads[hs[later]],
                person.gather(start[later]), person.gather(later - 1),
            )
            frame = pl.concat([frame, person.gather(later)], how="horizontal")
            members_model = _fit(self._model(lead), self._dataset(frame), self._member_fixed, known, int(seeds[2]))
        self._models = _Models(hh_model, first_model, members_model)
        for stage, model in (("households", hh_model), ("first members", first_model), ("members", members_model)):
            self.notes += [f"{stage}: {note}" for note in getattr(model, "notes", None) or []]
        self._n_households = n_households
        self._fitted = True
        return self

    def _household_index(self, persons: Dataset, households: Dataset | None) -> tuple[np.ndarray, int]:
        """Each person's household as 0..H-1 (first appearance, or the household file's order)."""
        hid = self.household
        for ds, what in ((persons, "person file"), (households, "household file")):
            if ds is not None and hid not in ds.columns:
                raise SafemicroError(f"the {what} has no household id column", column=hid, file=ds.source)
        if households is None:
            codes = _id_codes(persons.frame[hid], persons.source)
            _, first, inv = np.unique(codes, return_index=True, return_inverse=True)
            rank = np.empty(len(first), dtype=np.int64)
            rank[np.argsort(first)] = np.arange(len(first))
            return rank[inv.ravel()], len(first)
        _id_codes(households.frame[hid], households.source)
        _id_codes(persons.frame[hid], persons.source)
        try:
            both = pl.concat([households.frame.select(hid), persons.frame.select(hid)], how="vertical_relaxed")[hid]
        except pl.exceptions.PolarsError:
            raise SafemicroError("the household id has different types in the household and person files", column=hid) from None
        codes = _id_codes(both, None)
        hh_codes, p_codes = codes[: households.n], codes[households.n :]
        _, first = np.unique(hh_codes, return_index=True)
        if len(first) < households.n:
            row = int(np.setdiff1d(np.arange(households.n), first)[0])
            raise SafemicroError("household id appears twice in the household file", column=hid, row=row, file=households.source)
        seen = np.full(codes.max() + 1, -1, dtype=np.int64)
        seen[hh_codes] = np.arange(households.n)
        h = seen[p_codes]
        if (h < 0).any():
            row = int(np.argmax(h < 0))
            raise SafemicroError("person's household id is not in the household file", column=hid, row=row, file=persons.source)
        return h, households.n

    def _roster_columns(self, persons: Dataset, h: np.ndarray) -> tuple[str | None, str | None]:
        """The relationship and person-order columns: as given, else found by their usual names."""
        rel, order = self.relationship, self.person_order
        names = {c.lower(): c for c in persons.columns if c != self.household}
        if rel is None:
            found = [c for k, c in names.items() if k in RELATIONSHIP_NAMES]
            if found and (self.head_code is not None or _infer_head_code(persons.frame[found[0]], h) is not None):
                rel = found[0]
                self.notes.append(f"relationship to the head: {rel!r} (by its name)")
        if order is None:
            first = _first_rows(h, int(h.max()) + 1)[h]
            found = [c for k, c in names.items() if k in ORDER_NAMES and c != rel and _differs(persons.frame[c], first).any()]
            if found:
                order = found[0]
                self.notes.append(f"members ordered by {order!r} (by its name)")
        return rel, order

    def _split_columns(self, persons: Dataset, households: Dataset | None, h: np.ndarray, n: int) -> None:
        """Household variables, person variables and the internal-name check."""
        hid, special = self.household, {self.household, self._order, self._rel}
        for name in (self._order, self._rel, self.age):
            if name is not None and name not in persons.columns:
                raise SafemicroError("no such column in the person file", column=name, file=persons.source)
        every = persons.columns + (households.columns if households is not None else [])
        for name in every:
            if name.startswith(_P):
                raise SafemicroError(f"column names starting with {_P!r} are reserved", column=name)
        if households is not None:
            shared = [c for c in households.columns if c in persons.columns and c != hid]
            if shared:
                raise SafemicroError("column is in both the household and the person file", column=shared[0])
            if self.household_level is not None:
                self.notes.append("household_level ignored: the household file's columns are the household variables")
            self._hh_vars = [c for c in households.columns if c != hid]
        else:
            first = _first_rows(h, n)
            frame = persons.frame
            if self.household_level is None:
                multi = np.bincount(h, minlength=n)[h] >= 2
                self._hh_vars = [
                    c
                    for c in persons.columns
                    if c not in special and multi.any() and not _differs(frame[c], first[h])[multi].any()
                ]
                self.notes.append(f"household-level variables (constant within every household): {self._hh_vars}")
            else:
                for c in self.household_level:
                    if c not in persons.columns:
                        raise SafemicroError("household_level names a column the data do not have", column=c)
                    if c in special:
                        raise SafemicroError("the household id, person order and relationship cannot be household-level", column=c)
                    bad = _differs(frame[c], first[h])
                    if bad.any():
                        row = int(np.argmax(bad))
                        raise SafemicroError(
                            f"household-level variable differs within household {frame[hid][row]!r}",
                            column=c,
                            row=row,
                            file=persons.source,
                        )
                self._hh_vars = list(self.household_level)
        self._person_vars = [c for c in persons.columns if c != hid and c != self._order and c not in self._hh_vars]
        if not self._person_vars:
            raise SafemicroError("no person-level variables to synthesize besides the household id", column=hid)
        self._context = None if self.context is None else list(self.context)
        for c in self._context or []:
            if c not in self._person_vars:
                raise SafemicroError("context must name person-level variables", column=c)

    def _relationship_setup(self, persons: Dataset, h: np.ndarray) -> None:
        rel = self._rel
        self._head = None
        if rel is None:
            return
        col = persons.frame[rel]
        code = self.head_code
        if code is None:
            code = _infer_head_code(col, h)
            if code is None:
                raise SafemicroError("cannot tell the head's code (no value occurs once in most households); give head_code", column=rel)
            self.notes.append(f"head code of {rel!r}: {code!r} (occurs once in most households)")
        if col.dtype.is_numeric() and not isinstance(code, (int, float, np.integer, np.floating)):
            raise SafemicroError(f"head_code {code!r} is not a number but the column is numeric", column=rel)
        self._head = code
        if not self._is_head(col).any():
            raise SafemicroError(f"no member has the head code {code!r}", column=rel)

    def _age_setup(self, persons: Dataset) -> None:
        age = self.age
        if age is None:
            named = [c for c in self._person_vars if c.lower() == "age" and persons.frame[c].dtype.is_numeric()]
            age = named[0] if named else None
        elif age not in self._person_vars:
            raise SafemicroError("age must be a person-level variable", column=age)
        elif not persons.frame[age].dtype.is_numeric():
            raise SafemicroError("age must be numeric", column=age)
        self._age = age
        self._age_missing = persons.codebook.meta(age).missing_values if age else []

    def _canonical_order(self, persons: Dataset, h: np.ndarray) -> np.ndarray:
        """Rows sorted by household, heads first, then person order (or file order)."""
        n = persons.n
        keys = [np.arange(n)]
        if self._order is not None:
            codes, card = encode_column(persons.frame[self._order])
            keys.append(np.where(codes == 0, card + 1, codes))  # no order: last
        if self._rel is not None:
            keys.append(~self._is_head(persons.frame[self._rel]))
        keys.append(h)
        return np.lexsort(keys)

    def _household_table(self, persons, households, h, n, size, heads) -> pl.DataFrame:
        """One row per household: its variables, size and number of heads."""
        rows = households.frame if households is not None else persons.frame.gather(_first_rows(h, n))
        table = pl.DataFrame([rows[c] for c in self._hh_vars] + [pl.Series(_SIZE, size, dtype=pl.Int64)])
        if heads is not None:
            table = table.with_columns(pl.Series(_HEADS, heads, dtype=pl.Int64))
        return table

    def _size_functions(self, table: pl.DataFrame, size: np.ndarray) -> dict[str, pl.DataFrame | None]:
        """Household variables fixed by the size (e.g. hh_size, or weights of 100/size).

        They are computed from the synthetic size, not synthesized: None means the value
        is the size itself, a frame maps each observed size to the variable's value.
        """
        out: dict[str, pl.DataFrame | None] = {}
        if len(np.unique(size)) < 2 or np.bincount(size).max() < 5:
            return out
        for c in self._hh_vars:
            col = table[c]
            if col.dtype.is_numeric() and col.null_count() == 0 and (col.cast(pl.Float64).to_numpy() == size).all():
                out[c] = None
                self.notes.append(f"{c!r} equals the number of members: computed, not synthesized")
                continue
            pairs = pl.DataFrame({_SIZE: size, c: col})
            if col.n_unique() > 1 and pairs.unique().height == pairs[_SIZE].n_unique():
                out[c] = pairs.unique(_SIZE).sort(_SIZE)
                self.notes.append(f"{c!r} is a function of the number of members: computed, not synthesized")
        return out

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
                meta = VariableMeta(name=name, measure="ordinal" if name in (_SIZE, _HEADS, _POS, _LEFT, _HLEFT) else "unknown")
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

    # -- rules -------------------------------------------------------------------------

    def _is_head(self, col: pl.Series) -> np.ndarray:
        code = self._head
        if code is None:
            return np.zeros(len(col), dtype=bool)
        if col.dtype.is_numeric():
            hit = col.cast(pl.Float64) == float(code)
        else:
            hit = col.cast(pl.String) == str(code)
        return hit.fill_null(False).to_numpy()

    def _fallback_code(self, person: pl.DataFrame, pos: np.ndarray) -> Any:
        """The commonest non-head relationship after position 1 (imposed when redraws fail)."""
        if self._rel is None:
            return None
        rel = person[self._rel]
        other = rel.filter(pl.Series(~self._is_head(rel) & (pos >= 2))).drop_nulls()
        if other.len() == 0:
            other = rel.filter(pl.Series(~self._is_head(rel))).drop_nulls()
        return other.mode().sort()[0] if other.len() else None

    def _ages(self, col: pl.Series) -> np.ndarray:
        x = col.cast(pl.Float64)
        if self._age_missing:
            x = x.set(x.is_in([float(v) for v in self._age_missing if isinstance(v, (int, float))]), None)
        return x.fill_nan(None).fill_null(np.nan).to_numpy()

    def _rel_keys(self, col: pl.Series) -> pl.Series:
        return col.cast(pl.Float64) if col.dtype.is_numeric() else col.cast(pl.String)

    def _learn_age_rules(self, person: pl.DataFrame, start: np.ndarray, heads: np.ndarray | None) -> dict:
        """Per relationship code: the (min, max) of member age minus head age in the data."""
        if self._age is None or heads is None:
            return {}
        age = self._ages(person[self._age])
        gap = age - age[start]
        keep = (heads >= 1) & ~self._is_head(person[self._rel]) & np.isfinite(gap)
        frame = pl.DataFrame({"r": self._rel_keys(person[self._rel]), "g": gap}).filter(pl.Series(keep))
        table = frame.drop_nulls("r").group_by("r").agg(pl.col("g").min().alias("lo"), pl.col("g").max().alias("hi"))
        return {r: (lo, hi) for r, lo, hi in table.iter_rows()}

    def _violations(self, out: pl.DataFrame, must_head: np.ndarray | None, head_age: np.ndarray | None) -> np.ndarray:
        bad = np.zeros(out.height, dtype=bool)
        if must_head is not None:
            bad |= self._is_head(out[self._rel]) != must_head
        if head_age is not None and self._age_rules:
            lo, hi = self._gap_bounds(out)
            gap = self._ages(out[self._age]) - head_age
            with np.errstate(invalid="ignore"):
                bad |= (gap < lo) | (gap > hi)
        return bad

    def _gap_bounds(self, out: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        keys = self._rel_keys(out[self._rel])
        rules = self._age_rules
        lo = keys.replace_strict({k: v[0] for k, v in rules.items()}, default=None, return_dtype=pl.Float64)
        hi = keys.replace_strict({k: v[1] for k, v in rules.items()}, default=None, return_dtype=pl.Float64)
        return lo.fill_null(-np.inf).to_numpy(), hi.fill_null(np.inf).to_numpy()

    def _impose(self, out: pl.DataFrame, must_head: np.ndarray | None, head_age: np.ndarray | None) -> pl.DataFrame:
        """Impose the rules on members still breaking them after ``max_tries`` redraws."""
        rel = self._rel
        if must_head is not None:
            is_head = self._is_head(out[rel])
            make_head, unmake = must_head & ~is_head, ~must_head & is_head
            self.checks["relationship_imposed"] += int(make_head.sum() + unmake.sum())
            if make_head.any() or unmake.any():
                dtype = out[rel].dtype
                out = out.with_columns(
                    pl.when(pl.Series(make_head))
                    .then(pl.lit(self._head).cast(dtype))
                    .when(pl.Series(unmake))
                    .then(pl.lit(self._fallback).cast(dtype))
                    .otherwise(pl.col(rel))
                    .alias(rel)
                )
        if head_age is not None and self._age_rules:
            lo, hi = self._gap_bounds(out)
            age = self._ages(out[self._age])
            with np.errstate(invalid="ignore"):
                fixed = np.clip(age, head_age + lo, head_age + hi)
                wrong = np.isfinite(age) & np.isfinite(head_age) & (fixed != age)
            self.checks["age_imposed"] += int(wrong.sum())
            if wrong.any():
                dtype = out[self._age].dtype
                values = pl.Series(np.where(wrong, fixed, 0.0))
                if dtype.is_integer():
                    values = values.round()
                out = out.with_columns(
                    pl.when(pl.Series(wrong)).then(values.cast(dtype)).otherwise(pl.col(self._age)).alias(self._age)
                )
        return out

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
                pred.gather(act_k), pos, size[act_k], None if heads is None else heads[act_k],
                first.gather(at_head), prev.gather(np.searchsorted(prev_act, act_k)),
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


def _id_codes(ids: pl.Series, source: str | None) -> np.ndarray:
    codes, _ = encode_column(ids)
    if (codes == 0).any():
        row = int(np.argmax(codes == 0))
        raise SafemicroError("missing household id", column=ids.name, row=row, file=source)
    return codes


def _first_rows(h: np.ndarray, n: int) -> np.ndarray:
    """The first row of each household 0..n-1."""
    first = np.full(n, len(h), dtype=np.int64)
    np.minimum.at(first, h, np.arange(len(h)))
    return first


def _differs(col: pl.Series, ref_rows: np.ndarray) -> np.ndarray:
    """Rows whose value differs from the value at ``ref_rows`` (null- and NaN-aware)."""
    return col.gather(ref_rows).ne_missing(col).fill_null(True).to_numpy()


def _fit(model, ds: Dataset, fixed: list[str], known: dict, seed: int):
    """Fit with the inferred schema, the fixed columns' specs taken from ``known``."""
    schema = infer_schema(ds)
    schema.columns.update({c: known[c] for c in fixed if c in known})
    return model.fit(ds, schema=schema, fixed=fixed, seed=seed)


def _infer_head_code(col: pl.Series, h: np.ndarray) -> Any:
    """The value found exactly once in the largest number of households (at least half)."""
    frame = pl.DataFrame({"h": h, "v": col}).drop_nulls("v")
    once = frame.group_by("h", "v").len().filter(pl.col("len") == 1).group_by("v").len()
    if once.height == 0:
        return None
    best = once.sort(["len", "v"], descending=[True, False]).row(0)
    return best[0] if best[1] * 2 >= len(np.unique(h)) else None


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
