"""Property tests through the real server: random query sequences from hypothesis.

One server and one ledger for the whole module, so every example adds to the history the
next ones are checked against. After each query the oracle recomputes, from the records,
the true count of every released cell (never 1..threshold-1) and, with a linear program
over the value space (one variable per possible combination of all dimensions — a
district lies in its province — x >= 0, empty combinations included: the analyst does not
know where nobody is), the smallest and largest value each suppressed cell can take given
*every* cell released so far: a suppressed cell, empty or not, is never pinned down, and no
region where nobody is can be proved empty (its largest possible count stays above 0).
Also: DP budgets hold under 20 concurrent clients.
"""

from __future__ import annotations

import itertools
import threading

import httpx
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service_support import Server, displacement_records, post_query, token, write_config

T = 10
DIMS = ["province", "district", "month", "group", "sex"]
VALUES = {
    "province": ["P1", "P2"],
    "district": ["D11", "D12", "D13", "D21", "D22"],
    "month": ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"],
    "group": ["refugee", "idp", "host", "returnee"],
    "sex": ["f", "m"],
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("props")
    cfg = write_config(folder, f"duckdb:///{folder / 'state.duckdb'}", dp_budget=(1.5, 4.0))
    s = Server(cfg).start()
    yield s, folder, token(folder)
    s.stop()


class Oracle:
    """Atoms of the records and every released / suppressed count cell seen so far."""

    def __init__(self) -> None:
        people = displacement_records().with_columns(month=pl.col("arrival").str.slice(0, 7), group=pl.col("status"))
        # the value space: every combination of the declared values, a district in its province
        points = [
            dict(zip(DIMS, (f"P{d[1]}", d, m, g, x)))
            for d, m, g, x in itertools.product(VALUES["district"], VALUES["month"], VALUES["group"], VALUES["sex"])
        ]
        atoms = pl.DataFrame(points).join(people.group_by(DIMS).len(), on=DIMS, how="left").fill_null(0).sort(DIMS)
        self.atoms = atoms
        self.sizes = atoms["len"].to_numpy().astype(float)
        self.people = people.select(DIMS)
        self.predicates: list[dict] = []  # released cells as predicates over the records
        self.rows: list[np.ndarray] = []
        self.values: list[float] = []
        self.suppressed: list[tuple[np.ndarray, dict]] = []
        self.empty_checked = 0  # empty regions covered by released cells and found not bounded

    def vector(self, where: dict[str, list[str]]) -> np.ndarray:
        if not where:
            return np.ones(self.atoms.height)
        mask = pl.all_horizontal([pl.col(d).is_in(v) for d, v in where.items()])
        return self.atoms.select(mask.alias("m"))["m"].to_numpy().astype(float)

    def add(self, query: dict, cells: list[dict]) -> None:
        base = dict(query.get("filters", {}))
        if "time" in query:
            lo, hi = query["time"]["start"], query["time"]["end"]
            months = [m for m in VALUES["month"] if lo <= m <= hi]
            base["month"] = sorted(set(months) & set(base.get("month", months)))
        for cell in cells:
            where = dict(base)
            for d in query.get("by", []):
                if cell[d] is not None:
                    where[d] = sorted(set(where.get(d, VALUES[d])) & {cell[d]})
            vec = self.vector(where)
            true = float(vec @ self.sizes)
            if cell["status"] == "released":
                assert true == 0 or true >= T, f"released cell of {true:g} people: {cell}"
                assert cell["value"] == true
                self.rows.append(vec)
                self.values.append(true)
                self.predicates.append({d: {"in": list(v)} for d, v in where.items()})
            else:
                assert cell["value"] is None
                self.suppressed.append((vec, cell))

    def check_unrecoverable(self, limit: int = 12) -> None:
        """No suppressed cell is determined by the released ones (LP min < max)."""
        from scipy.optimize import linprog

        if not self.rows or not self.suppressed:
            return
        a = np.array(self.rows)
        b = np.array(self.values)
        # the newest suppressed cells first, then a spread over the older ones
        picks = self.suppressed[-limit:]
        for vec, cell in picks:  # empty suppressed cells too: empty looks like small
            lo = linprog(vec, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
            hi = linprog(-vec, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
            assert lo.status == 0, "released cells are inconsistent with the records"
            top = np.inf if hi.status == 3 else -hi.fun
            assert top - lo.fun > 0.5, f"suppressed cell recoverable from released cells: {cell}"

    def check_no_empty_region_bounded(self) -> None:
        """No region of the value space where nobody is (points no released cell tells
        apart) is proved empty by the released cells: its largest count (LP) stays above 0."""
        from scipy.optimize import linprog

        if not self.rows:
            return
        a = np.array(self.rows)
        b = np.array(self.values)
        signature, region = np.unique(a.T, axis=0, return_inverse=True)
        region = region.ravel()
        for r in range(len(signature)):
            inside = region == r
            if not signature[r].any() or self.sizes[inside].sum() > 0:
                continue
            hi = linprog(-inside.astype(float), A_eq=a, b_eq=b, bounds=(0, None), method="highs")
            top = np.inf if hi.status == 3 else -hi.fun
            assert top > 1e-6, f"an empty region proved empty: {self.atoms.filter(pl.Series(inside)).to_dicts()[:3]}"
            self.empty_checked += 1


ORACLE = Oracle()


@st.composite
def queries(draw):
    by = draw(st.lists(st.sampled_from(DIMS), max_size=2, unique=True))
    kind = "crosstab" if len(by) == 2 and draw(st.booleans()) else "count"
    filters = {}
    for d in draw(st.lists(st.sampled_from([d for d in DIMS if d != "month"]), max_size=2, unique=True)):
        filters[d] = draw(st.lists(st.sampled_from(VALUES[d]), min_size=1, max_size=len(VALUES[d]), unique=True))
    q = {"dataset": "displaced", "kind": kind, "by": by, "filters": filters, "margins": draw(st.booleans())}
    if draw(st.booleans()):
        i, j = sorted(draw(st.lists(st.integers(0, 5), min_size=2, max_size=2)))
        q["time"] = {"start": VALUES["month"][i], "end": VALUES["month"][j]}
    return q


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(seq=st.lists(queries(), min_size=1, max_size=4))
def test_random_query_sequences_never_disclose(node, seq):
    s, folder, tok = node
    with httpx.Client(timeout=60) as h:
        for q in seq:
            r = post_query(s.url, tok, q, h)
            assert r.status_code in (200, 409), r.text
            if r.status_code == 200:
                ORACLE.add(q, r.json()["cells"])
    ORACLE.check_unrecoverable()
    ORACLE.check_no_empty_region_bounded()


def test_the_sequences_exercised_both_outcomes(node):
    """The random sequences above released and suppressed cells (not a vacuous pass), and
    released cells covering regions where nobody is."""
    assert len(ORACLE.values) > 20 and len(ORACLE.suppressed) > 5 and ORACLE.empty_checked > 5


def test_no_small_group_determined_by_all_releases(node):
    """P's independent oracle (row-by-row predicates, least squares and MILP) over every
    cell the random sequences released: no set of 1..9 people has a determined count."""
    from service_oracle import small_group_determined

    assert ORACLE.predicates
    everyone = [p or {"sex": {"in": VALUES["sex"]}} for p in ORACLE.predicates]
    space = ORACLE.atoms.select(DIMS)  # sets of people over the value space, empty regions included
    assert small_group_determined(everyone, ORACLE.people, T, grid=space) is None


def test_budgets_hold_under_20_concurrent_clients(node):
    s, folder, _ = node
    analysts = [f"a{i}" for i in range(5)]
    toks = {a: token(folder, subject=a) for a in analysts}
    results: list[tuple[str, int]] = []
    lock = threading.Lock()
    combos = list(itertools.product(VALUES["district"], VALUES["sex"], VALUES["group"], ["2024-05", "2024-06"]))

    def client(i: int) -> None:
        who = analysts[i % 5]
        with httpx.Client(timeout=60) as h:
            for k in range(4):
                d, sex, g, end = combos[i * 4 + k]  # 80 different queries: no cached answers
                body = {
                    "dataset": "displaced_dp",
                    "kind": "count",
                    "by": ["month"],
                    "filters": {"district": [d], "sex": [sex], "group": [g]},
                    "time": {"start": "2024-01", "end": end},
                }
                r = post_query(s.url, toks[who], body, h)
                with lock:
                    results.append((who, r.status_code))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert {code for _, code in results} <= {200, 403}
    ok = [who for who, code in results if code == 200]
    # 80 distinct queries; dataset cap 4.0 / 0.5 = 8 answers, analyst cap 1.5 / 0.5 = 3 each
    assert len(ok) == 8
    assert max(ok.count(a) for a in analysts) <= 3
    spent = httpx.get(s.url + "/v1/budget/displaced_dp", headers={"Authorization": f"Bearer {toks['a0']}"}).json()
    assert spent["dataset_total"]["spent"] == pytest.approx(4.0)
