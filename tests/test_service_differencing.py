"""The differencing guard: named attacks and random query sequences against an oracle (issue 7)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA
from safemicro.errors import SafemicroError
from safemicro.service.differencing import DifferencingGuard
from safemicro.service.differencing_blocks import independent_blocks
from safemicro.service.differencing_milp import smallest_group
from service_oracle import recoverable, small_group_determined


def _people(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "admin1": rng.choice(["north", "south"], n),
            "day": rng.integers(1, 61, n),
            "group": rng.choice(["idp", "refugee", "host"], n, p=[0.45, 0.45, 0.10]),
        }
    )


# -- named attacks ----------------------------------------------------------------------------


def test_overlapping_time_windows_are_refused():
    df = pl.DataFrame({"region": ["a"] * 60, "day": list(range(1, 31)) * 2})  # two people a day
    guard = DifferencingGuard(df, threshold=5)
    first = [{"region": {"in": ["a"]}, "day": {"between": [1, 20]}}]
    assert guard.check(first).ok
    guard.commit(first)
    # one day more isolates the two people of day 21
    v = guard.check([{"region": {"in": ["a"]}, "day": {"between": [1, 21]}}])
    assert not v.ok and v.kind == "small_group" and v.group_size == 2 and v.cell_index == 0
    # shifting the window: [2, 21] - [1, 20] = day21 - day1, not a group; allowed
    shifted = [{"region": {"in": ["a"]}, "day": {"between": [2, 21]}}]
    assert guard.check(shifted).ok
    guard.commit(shifted)
    # ... but then [2, 20] closes the loop: day 1 and day 21 both determined
    v = guard.check([{"region": {"in": ["a"]}, "day": {"between": [2, 20]}}])
    assert not v.ok and v.group_size == 2
    # a window of five days (ten people) more is fine
    assert guard.check([{"region": {"in": ["a"]}, "day": {"between": [1, 25]}}]).ok


def test_adding_one_category_is_refused():
    df = _people()
    guard = DifferencingGuard(df, threshold=10)
    base = {"admin1": {"in": ["north"]}, "group": {"in": ["idp", "refugee"]}}
    guard.commit([base])
    small = df.filter((pl.col("admin1") == "north") & (pl.col("group") == "host")).height
    assert 0 < small < 10 or small >= 10
    v = guard.check([{"admin1": {"in": ["north"]}, "group": {"in": ["idp", "refugee", "host"]}}])
    if small < 10:
        assert not v.ok and v.group_size == small
    else:
        assert v.ok


def test_geography_nesting_does_not_reveal_a_suppressed_unit():
    # admin1 "north" has three admin2 units; "n3" has 3 people and was suppressed
    df = pl.DataFrame(
        {
            "admin1": ["north"] * 43 + ["south"] * 30,
            "admin2": ["n1"] * 20 + ["n2"] * 20 + ["n3"] * 3 + ["s1"] * 30,
        }
    )
    guard = DifferencingGuard(df, threshold=10)
    admin2 = [{"admin2": {"in": ["n1"]}}, {"admin2": {"in": ["n2"]}}, {"admin2": {"in": ["s1"]}}]
    suppressed = [{"admin2": {"in": ["n3"]}}]
    assert guard.check(admin2, suppressed=suppressed).ok
    guard.commit(admin2, suppressed=suppressed)
    v = guard.check([{"admin1": {"in": ["north"]}}])
    assert not v.ok and v.kind in ("small_group", "suppressed_recoverable")
    # the national total gives the same away: n3 = total - n1 - n2 - s1
    assert not guard.check([{}]).ok


def test_colluding_analysts_share_one_ledger():
    """Analyst A asks for days 1-20, analyst B for days 1-21: one guard per dataset refuses B;
    a guard per analyst (what a per-user budget would give) would have let both through."""
    df = pl.DataFrame({"region": ["a"] * 60, "day": list(range(1, 31)) * 2})
    a_cells = [{"region": {"in": ["a"]}, "day": {"between": [1, 20]}}]
    b_cells = [{"region": {"in": ["a"]}, "day": {"between": [1, 21]}}]
    per_analyst = [DifferencingGuard(df, 5), DifferencingGuard(df, 5)]
    assert per_analyst[0].check(a_cells).ok and per_analyst[1].check(b_cells).ok
    shared = DifferencingGuard(df, 5)
    shared.commit(a_cells)  # analyst A
    assert not shared.check(b_cells).ok  # analyst B
    # the stored history replays to the same decision after a restart
    restarted = DifferencingGuard(df, 5)
    restarted.replay([{"released": a_cells, "suppressed": []}])
    assert not restarted.check(b_cells).ok


def test_small_cells_and_registered_suppressed_cells():
    df = _people()
    guard = DifferencingGuard(df, threshold=10)
    v = guard.check([{"admin1": {"in": ["north"]}}, {"day": {"eq": 3}}])
    n_day3 = df.filter(pl.col("day") == 3).height
    assert n_day3 < 10 and not v.ok and v.kind == "small_cell" and v.cell_index == 1
    # a large suppressed cell (secondary suppression) must stay hidden too
    guard.suppressed([{"group": {"in": ["idp"]}}])
    guard.commit([{"group": {"in": ["refugee"]}}, {"group": {"in": ["host"]}}])
    v = guard.check([{}])
    assert not v.ok and v.kind == "suppressed_recoverable"


def test_dates_and_bad_predicates():
    df = pl.DataFrame({"d": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 40) for i in range(400)], "x": ["a"] * 400})
    guard = DifferencingGuard(df, threshold=5)
    guard.commit([{"d": {"between": ["2024-01-01", "2024-01-20"]}}])
    v = guard.check([{"d": {"between": ["2024-01-01", "2024-01-21"]}}])
    assert v.ok  # ten records on the added day: not a small group
    with pytest.raises(SafemicroError, match="'nope'"):
        guard.check([{"nope": {"in": [1]}}])
    with pytest.raises(SafemicroError, match="unknown condition"):
        guard.check([{"x": {"like": "a%"}}])
    with pytest.raises(SafemicroError, match="does not fit"):
        guard.check([{"d": {"between": ["yesterday", "today"]}}])


# -- random query sequences against the oracle ------------------------------------------------


def _random_cell(draw, regions, days, groups):
    cell = {}
    if draw(st.booleans()):
        cell["admin1"] = {"in": draw(st.lists(st.sampled_from(regions), min_size=1, max_size=2, unique=True))}
    if draw(st.booleans()):
        lo = draw(st.integers(1, days))
        cell["day"] = {"between": [lo, draw(st.integers(lo, days))]}
    if draw(st.booleans()):
        cell["group"] = {"in": draw(st.lists(st.sampled_from(groups), min_size=1, max_size=3, unique=True))}
    return cell


@st.composite
def _scenarios(draw):
    n = draw(st.integers(20, 80))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    df = pl.DataFrame(
        {
            "admin1": rng.choice(["n", "s", "e"], n),
            "day": rng.integers(1, 9, n),
            "group": rng.choice(["idp", "ref", "host"], n, p=[0.5, 0.4, 0.1]),
        }
    )
    queries = draw(st.lists(st.lists(st.builds(lambda: None), min_size=1, max_size=3), min_size=1, max_size=6))
    cells = [[_random_cell(draw, ["n", "s", "e"], 8, ["idp", "ref", "host"]) for _ in q] for q in queries]
    return df, cells, draw(st.integers(2, 8))


@pytest.mark.parametrize("over_space", [False, True])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_scenarios())
def test_random_query_sequences_match_the_oracle(over_space, scenario):
    """The guard accepts a request only when, with everything accepted before, nothing
    small is determined, and refuses only when something is (independent MILP oracle).
    ``over_space``: with a value space, unions of its regions holding 0..threshold-1 records
    and regions where nobody is proved empty count too (MILP and LP over every point of the
    space written out; the guard never enumerates it)."""
    from safemicro.service.differencing_space import ValueSpace
    from service_oracle import empty_regions_bounded

    df, queries, threshold = scenario
    grid = _space_grid() if over_space else None
    space = ValueSpace.build(SPACE_VALUES, mass=df.height) if over_space else None
    guard = DifferencingGuard(df, threshold, space=space)
    released: list[dict] = []
    for cells in queries:
        v = guard.check(cells)
        candidate = released + cells
        sizes = [df.filter(_expr(c)).height for c in cells]
        small_cell = any(0 < s < threshold for s in sizes)
        oracle = small_group_determined(candidate, df, threshold, grid=grid)
        bounded = empty_regions_bounded(candidate, df, grid) if over_space else []
        if v.ok:
            # accepted: nothing small (or empty) is determined by everything released so far
            assert not small_cell and oracle is None and bounded == [], (oracle, bounded)
            guard.commit(cells)
            released = candidate
        else:
            # refused: the oracle agrees that something small would be disclosed
            assert small_cell or oracle is not None or bounded, v
            if v.group_size and not small_cell:
                assert v.group_size == oracle


def _expr(cell: dict) -> pl.Expr:
    parts = [pl.lit(True)]
    for col, cond in cell.items():
        ((op, arg),) = cond.items()
        parts.append(pl.col(col).is_in(arg) if op == "in" else pl.col(col).is_between(arg[0], arg[1]))
    return pl.all_horizontal(parts)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_scenarios())
def test_suppressed_cells_never_become_recoverable(scenario):
    df, queries, threshold = scenario
    guard = DifferencingGuard(df, threshold)
    hidden = [q[0] for q in queries[:1]]
    guard.suppressed(hidden)
    released: list[dict] = []
    for cells in queries[1:]:
        if guard.check(cells).ok:
            guard.commit(cells)
            released += cells
            assert not recoverable(released, df, hidden[0]) or df.filter(_expr(hidden[0])).height == 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), atoms=st.integers(3, 14), dims=st.integers(1, 6), threshold=st.integers(2, 12))
def test_zero_one_search_by_enumeration_and_by_milp_agree(seed, atoms, dims, threshold):
    import safemicro.service.differencing as d

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, atoms)
    gen = (rng.random((atoms, dims)) < 0.5).astype(float)
    gen = gen[:, np.abs(gen).sum(axis=0) > 0]
    if gen.shape[1] == 0:
        return
    q, r = np.linalg.qr(gen)
    keep = np.abs(np.diag(r)) > 1e-9
    basis = q[:, keep] @ rng.normal(size=(int(keep.sum()), int(keep.sum())))  # any basis of the span
    # the MILP takes vectors spanning the space (the guard's released cells; here the basis)
    exact = lambda rows, block: smallest_group(basis.T, sizes, rows, threshold)  # noqa: E731
    by_enumeration = d._zero_one_search(basis, sizes, threshold, exact)
    old = d._ENUMERATE_MAX
    d._ENUMERATE_MAX = 0
    try:
        by_milp = d._zero_one_search(basis, sizes, threshold, exact)
    finally:
        d._ENUMERATE_MAX = old
    assert by_enumeration == by_milp
    # brute force over all 0/1 vectors of the atoms
    best = None
    proj = q[:, keep] @ q[:, keep].T
    for bits in range(1, 2**atoms):
        z = np.array([(bits >> i) & 1 for i in range(atoms)], dtype=float)
        if np.abs(proj @ z - z).max() < 1e-8:
            size = int(z @ sizes)
            if 0 < size < threshold and (best is None or size < best):
                best = size
    assert by_enumeration == best


def test_units_with_several_records_are_counted_once():
    # 12 households, 4 members each; 2 households also have a member in "host"
    rows = []
    for h in range(12):
        for m in range(4):
            rows.append({"hh": h, "group": "idp" if m < 3 or h >= 2 else "host", "region": "a"})
    df = pl.DataFrame(rows)
    by_record = DifferencingGuard(df.drop("hh"), threshold=5)
    by_unit = DifferencingGuard(df, threshold=5, unit="hh")
    idp = [{"group": {"in": ["idp"]}}]
    everyone = [{"region": {"in": ["a"]}}]
    # 46 idp records but 12 households; 48 records in the region, 12 households
    assert by_record.check(idp).ok and by_unit.check(idp).ok
    by_record.commit(idp)
    by_unit.commit(idp)
    # records: region - idp = the 2 host records (small group); units: 12 - 12 = 0 households
    assert not by_record.check(everyone).ok
    assert by_unit.check(everyone).ok
    # the host group itself: 2 households, below the threshold of 5
    v = by_unit.check([{"group": {"in": ["host"]}}])
    assert not v.ok and v.kind == "small_cell" and v.group_size == 2
    with pytest.raises(SafemicroError, match="unit"):
        DifferencingGuard(df, threshold=5, unit="nope")


@st.composite
def _tabulations(draw):
    """Records and a sequence of tables (dimensions, and a filter on day) an analyst asks for."""
    n = draw(st.integers(30, 120))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    df = pl.DataFrame(
        {
            "hh": rng.integers(0, max(5, n // 2), n),
            "admin1": rng.choice(["n", "s"], n, p=[0.7, 0.3]),
            "day": rng.integers(1, 7, n),
            "group": rng.choice(["idp", "ref", "host"], n, p=[0.5, 0.35, 0.15]),
        }
    )
    tables = []
    for _ in range(draw(st.integers(1, 5))):
        dims = draw(st.lists(st.sampled_from(["admin1", "group"]), min_size=1, max_size=2, unique=True))
        lo = draw(st.integers(1, 6))
        tables.append((dims, [lo, draw(st.integers(lo, 6))]))
    return df, tables, draw(st.integers(3, 8)), draw(st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_tabulations())
def test_protected_tables_through_the_guard_never_disclose(scenario):
    """The library pipeline the server runs: tabulate, protect (primary + secondary), ask the
    guard with the released and suppressed cells, commit. Afterwards no suppressed cell is a
    linear combination of released ones and no group of 1..threshold-1 units is determined
    (independent MILP / least-squares oracle)."""
    from safemicro.service.protection import ProtectionPolicy, cell_statistics, protect

    df, tables, threshold, by_unit = scenario
    unit = "hh" if by_unit else None
    guard = DifferencingGuard(df if by_unit else df.drop("hh"), threshold, unit=unit)
    released: list[dict] = []
    hidden: list[dict] = []
    for dims, window in tables:
        part = df.filter(pl.col("day").is_between(*window))
        if part.height == 0:
            continue
        cells = cell_statistics(part, dims, unit=unit, margins=True)
        table = protect(cells, dims, "count", ProtectionPolicy(threshold=threshold))
        rel, sup = [], []
        for row in table.iter_rows(named=True):
            pred = {"day": {"between": window}}
            pred.update({d: {"in": [row[d]]} for d in dims if row[d] is not None})
            (rel if row["status"] == "released" else sup).append(pred)
        if guard.check(rel, suppressed=sup).ok:
            guard.commit(rel, suppressed=sup)
            released += rel
            hidden += sup
    if not released:
        return
    assert small_group_determined(released, df, threshold, unit) is None
    for cell in hidden:
        size = membership_size(df, cell, unit)
        assert size == 0 or not recoverable(released, df, cell, unit), cell


def membership_size(df: pl.DataFrame, cell: dict, unit: str | None) -> int:
    part = df.filter(_expr(cell))
    return part.get_column(unit).n_unique() if unit else part.height


def test_narrowing_a_suppressed_cell_across_queries_is_refused_when_asked():
    # admin2 n3 (3 people) is suppressed, n4 (30) hidden with it; the region total is public
    df = pl.DataFrame(
        {
            "admin2": ["n1"] * 20 + ["n2"] * 20 + ["n3"] * 3 + ["n4"] * 30,
            "group": ["idp"] * 40 + ["ref"] * 3 + ["idp"] * 22 + ["ref"] * 8,
        }
    )
    released = [{"admin2": {"in": ["n1"]}}, {"admin2": {"in": ["n2"]}}, {}]
    hidden = [{"admin2": {"in": ["n3"]}}, {"admin2": {"in": ["n4"]}}]
    # n4's 22 idp: then n3 + (n4's refugees) = 11, so n3 lies in [0, 11] (not determined)
    later = [{"admin2": {"in": ["n4"]}, "group": {"in": ["idp"]}}]
    plain = DifferencingGuard(df, threshold=10)
    strict = DifferencingGuard(df, threshold=10, protection_width=12)
    loose = DifferencingGuard(df, threshold=10, protection_width=10)
    for g in (plain, strict, loose):
        assert g.check(released, suppressed=hidden).ok
        g.commit(released, suppressed=hidden)
    assert plain.check(later).ok
    v = strict.check(later)
    assert not v.ok and v.kind == "suppressed_narrowed" and "width 11" in v.reason
    assert loose.check(later).ok
    with pytest.raises(SafemicroError, match="protection_width"):
        DifferencingGuard(df, threshold=10, protection_width=0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_tabulations(), st.integers(1, 6))
def test_with_a_protection_width_no_suppressed_interval_narrows_below_it(scenario, width):
    """Independent LP over the oracle's atoms: after every accepted release, each suppressed
    cell's count can still move over at least ``width``."""
    from scipy.optimize import linprog

    from safemicro.service.protection import ProtectionPolicy, cell_statistics, protect
    from service_oracle import _atoms, membership

    df, tables, threshold, _ = scenario
    df = df.drop("hh")
    guard = DifferencingGuard(df, threshold, protection_width=width)
    released: list[dict] = []
    hidden: list[dict] = []
    for dims, window in tables:
        part = df.filter(pl.col("day").is_between(*window))
        if part.height == 0:
            continue
        table = protect(cell_statistics(part, dims, margins=True), dims, "count", ProtectionPolicy(threshold=threshold))
        rel, sup = [], []
        for row in table.iter_rows(named=True):
            pred = {"day": {"between": window}}
            pred.update({d: {"in": [row[d]]} for d in dims if row[d] is not None})
            (rel if row["status"] == "released" else sup).append(pred)
        if guard.check(rel, suppressed=sup).ok:
            guard.commit(rel, suppressed=sup)
            released += rel
            hidden += sup
    if not released or not hidden:
        return
    atoms, sizes = _atoms(membership(df, released + hidden))
    m = atoms[: len(released)]
    b = m @ sizes
    for k in range(len(hidden)):
        c = atoms[len(released) + k]
        if c @ sizes == 0:
            continue
        lo = linprog(c, A_eq=m, b_eq=b, bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=m, b_eq=b, bounds=(0, None), method="highs")
        top = np.inf if hi.status != 0 else -hi.fun
        assert top - lo.fun >= width - 1e-6


