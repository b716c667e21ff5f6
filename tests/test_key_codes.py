"""The utility comparison from the key tables equals the one from the records (testdata)."""

from __future__ import annotations

import numpy as np
import polars as pl

from conftest import KV7, SDC_DATA
from safemicro import anonymize
from safemicro.io import Dataset
from safemicro.methods.base import ROW_ID
from safemicro.plan import Plan
from safemicro.utility import compare
from safemicro.utility.key_codes import key_joint_codes, per_record
from safemicro.utility.tables import joint_codes

PLAN = """
roles: {keys: [urbrur, roof, walls, water, electcon, relat, sex], weight: sampling_weight, household: ori_hid}
targets: {k: 5}
steps:
  - local_suppression: {k: 5}
seed: 3
"""


def test_key_table_codes_and_tables_equal_the_record_ones():
    frame = pl.read_csv(SDC_DATA / "testdata.csv")
    row = pl.int_range(0, frame.height)
    frame = frame.with_columns(
        pl.when(row % 31 == 0).then(None).otherwise(pl.col("relat")).alias("relat"),
        ("r" + pl.col("roof").cast(pl.String)).alias("roof"),
    )
    release = anonymize(Dataset(frame), Plan.from_yaml(PLAN))
    tables = (release.risk_before.key_table, release.risk_after.key_table)
    original = Dataset(frame.with_row_index(ROW_ID).with_columns(pl.col(ROW_ID).cast(pl.Int64)))
    released = Dataset(release.dataset.frame.with_row_index(ROW_ID).with_columns(pl.col(ROW_ID).cast(pl.Int64)))
    for name in KV7:
        before, after = original.analysis_column(name), released.analysis_column(name)
        fast, slow = key_joint_codes(tables, name, before, after), joint_codes(before, after)
        assert fast is not None, name
        assert fast.before is None and fast.after is None, name  # no per-record codes held
        rec = per_record(fast)
        assert rec.before.dtype == rec.after.dtype == np.uint8, name  # narrow codes (card < 256)
        assert np.array_equal(rec.before, slow.before) and np.array_equal(rec.after, slow.after), name
        w_b = original.frame["sampling_weight"].cast(pl.Float64).to_numpy()
        w_a = released.frame["sampling_weight"].cast(pl.Float64).to_numpy()
        for weights in ((), (w_b, w_a)):
            for a, b in zip(fast.counts(*weights), slow.counts(*weights)):
                assert a.dtype == b.dtype and np.array_equal(a, b), name  # the same floats
        assert fast.values.equals(slow.values) and fast.card == slow.card, name
    roles = Plan.from_yaml(PLAN).roles
    assert compare(original, released, roles=roles, key_tables=tables) == compare(original, released, roles=roles)
    assert release.report["utility"]["tables"] == compare(original, released, roles=roles)["tables"]
