"""The roster rules of :class:`~safemicro.synth.household.HouseholdSynthesizer`: heads where
heads belong and the age gaps to the head seen in the data per relationship, checked on
each drawn member and imposed when redraws fail."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl


class _RosterRules:
    """Head and age-gap rules (a mixin: the fitted state lives on the synthesizer)."""

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