def test_zero_one_search_splits_independent_blocks():
    """Directions that share no atom are searched block by block (enumeration per block,
    no MILP for 24 directions); the answer is the smallest block's smallest group."""
    import safemicro.service.differencing as d

    rng = np.random.default_rng(5)
    blocks, sizes = [], []
    for b in range(8):  # 8 blocks of 3 directions over 5 atoms each
        gen = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=float)
        blocks.append(gen)
        sizes.append(np.full(5, 4 + b))
    z = np.zeros((40, 24))
    for b, gen in enumerate(blocks):
        z[5 * b : 5 * b + 5, 3 * b : 3 * b + 3] = gen
    z = z @ rng.normal(size=(24, 24))  # any basis of the span mixes the blocks
    sizes = np.concatenate(sizes)
    assert len(independent_blocks(np.eye(24))) == 24
    # in block 0 (atoms of 4 records) the smallest 0/1 vectors are two atoms: 8 records
    assert d._zero_one_search(z, sizes, threshold=10) == 8
    assert d._zero_one_search(z, sizes, threshold=8) is None


def test_cleared_blocks_are_skipped_only_while_unchanged():
    """A block searched and found clear is skipped later only with the same records and
    dimension; a grown block is searched again and its small group found."""
    import safemicro.service.differencing as d

    sizes = np.full(6, 4)
    z = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 0], [0, 0]], dtype=float)  # atoms 0-2: pairs
    key = lambda rows: bytes(np.asarray(rows, dtype=np.int64))  # noqa: E731 - atom ids as records
    cleared: set = set()
    assert d._zero_one_search(z, sizes, 8, key=key, cleared=cleared) is None  # pairs weigh 8
    assert cleared == {(key(np.array([0, 1, 2])), 2)}
    grown = np.hstack([z, np.array([[0], [0], [0], [1], [0], [0]], dtype=float)])  # atom 3 alone
    assert d._zero_one_search(grown, sizes, 8, key=key, skip=frozenset(cleared)) == 4
    assert d._zero_one_search(z, sizes, 9, key=key, skip=frozenset(cleared)) is None  # skipped
    assert d._zero_one_search(z, sizes, 9, key=key) == 8  # searched: found


