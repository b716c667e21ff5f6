"""Copy safeguards for synthetic data: replicated uniques, distance to closest record, Q_δ.

A synthesizer must not hand back real records. Three checks, all deterministic given a seed:

* **Replicated uniques** (:func:`replicated_uniques`): synthetic records equal to a training
  record on the key variables where that key combination is unique in the training data.
  Such a record re-creates a unique (and so identifiable) person; the synthesizer drops or
  resamples it (:func:`drop_replicated_uniques`).
* **Distance to closest record** (DCR, :func:`nearest_distances`): records are embedded as
  REaLTabFormer does — categoricals one-hot (missing is a category), numerics standard-scaled
  on the original data with missing values at the column mean, and a TruncatedSVD (exact,
  uncentred, fitted on the original) to max(5, ⌈√d⌉) components when the encoding is 20 or
  more columns wide — and compared with the L1 distance (SciPy ``cKDTree``).
* **Q_δ** (:func:`q_delta`): REaLTabFormer's test of whether synthetic records sit closer to
  the training records than fresh real records do, with a bootstrap threshold
  (:func:`q_delta_threshold`) from real rows standing in for the synthetic ones, and the
  release check :func:`q_delta_check` that draws equal-sized samples for both.

Exact-match rates (:func:`exact_match_rates`) complete the picture: synthetic rows equal to a
training row, against the natural rate of holdout rows equal to a training row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.keys import combine_codes, dense_ids
from safemicro.synth.safeguards_common import Frame, _check_columns, _frame, encode_together
from safemicro.synth.safeguards_dcr import SVD_MIN_WIDTH as SVD_MIN_WIDTH
from safemicro.synth.safeguards_dcr import distance_kinds, nearest_distances
from safemicro.synth.safeguards_qdelta import BLOCK as BLOCK
from safemicro.synth.safeguards_qdelta import FRAC as FRAC
from safemicro.synth.safeguards_qdelta import FULL_MATRIX as FULL_MATRIX
from safemicro.synth.safeguards_qdelta import MAX_K as MAX_K
from safemicro.synth.safeguards_qdelta import MULTIPLE as MULTIPLE
from safemicro.synth.safeguards_qdelta import _q_delta as _q_delta
from safemicro.synth.safeguards_qdelta import q_delta, q_delta_check, q_delta_null, q_delta_threshold

__all__ = [
    "encode_together",
    "replicated_uniques",
    "drop_replicated_uniques",
    "exact_match_rates",
    "distance_kinds",
    "nearest_distances",
    "q_delta",
    "q_delta_null",
    "q_delta_threshold",
    "q_delta_check",
]


def _joint_row_ids(frames: list[pl.DataFrame], columns: Sequence[str]) -> list[np.ndarray]:
    """One integer per row and frame: equal ids ⇔ equal values on ``columns`` (missing = missing)."""
    sizes = [f.height for f in frames]
    codes, cards = [], []
    for name in columns:
        parts, card = encode_together([f.get_column(name) for f in frames])
        codes.append(np.concatenate(parts))
        cards.append(card)
    combined, space = combine_codes(codes, cards)
    ids, _ = dense_ids(combined, space)
    return np.split(ids, np.cumsum(sizes)[:-1])


# -- replicated uniques -----------------------------------------------------------------------


def replicated_uniques(train: Frame, synth: Frame, keys: Sequence[str]) -> np.ndarray:
    """Boolean mask over the synthetic rows: equal on ``keys`` to a training record whose key
    combination is unique in the training data.

    Values are compared exactly (a missing value equals a missing value), after both frames
    are encoded together so that 1 and 1.0 match.
    """
    train, synth = _frame(train), _frame(synth)
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise SafemicroError("replicated uniques need at least one key variable")
    _check_columns(keys, training=train, synthetic=synth)
    t_ids, s_ids = _joint_row_ids([train, synth], keys)
    space = int(max(t_ids.max(initial=-1), s_ids.max(initial=-1))) + 1
    train_count = np.bincount(t_ids, minlength=space)
    return train_count[s_ids] == 1


def drop_replicated_uniques(train: Frame, synth: Frame, keys: Sequence[str]) -> Frame:
    """The synthetic data without its replicated uniques (a Dataset stays a Dataset)."""
    mask = replicated_uniques(train, synth, keys)
    if isinstance(synth, Dataset):
        from safemicro.methods.base import take_rows

        return take_rows(synth, np.flatnonzero(~mask))
    return synth.filter(pl.Series(~mask))


# -- exact matches ------------------------------------------------------------------------------


def exact_match_rates(
    synth: Frame, train: Frame, holdout: Frame | None = None, *, columns: Sequence[str] | None = None
) -> dict[str, float | int | None]:
    """Shares of records that repeat another file's record exactly on every column.

    * ``synth_in_train``: synthetic rows equal to some training row;
    * ``holdout_in_train``: the natural rate — holdout rows equal to some training row;
    * ``synth_in_holdout``: synthetic rows equal to some holdout row;
    * ``unique_exact_match``: training records unique in the training data that appear in
      the synthetic data (SDNist's "unique exact match" share), and
      ``holdout_unique_exact_match`` the same for the holdout as a reference.
    Missing values match missing values. Rates are None when a file is absent or empty.
    """
    synth, train = _frame(synth), _frame(train)
    hold = None if holdout is None else _frame(holdout)
    columns = list(columns) if columns is not None else train.columns
    frames = {"training": train, "synthetic": synth}
    if hold is not None:
        frames["holdout"] = hold
    _check_columns(columns, **frames)
    ids = _joint_row_ids(list(frames.values()), columns)
    t_ids, s_ids = ids[0], ids[1]
    h_ids = ids[2] if hold is not None else None
    space = int(max(i.max(initial=-1) for i in ids)) + 1
    t_count = np.bincount(t_ids, minlength=space)
    s_count = np.bincount(s_ids, minlength=space)
    unique = t_count == 1

    def share(mask: np.ndarray) -> float | None:
        return float(mask.mean()) if len(mask) else None

    out: dict[str, float | int | None] = {
        "synth_in_train": share(t_count[s_ids] > 0),
        "train_uniques": int(unique.sum()),
        "unique_exact_match": float((unique & (s_count > 0)).sum() / unique.sum()) if unique.any() else None,
        "holdout_in_train": None,
        "synth_in_holdout": None,
        "holdout_unique_exact_match": None,
    }
    if h_ids is not None:
        h_count = np.bincount(h_ids, minlength=space)
        out["holdout_in_train"] = share(t_count[h_ids] > 0)
        out["synth_in_holdout"] = share(h_count[s_ids] > 0)
        if unique.any():
            out["holdout_unique_exact_match"] = float((unique & (h_count > 0)).sum() / unique.sum())
    return out
