"""Joint codes and two-way tables of the key variables from the two key tables of a release.

The risk assessments before and after a release have built a key table each: the distinct
key combinations, the code of every key value and the key of every record. The utility
comparison needs the same thing per key variable — one code space for its values before and
after — and the two-way tables of every pair of keys. Encoding the few distinct values and
looking the records up through their key gives exactly the codes
:func:`~safemicro.utility.tables.joint_codes` computes from the records (codes follow the
sorted values), and a two-way table's record counts are sums of the key counts. Weighted
tables still add the weights record by record, in record order, so every float is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from safemicro.keys import BINCOUNT_LIMIT, KeyTable
from safemicro.utility.tables import JointCodes, joint_codes, table_distances

__all__ = ["KeyJointCodes", "key_joint_codes", "key_pair_distances", "narrow", "per_record"]


def narrow(codes: np.ndarray, card: int) -> np.ndarray:
    """``codes`` (0..card) in the narrowest unsigned integer type that holds them: a
    record-level code array of a 30M-row file is 30 MB as uint8 instead of 240 MB."""
    dtype = np.uint8 if card < 1 << 8 else np.uint16 if card < 1 << 16 else np.uint32 if card < 1 << 32 else np.int64
    return codes.astype(dtype, copy=False)


@dataclass
class KeyJointCodes(JointCodes):
    """Joint codes of a key variable per row of each key table; the per-record codes
    (``before``/``after``, None here) are made only while a comparison needs them
    (:func:`per_record`), so that they are not held for every key at once."""

    key_before: np.ndarray = None  # type: ignore[assignment]
    key_after: np.ndarray = None  # type: ignore[assignment]
    tables: tuple[KeyTable, KeyTable] = None  # type: ignore[assignment]

    def counts(self, weights_before=None, weights_after=None) -> tuple[np.ndarray, np.ndarray]:
        """The tables of :meth:`JointCodes.counts`: record counts summed over the keys
        (whole numbers, so exactly the same floats), weighted ones record by record."""
        n = self.card + 1
        kb, ka = self.tables
        if weights_before is None and weights_after is None:
            return (
                np.bincount(self.key_before, weights=kb.count, minlength=n).astype(np.float64),
                np.bincount(self.key_after, weights=ka.count, minlength=n).astype(np.float64),
            )
        return per_record(self).counts(weights_before, weights_after)


def per_record(jc: JointCodes) -> JointCodes:
    """``jc`` with its per-record codes (narrow integers), made from the key tables for
    :class:`KeyJointCodes`."""
    if not isinstance(jc, KeyJointCodes):
        return jc
    kb, ka = jc.tables
    before = narrow(jc.key_before, jc.card)[kb.record_key]
    after = narrow(jc.key_after, jc.card)[ka.record_key]
    return JointCodes(before, after, jc.values, jc.card)


def key_joint_codes(
    tables: tuple[KeyTable, KeyTable], name: str, before: pl.Series, after: pl.Series
) -> KeyJointCodes | None:
    """The joint codes of key ``name`` whose analysed values are ``before`` and ``after``
    (the records of the two key tables, in their order); None when the tables do not
    describe these columns."""
    kb, ka = tables
    if name not in kb.keys or name not in ka.keys:
        return None
    if kb.record_key is None or ka.record_key is None:
        return None
    if kb.n_records != before.len() or ka.n_records != after.len():
        return None
    jb, ja = kb.keys.index(name), ka.keys.index(name)
    lb, la = kb.labels[jb], ka.labels[ja]
    if lb.dtype != before.dtype or la.dtype != after.dtype:
        return None
    labels = joint_codes(lb, la)  # the distinct values, in one code space
    key_b = np.concatenate([[0], labels.before])[kb.codes[:, jb]]
    key_a = np.concatenate([[0], labels.after])[ka.codes[:, ja]]
    return KeyJointCodes(
        before=None,  # type: ignore[arg-type]
        after=None,  # type: ignore[arg-type]
        values=labels.values,
        card=labels.card,
        key_before=key_b,
        key_after=key_a,
        tables=tables,
    )


def key_pair_distances(
    x: JointCodes, y: JointCodes, *, weights_before: np.ndarray | None, weights_after: np.ndarray | None
) -> dict[str, float | int | None] | None:
    """:func:`~safemicro.utility.tables.pair_distances` of two key variables, the record
    counts summed over the keys and the weighted tables through each record's key; None
    unless both come from the same key tables."""
    if not (isinstance(x, KeyJointCodes) and isinstance(y, KeyJointCodes) and x.tables is y.tables):
        return None
    kb, ka = x.tables
    space = (x.card + 1) * (y.card + 1)
    if space > BINCOUNT_LIMIT:
        return None
    cell_b = x.key_before * (y.card + 1) + y.key_before
    cell_a = x.key_after * (y.card + 1) + y.key_after
    cb = np.rint(np.bincount(cell_b, weights=kb.count, minlength=space)).astype(np.int64)
    ca = np.rint(np.bincount(cell_a, weights=ka.count, minlength=space)).astype(np.int64)
    weighted = None
    if weights_before is not None and weights_after is not None:
        weighted = (
            np.bincount(cell_b[kb.record_key], weights=weights_before, minlength=space),
            np.bincount(cell_a[ka.record_key], weights=weights_after, minlength=space),
        )
    return table_distances(cb, ca, weighted)