def test_coded_membership_agrees_with_the_expressions():
    """The guard's membership by integer codes selects exactly what the Polars predicate
    expressions select, and leaves other conditions to them."""
    from safemicro.service.differencing import predicate_mask
    from safemicro.service.fastmask import CodedRecords

    rng = np.random.default_rng(3)
    records = pl.DataFrame(
        {
            "a": rng.choice(["x", "y", "z"], 500),
            "b": rng.choice(["1", "2", "10", "é"], 500),
            "n": rng.integers(0, 9, 500),
        }
    )
    coded = CodedRecords(records)
    preds = []
    for _ in range(60):
        p = {}
        if rng.random() < 0.8:
            p["a"] = {"in": list(rng.choice(["x", "y", "z", "w"], rng.integers(0, 4), replace=False))}
        if rng.random() < 0.8:
            p["b"] = {"in": list(rng.choice(["1", "2", "10", "é", "3"], rng.integers(1, 5), replace=False))}
        preds.append(p)
    assert np.array_equal(coded.masks(preds), predicate_mask(records, preds))
    assert coded.masks([{"n": {"in": ["1"]}}]) is None  # not a String column
    assert coded.masks([{"a": {"eq": "x"}}]) is None
    assert coded.masks([{"zz": {"in": ["x"]}}]) is None  # unknown column: the general path names it


