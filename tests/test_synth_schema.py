"""Synthesis schema: kinds inferred from the data, and an exact encode/decode round trip."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from conftest import NIST, SD2011, SDC_DATA
from safemicro.errors import SafemicroError
from safemicro.examples.survey import generate_survey
from safemicro.io import read
from safemicro.io.dataset import Dataset
from safemicro.plan import Roles
from safemicro.synth.schema import infer_schema, state_name

SD2011 = SD2011
MA2019 = NIST / "ma2019.csv"
TESTDATA = SDC_DATA / "testdata.csv"


def round_trip(ds: Dataset, **kw):
    schema = infer_schema(ds, **kw)
    encoded = schema.encode(ds.frame)
    assert_frame_equal(schema.decode(encoded), ds.frame)
    return schema, encoded


def test_sd2011_round_trip_and_kinds():
    ds = read(SD2011)
    schema, enc = round_trip(ds)
    assert schema["sex"].kind == "categorical" and schema["sex"].categories == ["FEMALE", "MALE"]
    assert schema["eduspec"].has_missing and schema["eduspec"].n_codes == 28
    # -8 "not applicable" is a special code, NA is missing: each a state of its own
    income = schema["income"]
    assert income.kind == "numeric" and income.special_values == [-8] and income.has_missing
    assert income.integral and income.n_states == 3
    state = enc.get_column(state_name("income"))
    assert (state == 1).sum() == (ds.frame["income"] == -8).sum()
    assert (state == 2).sum() == ds.frame["income"].null_count()
    assert enc.get_column("income").filter(state != 0).null_count() == (state != 0).sum()
    assert schema["bmi"].kind == "numeric" and not schema["bmi"].integral
    assert schema["age"].special_values == []  # no negatives: nothing mistaken for a code
    assert schema["mmarr"].kind == "categorical"  # 12 months: few values


def test_nist_literal_n_stays_n():
    ds = read(MA2019)
    schema, enc = round_trip(ds)
    pincp = schema["PINCP"]
    assert pincp.kind == "numeric" and pincp.dtype == pl.String
    assert pincp.number_format == "float" and pincp.special_values == ["N"] and not pincp.has_missing
    assert enc.get_column("PINCP").dtype == pl.Float64
    assert schema["POVPIP"].number_format == "int"
    assert schema["PUMA"].kind == "categorical" and schema["PUMA"].categories[0] == "25-00503"
    assert schema["MSP"].kind == "categorical" and "N" in schema["MSP"].categories
    # numbers stored as text come back as the same text, N included
    decoded = schema.decode(enc)
    assert decoded["PINCP"].to_list()[:2] == ["5000.0", "0.0"]
    assert (decoded["MSP"] == "N").sum() == 1120


def test_survey_labels_and_user_missing_codes():
    ds = generate_survey(n_households=150, seed=3)
    roles = Roles(direct_ids=["head_name", "phone"], household="hhid")
    schema, _ = round_trip(ds, roles=roles)
    assert {schema[c].kind for c in ("hhid", "head_name", "phone")} == {"id"}
    pi = schema["protection_incident"]
    assert pi.kind == "categorical" and {98, 99} <= set(pi.categories)
    assert set(pi.special_values) <= {98, 99} and pi.special_values
    assert schema["income"].kind == "numeric"


def test_testdata_round_trip():
    ds = read(TESTDATA)
    schema, _ = round_trip(ds)
    assert schema["sampling_weight"].kind == "constant"
    assert schema["roof"].kind == "categorical" and schema["roof"].ordered
    assert schema["expend"].kind == "numeric"


def test_odd_types_round_trip():
    n = 60
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "day": pl.Series([dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, n)]),
            "stamp": pl.Series(rng.integers(0, 10**12, n)).cast(pl.Datetime("us", "UTC")),
            "flag": pl.Series(rng.random(n) > 0.5),
            "cat": pl.Series(rng.choice(["a", "b", "c"], n)).cast(pl.Categorical),
            "f32": pl.Series(rng.normal(size=n), dtype=pl.Float32),
            "nan": pl.Series([np.nan if i % 7 == 0 else (None if i % 11 == 0 else float(i) / 3) for i in range(n)]),
            "empty": pl.Series([None] * n, dtype=pl.Int64),
            "one": pl.Series(["x"] * n),
            "rowno": pl.Series(np.arange(n) + 100),
            "name": pl.Series([f"person {i}" for i in range(n)]),
        }
    )
    frame = frame.with_columns(pl.when(pl.int_range(n) == 3).then(None).otherwise(pl.col("day")).alias("day"))
    schema, enc = round_trip(Dataset(frame))
    kinds = {c: s.kind for c, s in schema.columns.items()}
    assert kinds == {
        "day": "numeric",
        "stamp": "numeric",
        "flag": "categorical",
        "cat": "categorical",
        "f32": "numeric",
        "nan": "numeric",
        "empty": "constant",
        "one": "constant",
        "rowno": "id",
        "name": "id",
    }
    assert any("empty" in note for note in schema.notes)
    assert any("day" in note and "Date" in note for note in schema.notes)
    assert enc["day"].dtype == pl.Float64


def test_high_cardinality_is_text():
    n = 12_000
    frame = pl.DataFrame({"code": pl.Series([f"c{i % 10_000}" for i in range(n)])})
    schema, enc = round_trip(Dataset(frame))
    assert schema["code"].kind == "text" and schema["code"].n_codes == 10_000


def test_unseen_values_name_column_and_row():
    ds = read(SD2011)
    schema = infer_schema(ds)
    bad = ds.frame.head(5).with_columns(pl.Series("region", ["Mazowieckie"] * 4 + ["Atlantis"]))
    with pytest.raises(SafemicroError) as e:
        schema.encode(bad)
    assert e.value.column == "region" and e.value.row == 4 and "Atlantis" in str(e.value)
    with pytest.raises(SafemicroError) as e:
        schema.encode(ds.frame.head(3).with_columns(pl.Series("sex", ["MALE", None, "MALE"])))
    assert e.value.column == "sex" and e.value.row == 1
    with pytest.raises(SafemicroError) as e:
        infer_schema(read(MA2019)).encode(pl.DataFrame({"PINCP": ["1.0", "oops"]}))
    assert e.value.column == "PINCP" and e.value.row == 1
    with pytest.raises(SafemicroError) as e:
        schema.encode(pl.DataFrame({"nonsense": [1]}))
    assert e.value.column == "nonsense"


def test_nested_column_is_a_clear_error():
    with pytest.raises(SafemicroError) as e:
        infer_schema(Dataset(pl.DataFrame({"x": [[1, 2], [3]]})))
    assert e.value.column == "x"


def test_roles_must_name_columns():
    with pytest.raises(SafemicroError) as e:
        infer_schema(read(TESTDATA), roles=Roles(household="hid"))
    assert e.value.column == "hid"


def test_codebook_missing_codes_are_special_values():
    frame = pl.DataFrame({"x": pl.Series(np.r_[np.arange(40), [999, 999, 998]], dtype=pl.Int64)})
    ds = Dataset(frame)
    ds.codebook.meta("x").missing_values = [998, 999]
    schema, enc = round_trip(ds)
    assert schema["x"].kind == "numeric" and schema["x"].special_values == [998, 999]
    assert enc[state_name("x")].to_list()[-3:] == [2, 2, 1]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(-10, 10_000)), min_size=1, max_size=60),
    st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=60),
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "N", "7", "-8"])), min_size=1, max_size=60),
)
def test_round_trip_property(ints, floats, strings):
    n = min(len(ints), len(floats), len(strings))
    frame = pl.DataFrame(
        {
            "i": pl.Series(ints[:n], dtype=pl.Int64),
            "f": pl.Series(floats[:n], dtype=pl.Float64),
            "s": pl.Series(strings[:n], dtype=pl.String),
            "fs": pl.Series([None if v is None else str(float(v)) for v in floats[:n]], dtype=pl.String),
        }
    )
    round_trip(Dataset(frame))
