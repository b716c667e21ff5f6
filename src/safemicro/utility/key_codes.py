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

__all__ = ["KeyJointCodes", "key_joint_codes", "key_pair_distances"]


@dataclass
class KeyJointCodes(JointCodes):
    """Joint codes of a key variable, also per row of each key table."""

    key_before: np.ndarray = None  # type: ignore[assignment]
    key_after: np.ndarray = None  # type: ignore[assignment]
    tables: tuple[KeyTable, KeyTable] = None  # type: ignore[assignment]


def key_joint_codes(
    tables: tuple[KeyTable, KeyTable], name: str, before: pl.Series, after: pl.Series
) -> KeyJointCodes | None:
    """The joint codes of key ``name`` whose analysed values are ``before`` and ``after``
    (the records of the two key tables, in their order); None when the tables do not
    describe these columns."""
    kb, ka = tables
    if name not in kb.keys or name not in ka.keys:
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
        before=key_b[kb.record_key],
        after=key_a[ka.record_key],
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