def test_a_group_hidden_from_the_solver_presolve_is_found():
    """A real ledger (the example survey under bench/bench_service_mix.py: 13 accepted
    requests, then a crosstab) where the new cells determine 8 people in 4 atoms (λ = ±1).
    The search used to solve a MILP over a dense fractional basis of the determined space,
    which HiGHS's presolve declared infeasible: the release was accepted. The witness (the
    8 people, found offline by the oracle's MILP over the atoms) is checked here by least
    squares on the membership matrix, computed with Polars."""
    import json

    folder = DATA / "service_ledger"
    records = pl.read_parquet(folder / "survey_units.parquet")  # one row per person
    case = json.loads((folder / "presolve_leak.json").read_text())
    guard = DifferencingGuard(records, 10, unit="_unit")
    guard.replay(case["history"])
    query = case["query"]
    cells = [c for r in case["history"] for c in r["released"]] + query["released"]
    mat = records.select([_expr(c).alias(f"c{i}") for i, c in enumerate(cells)]).to_numpy().T.astype(float)
    group = records.get_column("_unit").is_in(case["witness"]).to_numpy().astype(float)
    coef, *_ = np.linalg.lstsq(mat.T, group, rcond=None)
    assert group.sum() == 8 and np.abs(mat.T @ coef - group).max() < 1e-9  # their count is determined
    v = guard.check(query["released"], suppressed=query["suppressed"], locate=False)  # as the node asks
    assert not v.ok and v.kind == "small_group" and 1 <= v.group_size < 10  # the first group found


# -- the value space of the random sequences (over_space): empty regions protected as small ---

SPACE_VALUES = {"admin1": ["n", "s", "e"], "day": list(range(1, 9)), "group": ["idp", "ref", "host"]}


def _space_grid() -> pl.DataFrame:
    """Every point of the value space, one row each (the oracle's view; the guard never
    enumerates it)."""
    import itertools

    return pl.DataFrame(
        [dict(zip(SPACE_VALUES, p)) for p in itertools.product(*SPACE_VALUES.values())],
        schema={"admin1": pl.String, "day": pl.Int64, "group": pl.String},
    )
