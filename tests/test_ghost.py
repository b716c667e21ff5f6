"""Ghost variables (sdcMicro ``ghostVars``): a suppression in a key suppresses its linked ghosts.

Reference: sdcMicro's ``createSdcObj(ghostVars=)`` documentation — "if values of a key
variable are suppressed, the corresponding values of the linked ghost variables are also
suppressed"; checked here cell by cell on sdcMicro's testdata.
"""

from __future__ import annotations

import polars as pl
from tests.conftest import KV7, SDC_DATA

import safemicro
from safemicro.plan import Plan


def test_suppressing_a_key_suppresses_its_ghost_variables():
    df = pl.read_csv(SDC_DATA / "testdata.csv")
    # a ghost that would give the suppressed key away: the roof material spelled out
    df = df.with_columns(
        pl.format("roof type {}", pl.col("roof")).alias("roof_text"), pl.col("walls").alias("walls_copy")
    )
    plan = Plan.model_validate(
        {
            "roles": {"keys": KV7, "household": "ori_hid", "ghost": {"roof_text": "roof", "walls_copy": "walls"}},
            "steps": [{"local_suppression": {"k": 3}}],
            "seed": 1,
        }
    )
    release = safemicro.anonymize(df, plan)
    out = release.dataset.frame
    for ghost, key in (("roof_text", "roof"), ("walls_copy", "walls")):
        suppressed = df[key].is_not_null() & out[key].is_null()
        assert int(suppressed.sum()) > 0
        assert out.filter(suppressed)[ghost].null_count() == int(suppressed.sum())
        kept = ~suppressed
        assert out.filter(kept)[ghost].to_list() == df.filter(kept)[ghost].to_list()
        step = release.report["steps"][0]
        assert step["suppressed"][ghost] == int(suppressed.sum())
        assert any(ghost in note for note in step["notes"])
