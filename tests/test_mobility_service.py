"""Protected mobility aggregates through the aggregate service, attacked over HTTP.

A generated run (4 000 SIMs, 14 days, a displacement from two admin3 units) goes through
ingest, features and the reference table; one node started on 127.0.0.1 serves it and each
test runs one of the study's attacks (section 8.6, T-M1..T-M6, T-M10) against it, after the
earlier tests' releases (the ledger is shared, as in production). Each is refused or
neutralised; tests/service_oracle.py (least squares and MILP over the records,
independent of the service code) checks that no group of 0..15 subscribers is determined
by everything the node released, over the value space (regions where nobody is count as
possible: a small cell hidden with an empty partner is not isolated).
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from pydantic import ValidationError

from mobility_support import build_run, days, write_service
from safemicro.mobility.pipeline import Windows
from safemicro.mobility.reference import dataset_config
from safemicro.mobility.synth import Scenario, SynthConfig
from safemicro.service.config import DatasetConfig
from service_oracle import empty_regions_proved, small_group_determined, table_recoverable, value_space
from service_support import Server, post_query, token

T = 16  # the mobility threshold: cells of 1..15 subscribers are never released


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = SynthConfig(
        n_subscribers=4000,
        days=14,
        seed=3,
        scenario=Scenario(origins=["R1D1C1", "R1D1C2"], day=7, spread_days=2, outage_days=1),
    )
    return build_run(
        tmp_path_factory.mktemp("mobility_run"), cfg, Windows(days(cfg.start, 0, 7), days(cfg.start, 9, 14))
    )


class Analyst:
    """Queries a started node and keeps every released cell as a predicate for the oracle."""

    def __init__(self, url: str, tok: str, records: pl.DataFrame) -> None:
        self.url, self.tok, self.records = url, tok, records
        self.released: list[dict] = []

    def ask(self, body: dict) -> tuple[int, pl.DataFrame | None]:
        r = post_query(self.url, self.tok, body)
        if r.status_code != 200:
            return r.status_code, None
        payload = r.json()
        cells = pl.DataFrame(payload["cells"])
        by = body.get("by", [])
        for cell in payload["cells"]:
            if cell["status"] != "released" or payload["mode"] != "sdc":
                continue
            pred = {k: {"in": list(v)} for k, v in body.get("filters", {}).items()}
            pred.update({d: {"in": [cell[d]]} for d in by if cell[d] is not None})
            self.released.append(pred or {"home0": {"in": self.records["home0"].unique().to_list()}})
        return 200, cells

    def determined(self) -> int | None:
        """The smallest union of regions of the value space (empty ones too: the analyst
        does not know where nobody is) of 1..15 subscribers determined by every release
        (empty regions relaxed to [0, 1]: a stronger check), after asserting that no empty
        region is proved empty."""
        cols = sorted({k for p in self.released for k in p})
        records, grid = self.records.select(cols), self.space(cols)
        assert not empty_regions_proved(self.released, records, grid)
        return small_group_determined(self.released, records, T, grid=grid, relax_empty=True)

    def space(self, cols: list[str]) -> pl.DataFrame:
        """The value space over ``cols``: an admin unit lies in its parents (the pairs the data
        shows), categories and bins take their declared values, others the values served."""
        declared = dataset_config(self.records, "reference.parquet")["dimensions"]
        groups = []
        for chain in (["home0", "home0_admin2", "home0_admin1"], ["home1", "home1_admin2", "home1_admin1"]):
            have = [c for c in chain if c in self.records.columns]
            groups.append(self.records.select(have).unique())
        linked = {c for g in groups for c in g.columns}
        for c in cols:
            if c not in linked:
                values = declared[c].get("values") or self.records[c].unique().to_list()
                groups.append(pl.DataFrame({c: values}, schema={c: self.records.schema[c]}))
        return value_space(self.released, groups)


@pytest.fixture(scope="module")
def analyst(run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mobility_node")
    srv = Server(write_service(folder, run["node"]["reference"])).start()
    try:
        a = Analyst(srv.url, token(folder), run["reference"])
        a.folder = folder
        yield a
    finally:
        srv.stop()


def _small_difference(ref: pl.DataFrame, wide: pl.Expr, narrow_of: callable, columns: list[str]):
    """A (column, unit) whose wide count is >= T while wide minus narrow is 1..T-1."""
    for col in columns:
        for unit in sorted(ref[col].unique()):
            if unit == "none":
                continue
            a = ref.filter(wide(col, unit)).height
            b = ref.filter(wide(col, unit) & narrow_of(col, unit)).height
            if a >= T and b >= T and 0 < a - b < T:
                return col, unit, a - b
    return None


def test_unique_visitors_by_difference(run, analyst):
    """T-M1: presence(A) minus present-and-at-home(A) would count A's few visitors."""
    ref = run["reference"]
    weeks = [c for c in ref.columns if c.startswith("wk_")]
    found = _small_difference(ref, lambda c, u: pl.col(c) == u, lambda c, u: pl.col("home0") == u, weeks)
    assert found, "the fixture has a unit with a few visitors"
    week, unit, visitors = found
    first = analyst.ask({"dataset": "mobility", "kind": "count", "filters": {week: [unit]}})
    second = analyst.ask({"dataset": "mobility", "kind": "count", "filters": {week: [unit], "home0": [unit]}})
    both = [c for s, c in (first, second) if s == 200 and c["status"].to_list() == ["released"]]
    assert first[0] in (200, 409) and second[0] in (200, 409)
    assert len(both) < 2, f"{visitors} visitors derivable by difference"
    assert analyst.determined() is None


