"""T-M8: how unique the raw traces are (unicity, Location and HomeWork attacks), the input
side of the mobility risk report, written by ingest into qa.json.

Checked against a hand-worked case (below). scikit-mobility 1.3.1 (the study's peer) did not
install here within a minute (dependency resolution timed out), so no comparison with it.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from mobility_support import KEY
from safemicro.mobility.ingest import ingest
from safemicro.mobility.synth import SynthConfig
from safemicro.mobility.synth_days import generate
from safemicro.mobility.uniqueness import homework_risk, location_risk, sample_traces, unicity, uniqueness_report

# Five subscribers' records (sub, date, hour, cell): cells x = 1, y = 2, z = 3.
# A: x x y    B: x y z    C: x x x    D: y y z    E: x
TOY = pl.DataFrame(
    [
        (1, "d1", 8, 1), (1, "d1", 9, 1), (1, "d2", 8, 2),
        (2, "d1", 8, 1), (2, "d1", 9, 2), (2, "d2", 10, 3),
        (3, "d1", 8, 1), (3, "d1", 9, 1), (3, "d2", 10, 1),
        (4, "d1", 8, 2), (4, "d2", 8, 2), (4, "d2", 9, 3),
        (5, "d1", 8, 1),
    ],
    schema={"sub": pl.UInt64, "date": pl.String, "hour": pl.Int8, "cell_ix": pl.UInt32},
    orient="row",
)  # fmt: skip


def risks(frame: pl.DataFrame) -> list[float]:
    return frame.sort("sub")["risk"].to_list()


def test_location_attack_hand_checked():
    """k = 2: A's instances {x,x} (held by A, C) and {x,y} (A, B) -> 1/2; B's {x,z} only B
    -> 1; C's {x,x} (A, C) -> 1/2; D's {y,y} only D -> 1; E has one record, its whole trace
    {x} is held by A, B, C, E -> 1/4. k = 3: every one of A-D has a unique instance (A's
    {x,x,y}, B's {x,y,z}, C's {x,x,x}, D's {y,y,z}); E stays 1/4."""
    assert risks(location_risk(TOY, 2)) == [0.5, 1.0, 0.5, 1.0, 0.25]
    assert risks(location_risk(TOY, 3)) == [1.0, 1.0, 1.0, 1.0, 0.25]
    # a budget of one instance: A's first (rarest cell y, then x: held by A, B) is a lower bound
    capped = location_risk(TOY, 2, budget=1).sort("sub")
    assert capped["risk"][0] == 0.5 and capped["complete"][0] is False


def test_homework_attack_hand_checked():
    """Top two cells: A {x,y}; B (three cells once each, ties to the smaller) {x,y}; C {x};
    D {y,z}; E {x}. A, B share a pair, C, E share one: 1/2 each; D alone: 1."""
    assert risks(homework_risk(TOY)) == [0.5, 0.5, 0.5, 1.0, 0.5]


def test_unicity_hand_checked():
    """With p above every trace's length the whole trace is drawn: A-D hold a point set no
    one else holds; E's single point (x, d1, 8h) is also A's, B's and C's: unicity 4/5.
    At p = 1 E is never unique, whatever the draw."""
    assert unicity(TOY, 10) == pytest.approx(0.8)
    for seed in range(5):
        assert unicity(TOY, 1, seed) <= 0.8


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uniqueness")
    raw = generate(tmp / "raw", SynthConfig(n_subscribers=700, days=7, seed=11))
    qa = ingest(raw["events"], raw["cells"], raw["bridge"], tmp / "ingested", KEY, units=raw["units"])
    return tmp / "ingested", qa


def test_ingest_reports_trace_uniqueness(ingested):
    """T-M8 on a 500-subscriber sample of generated records: reported (not asserted against a
    threshold) in qa.json, for the operator before deciding what to serve."""
    root, qa = ingested
    report = json.loads((root / "qa.json").read_text())["trace_uniqueness"]
    assert report == qa["trace_uniqueness"]
    assert report["subscribers"] == 500
    print("\nT-M8 raw traces (500 subscribers, 7 days, cells):", json.dumps(report))
    for k in (2, 4):
        r = report[f"location_attack_k{k}"]
        assert 0 < r["mean_risk"] <= 1 and 0 <= r["share_unique"] <= 1
    assert report["location_attack_k4"]["share_unique"] >= report["location_attack_k2"]["share_unique"]
    assert report["unicity_4_points"] >= 0 and report["homework_attack"]["mean_risk"] > 0
    # the report is the same as computing it directly from the sample
    assert uniqueness_report(sample_traces(root, 500)) == report
