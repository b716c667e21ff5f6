"""The household attack: an intruder who knows each listed household's whole composition.

Used by the linkage evaluator (``household=``) and by the simulation study; it sits below
both so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl


def household_attack(
    release: pl.DataFrame,
    intruder: pl.DataFrame,
    keys: Sequence[str],
    *,
    household: str,
    intruder_household: str,
    truth: str,
) -> dict[str, Any]:
    """The intruder knows the whole composition of each listed household (every member's
    keys). A released household is a candidate when it has as many members as the listed
    one and every listed member has a compatible released member (missing = wildcard).
    The intruder picks one candidate at random; a household is re-identified when it has
    exactly one candidate."""
    rel = release.select(household, truth, *keys).with_row_index("__r")
    itr = intruder.select(intruder_household, truth, *keys).with_row_index("__i")
    rel_size = rel.group_by(household).len().rename({"len": "__rsize"})
    itr_size = itr.group_by(intruder_household).len().rename({"len": "__isize"})
    missing = rel.select([pl.col(k).is_null() for k in keys]).to_numpy()
    pattern = (missing * (1 << np.arange(len(keys)))).sum(axis=1)
    rel = rel.with_columns(pl.Series("__pat", pattern))
    pairs = []
    for p in np.unique(pattern).tolist():
        observed = [k for j, k in enumerate(keys) if not (p >> j) & 1]
        part = rel.filter(pl.col("__pat") == p).select("__r", household, *observed)
        joined = (
            itr.select("__i", intruder_household, *observed).join(part, on=observed, how="inner")
            if observed
            else itr.select("__i", intruder_household).join(part.select("__r", household), how="cross")
        )
        pairs.append(joined.select("__i", intruder_household, household))
    pairs_df = pl.concat(pairs)
    covered = (
        pairs_df.unique(["__i", household])
        .group_by(intruder_household, household)
        .len()
        .join(itr_size, on=intruder_household)
        .join(rel_size, on=household)
        .filter((pl.col("len") == pl.col("__isize")) & (pl.col("__rsize") == pl.col("__isize")))
    )
    n_cand = covered.group_by(intruder_household).agg(pl.len().alias("n_candidates"))
    # the true released household of each listed household (if it was sampled)
    true_hh = (
        itr.join(rel.select(truth, household), on=truth, how="inner")
        .group_by(intruder_household)
        .agg(pl.col(household).first().alias("__true"))
    )
    listed = itr_size.join(n_cand, on=intruder_household, how="left").join(true_hh, on=intruder_household, how="left")
    hit = (
        covered.join(true_hh, on=intruder_household)
        .filter(pl.col(household) == pl.col("__true"))
        .select(intruder_household, pl.lit(True).alias("__hit"))
    )
    listed = listed.join(hit, on=intruder_household, how="left").with_columns(
        pl.col("n_candidates").fill_null(0), pl.col("__hit").fill_null(False)
    )
    in_release = listed.get_column("__true").is_not_null().to_numpy()
    n_c = listed.get_column("n_candidates").to_numpy().astype(float)
    hit_arr = listed.get_column("__hit").to_numpy()
    correct = np.where(hit_arr & (n_c > 0), 1.0 / np.maximum(n_c, 1), 0.0)
    unique = n_c == 1
    size = listed.get_column("__isize").to_numpy()
    n_rel_hh = rel.get_column(household).n_unique()
    return {
        "n_listed_households": int(len(listed)),
        "n_released_households": int(n_rel_hh),
        "n_listed_in_release": int(in_release.sum()),
        "expected_correct_households": float(correct.sum()),
        "household_match_rate": float(correct[in_release].sum() / in_release.sum()) if in_release.any() else None,
        "reidentified_households": int(unique.sum()),
        "reidentified_households_correct": int((unique & hit_arr).sum()),
        "persons_in_reidentified_households": int(size[unique & hit_arr].sum()),
        "share_of_released_households_reidentified": float((unique & hit_arr).sum() / n_rel_hh) if n_rel_hh else None,
    }
