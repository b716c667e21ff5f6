"""What :class:`~safemicro.synth.household.HouseholdSynthesizer` learns about the rosters
before any model: each person's household, the relationship and member-order columns,
household versus person variables, the canonical member order, and the household
variables that are a function of the household size."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import encode_column

# Internal columns (never in the output). The prefix keeps them apart from user columns.
_P = "__hh_"
_SIZE, _HEADS, _POS, _LEFT, _HLEFT = (_P + s for s in ("size", "heads", "pos", "left", "heads_left"))
_HEAD, _PREV = _P + "head_", _P + "prev_"

# Usual names (any case) of the relationship-to-head and member line-number columns,
# used when the caller does not name them.
RELATIONSHIP_NAMES = (
    "relationship",
    "relation",
    "relat",
    "rel_head",
    "relhead",
    "reltohead",
    "relationship_to_head",
    "hhrel",
)
ORDER_NAMES = ("line_no", "lineno", "line", "line_number", "member_no", "memberno", "person_no", "pernum")

# Column kinds that never condition other columns: identifiers, free text, constants.
_NOT_PREDICTORS = ("id", "text", "constant")


class _RosterLayout:
    """Fit-time bookkeeping of the household synthesizer (a mixin: the state lives on it)."""

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
            raise SafemicroError(
                "the household id has different types in the household and person files", column=hid
            ) from None
        codes = _id_codes(both, None)
        hh_codes, p_codes = codes[: households.n], codes[households.n :]
        _, first = np.unique(hh_codes, return_index=True)
        if len(first) < households.n:
            row = int(np.setdiff1d(np.arange(households.n), first)[0])
            raise SafemicroError(
                "household id appears twice in the household file", column=hid, row=row, file=households.source
            )
        seen = np.full(codes.max() + 1, -1, dtype=np.int64)
        seen[hh_codes] = np.arange(households.n)
        h = seen[p_codes]
        if (h < 0).any():
            row = int(np.argmax(h < 0))
            raise SafemicroError(
                "person's household id is not in the household file", column=hid, row=row, file=persons.source
            )
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
            found = [
                c for k, c in names.items() if k in ORDER_NAMES and c != rel and _differs(persons.frame[c], first).any()
            ]
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
                        raise SafemicroError(
                            "the household id, person order and relationship cannot be household-level", column=c
                        )
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
                raise SafemicroError(
                    "cannot tell the head's code (no value occurs once in most households); give head_code", column=rel
                )
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


def _infer_head_code(col: pl.Series, h: np.ndarray) -> Any:
    """The value found exactly once in the largest number of households (at least half)."""
    frame = pl.DataFrame({"h": h, "v": col}).drop_nulls("v")
    once = frame.group_by("h", "v").len().filter(pl.col("len") == 1).group_by("v").len()
    if once.height == 0:
        return None
    best = once.sort(["len", "v"], descending=[True, False]).row(0)
    return best[0] if best[1] * 2 >= len(np.unique(h)) else None