def test_overlapping_windows(run, analyst):
    """T-M2: no free windows or days; week W against W-and-W' is caught by the ledger."""
    time = {"dataset": "mobility", "kind": "count", "time": {"start": "2024-01-01", "end": "2024-01-08"}}
    assert analyst.ask(time)[0] == 422
    assert analyst.ask({"dataset": "mobility", "kind": "count", "by": ["day_20240103"]})[0] == 422
    ref = run["reference"]
    w1, w2 = sorted(c for c in ref.columns if c.startswith("wk_"))[:2]
    found = _small_difference(ref, lambda c, u: pl.col(c) == u, lambda c, u: pl.col(w2) == u, [w1])
    assert found
    _, unit, movers = found
    first = analyst.ask({"dataset": "mobility", "kind": "count", "filters": {w1: [unit]}})
    second = analyst.ask({"dataset": "mobility", "kind": "count", "filters": {w1: [unit], w2: [unit]}})
    both = [c for s, c in (first, second) if s == 200 and c["status"].to_list() == ["released"]]
    assert len(both) < 2, f"{movers} subscribers derivable by difference"
    assert analyst.determined() is None


def test_sparse_od_table_on_a_fresh_node(run, tmp_path):
    """The home-to-home OD table (admin2 × admin1) is sparse: most pairs hold nobody. Its
    secondary suppression hides small flows behind empty cells, which the analyst cannot
    tell from small ones — so a fresh node answers it (the ledger refused it while it took
    empty cells as known to be empty), with every small and empty flow suppressed, none
    recoverable from the margins, and nothing of 0..15 subscribers determined."""
    srv = Server(write_service(tmp_path, run["node"]["reference"])).start()
    try:
        fresh = Analyst(srv.url, token(tmp_path), run["reference"])
        dims = ["home0_admin2", "home1_admin1"]
        status, od = fresh.ask({"dataset": "mobility", "kind": "crosstab", "by": dims})
        assert status == 200
    finally:
        srv.stop()
    truth = run["reference"].group_by(dims).len()
    inner = od.filter(pl.col(dims[0]).is_not_null() & pl.col(dims[1]).is_not_null())
    inner = inner.join(truth, on=dims, how="left").with_columns(pl.col("len").fill_null(0))
    assert (inner["len"] == 0).sum() > inner.height // 2, "premise: a sparse table"
    assert (inner.filter(pl.col("len") < T)["status"] == "suppressed").all()
    # the pattern: some row hides a small flow together with empty cells only as partners
    hidden = inner.filter(pl.col("status") == "suppressed")
    rows = hidden.group_by(dims[0]).agg(
        (pl.col("len") > 0).sum().alias("someone"), (pl.col("len") == 0).sum().alias("nobody")
    )
    assert rows.filter((pl.col("someone") == 1) & (pl.col("nobody") > 0)).height
    assert table_recoverable(od, dims) == []
    assert fresh.determined() is None


def test_inflow_minus_released_flows(analyst):
    """T-M3: in/outflows are the margins of the protected OD table; a separate inflow query
    cannot undo its suppression."""
    dims = ["home0_admin2", "home1_admin1"]
    status, od = analyst.ask({"dataset": "mobility", "kind": "crosstab", "by": dims})
    assert status == 200
    if status == 200:
        assert (od["status"] == "suppressed").any()
        assert table_recoverable(od, dims) == []
        status, inflow = analyst.ask({"dataset": "mobility", "kind": "count", "by": ["home1_admin1"]})
        assert status in (200, 409)
        if status == 200:  # equal to the protected table's own column margins where both released
            margins = od.filter(pl.col("home0_admin2").is_null() & pl.col("home1_admin1").is_not_null())
            both = margins.join(inflow, on="home1_admin1").filter(
                (pl.col("status") == "released") & (pl.col("status_right") == "released")
            )
            assert both.height and (both["value"] == both["value_right"]).all()
    assert analyst.determined() is None


def test_admin2_minus_its_admin3_cells(run, analyst):
    """T-M4: an admin2 count minus the released admin3 counts of its units."""
    ref = run["reference"]
    small = ref.group_by("home0_admin2", "home0").len().filter(pl.col("len") < T)
    assert small.height, "the fixture has small admin3 homes"
    parent = small["home0_admin2"][0]
    assert analyst.ask({"dataset": "mobility", "kind": "count", "by": ["home0_admin2"]})[0] == 200
    status, cells = analyst.ask(
        {"dataset": "mobility", "kind": "count", "by": ["home0"], "filters": {"home0_admin2": [parent]}}
    )
    if status == 200:
        assert (cells.filter(pl.col("home0") == small["home0"][0])["status"] == "suppressed").all()
    assert analyst.determined() is None


def test_histogram_top_bin(run, analyst):
    """T-M5: metric distributions are thresholded per bin (the open top bin included)."""
    ref = run["reference"]
    dim, small = next(
        (d, small)
        for d in ("rog_bin", "degree_bin", "night_bin")
        if (small := [b for b, n in ref.group_by(d).len().iter_rows() if 0 < n < T])
    )
    status, cells = analyst.ask({"dataset": "mobility", "kind": "count", "by": [dim]})
    assert status == 200
    assert (cells.filter(pl.col(dim).is_in(small))["status"] == "suppressed").all()
    assert analyst.determined() is None


def test_status_against_home_counts(run, analyst):
    """T-M6: displaced counts by status against home counts of the same units."""
    status, table = analyst.ask({"dataset": "mobility", "kind": "crosstab", "by": ["home0_admin2", "displacement"]})
    assert status == 200
    truth = run["reference"].group_by("home0_admin2", "displacement").len()
    small = truth.filter(pl.col("len") < T).join(table, on=["home0_admin2", "displacement"])
    assert small.height and (small["status"] == "suppressed").all()
    assert analyst.ask({"dataset": "mobility", "kind": "count", "by": ["home0_admin2"]})[0] in (200, 409)
    assert analyst.determined() is None


def test_trajectory_queries_only_with_dp(analyst):
    """Daily trip matrices and subsets by an earlier query are refused; the DP dataset answers
    a daily matrix with noise."""
    daily = {"kind": "crosstab", "by": ["day_20240103", "day_20240104"]}
    assert analyst.ask({"dataset": "mobility", **daily})[0] == 422
    subset = {"dataset": "mobility", "kind": "count", "by": ["home0"], "subset": "f142c8ed86cd28524d27746507befe88"}
    assert analyst.ask(subset)[0] == 422
    r = post_query(analyst.url, analyst.tok, {"dataset": "mobility_dp", **daily})
    assert r.status_code == 200 and r.json()["mode"] == "dp"
    inner = [c for c in r.json()["cells"] if c["day_20240103"] is not None and c["day_20240104"] is not None]
    assert inner and all(c["noise_scale"] > 0 for c in inner)


def test_no_raw_number_in_audit_or_log(run, analyst):
    """T-M10 on the node side: no raw number in the audit log or the server log."""
    analyst.ask({"dataset": "mobility", "kind": "count", "by": ["home0_admin2"]})
    raw = run["truth"]["msisdn"].cast(pl.String).to_list()
    logs = list(analyst.folder.glob("audit*.jsonl")) + list(analyst.folder.glob("server-*.log"))
    assert logs
    for p in logs:
        text = p.read_text()
        assert not any(n in text for n in raw), p


def test_mobility_dataset_kind():
    """Threshold 16 and width 5 by default; daily columns and magnitudes refused without DP."""
    base = {"kind": "mobility", "file": "ref.parquet", "unit": "subscriber"}
    ds = DatasetConfig.model_validate({**base, "dimensions": {"home0": {"kind": "admin", "column": "home0"}}})
    assert (ds.policy.threshold, ds.policy.ledger_protection_width) == (16, 5.0)
    assert ds.queries == ["count", "crosstab"]
    daily = {"d": {"kind": "admin", "column": "day_20240103"}}
    with pytest.raises(ValidationError, match="only with DP"):
        DatasetConfig.model_validate({**base, "dimensions": daily, "queries": ["count"]})
    ok = DatasetConfig.model_validate({**base, "dimensions": daily, "queries": ["count"], "dp": {"enabled": True}})
    assert ok.dp.enabled
    with pytest.raises(ValidationError, match="counts and crosstabs only"):
        DatasetConfig.model_validate(
            {**base, "dimensions": daily, "queries": ["count", "sum"], "dp": {"enabled": True}}
        )
    with pytest.raises(ValidationError, match="needs 'unit'"):
        DatasetConfig.model_validate({"kind": "mobility", "file": "r.parquet", "dimensions": daily})
    json.dumps(ds.model_dump(mode="json"))


def test_dp_flows_calibrated_and_cached(run, analyst):
    """T-M9: the home-to-home OD counts (admin2) at ε = 0.5 have noise sd √2·2 (±5 %, 30 draws of the whole
    table: tens of thousands of noisy cells), a true zero rarely exceeds 16, and the same DP
    query twice is the same answer at one spend."""
    import math

    import httpx
    import numpy as np

    from safemicro.service.dp import noisy_counts

    ref = run["reference"]
    w1, w2 = "home0_admin2", "home1_admin2"
    grid = pl.DataFrame({w1: sorted(set(ref[w1]))}).join(pl.DataFrame({w2: sorted(set(ref[w2]))}), how="cross")
    counts = grid.join(ref.group_by(w1, w2).len(), on=[w1, w2], how="left")["len"].fill_null(0).to_numpy()
    reps = 30
    draws = noisy_counts(np.tile(counts, reps), 0.5).values.reshape(reps, -1)
    sd = float((draws - counts).std())
    assert abs(sd / (math.sqrt(2) * 2) - 1) < 0.05, sd
    zeros = counts == 0
    assert (draws[:, zeros] > 16).sum() <= 2.2e-4 * zeros.sum() * reps * 3

    def spent() -> float:
        r = httpx.get(f"{analyst.url}/v1/budget/mobility_dp", headers={"Authorization": f"Bearer {analyst.tok}"})
        return r.json()["analyst"]["spent"]

    body = {"dataset": "mobility_dp", "kind": "crosstab", "by": [w1, w2]}
    before = spent()
    first, second = post_query(analyst.url, analyst.tok, body), post_query(analyst.url, analyst.tok, body)
    assert first.status_code == second.status_code == 200
    assert first.json()["cells"] == second.json()["cells"]
    assert spent() == pytest.approx(before + 0.5)
