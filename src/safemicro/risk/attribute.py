"""Attribute disclosure: how much a key group's sensitive values tell beyond the whole file.

A k-anonymous group in which everyone is a "survivor of violence" discloses it without
anyone being re-identified; l-diversity counts values but not how far the group's
distribution is from the file's. For every sensitive variable, with ``p`` the distribution
of its values in the whole file and ``q`` the one in a key group (records sharing their
key values, a missing value equal to a missing value — the groups of l-diversity):

* **t-closeness** (Li, Li & Venkatasubramanian 2007): the earth mover's distance between
  ``q`` and ``p``; the file is t-close for the largest distance. *equal* distance
  (nominal): ``½·Σ|q_i − p_i|``; *ordered* (ordinal or numeric, values in their order):
  ``Σ_i |Σ_{j≤i} (q_j − p_j)| / (m − 1)``; *hierarchical* (a category tree of height H):
  ``Σ_N (level(N)/H)·min(pos(N), neg(N))`` over the inner nodes, with pos/neg the sums of
  the children's positive/negative surpluses ``q − p``. 0 = the group tells nothing, 1 =
  it pins the value down.
* **δ-disclosure privacy** (Brickell & Shmatikov 2008): ``max |ln(q_i/p_i)|`` over the
  values present in the group.
* **β-likeness** (Cao & Karras 2012): *basic* ``β = max (q_i − p_i)/p_i``, the largest
  relative gain in confidence about a value; *enhanced* caps the gain allowed for value i at
  ``min(β, −ln p_i)`` (rare values are protected more); as a number it is reported the way
  pycanon does, ``min(β, −ln min p)``, and against a target β the records in groups above
  the cap are counted.
* **(α,k)-anonymity** (Wong, Li, Fu & Wang 2006): α = the largest share of one sensitive
  value within a group, k the smallest group.

Missing sensitive values are left out of ``p`` and ``q``. Counts are one ``bincount`` of
(group, value) pairs; the distances are computed on dense blocks of groups, never record by
record. pycanon 1.3.6 gives the same numbers on the same data (tests/test_attribute.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from safemicro.keys import encode_column
from safemicro.risk.ldiversity import _key_groups

__all__ = ["AttributeResult", "attribute_disclosure", "DISTANCES"]

Distance = Literal["equal", "ordered", "hierarchical"]
DISTANCES = ("equal", "ordered", "hierarchical")
BLOCK_CELLS = 4_000_000  # groups x values per dense block


@dataclass
class AttributeResult:
    """Per-record measures (Polars frame, input order) and per-variable summaries."""

    keys: list[str]
    sensitive: list[str]
    per_record: pl.DataFrame
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        return self.variables


def _tree(values: pl.Series, hierarchy: dict[Any, list[Any]], name: str) -> list[np.ndarray]:
    """For each level 1..H of the hierarchy, the node id of every value (leaves = values).

    A node is identified by its path to the top, so a tree results even when two branches
    reuse a label; a single top node (the root) is added when the top level has several.
    """
    lookup = {(str(int(k)) if isinstance(k, float) and k.is_integer() else str(k)): v for k, v in hierarchy.items()}
    paths = []
    for v in values.to_list():
        key = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        if key not in lookup:
            raise ValueError(f"{name}: value {v!r} is not in the hierarchy")
        paths.append([str(x) for x in lookup[key]])
    depth = {len(p) for p in paths}
    if len(depth) != 1:
        raise ValueError(f"{name}: every hierarchy row needs the same number of levels")
    (h,) = depth
    if len({p[-1] for p in paths}) > 1:
        paths = [[*p, "*"] for p in paths]
        h += 1
    levels = []
    for level in range(h):
        tails = ["\x1f".join(p[level:]) for p in paths]
        _, ids = np.unique(np.array(tails, dtype=object), return_inverse=True)
        levels.append(ids.ravel())
    return levels


def _tree_emd(diff: np.ndarray, tree: list[np.ndarray]) -> np.ndarray:
    """The hierarchical EMD per row of ``diff`` = q − p (groups x values)."""
    m = diff.shape[1]
    height = len(tree)
    cost = np.zeros(len(diff))
    extra, child = diff, np.arange(m)
    for level, parent_of_leaf in enumerate(tree, start=1):
        parent = np.zeros(int(child.max(initial=-1)) + 1, dtype=np.int64)
        parent[child] = parent_of_leaf  # each child node's parent at this level
        n_parent = int(parent_of_leaf.max(initial=-1)) + 1
        up = np.zeros((extra.shape[1], n_parent))
        up[np.arange(extra.shape[1]), parent[: extra.shape[1]]] = 1.0
        pos, neg = np.maximum(extra, 0) @ up, np.maximum(-extra, 0) @ up
        cost += (level / height) * np.minimum(pos, neg).sum(axis=1)
        extra, child = extra @ up, parent_of_leaf
    return cost


def _measures(
    g: np.ndarray, n_groups: int, s: pl.Series, distance: str, hierarchy: dict | None, name: str, beta: float | None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-group t, δ, β, α (and, for a target ``beta``, whether a value's gain exceeds the
    enhanced cap ``min(β, −ln p)``), the file distribution p, and the group sizes."""
    codes, m = encode_column(s)
    ok = codes > 0
    n = np.bincount(g[ok], minlength=n_groups).astype(np.float64)
    p = np.bincount(codes[ok] - 1, minlength=m) / max(ok.sum(), 1)
    tree = None
    if distance == "hierarchical":
        rows = np.flatnonzero(ok)
        rep = np.zeros(m, dtype=np.int64)
        rep[codes[rows] - 1] = rows
        tree = _tree(s.gather(rep), hierarchy or {}, name)
    out = {k: np.full(n_groups, np.nan) for k in ("t", "delta", "beta", "alpha", "enhanced")}
    # sparse (group, value) pairs, sorted by group then value: never a groups x values matrix
    pair, count = np.unique(g[ok].astype(np.int64) * m + (codes[ok] - 1), return_counts=True)
    pg, pv = np.divmod(pair, m)
    q = count / n[pg]
    pp = p[pv]
    starts = np.flatnonzero(np.r_[True, pg[1:] != pg[:-1]]) if len(pg) else np.zeros(0, dtype=np.int64)
    groups = pg[starts]
    if not len(groups):
        return out, p, n
    gain = (q - pp) / pp
    out["beta"][groups] = np.maximum.reduceat(gain, starts)  # an absent value's gain (−1) is never the largest
    out["alpha"][groups] = np.maximum.reduceat(q, starts)
    out["delta"][groups] = np.maximum.reduceat(np.abs(np.log(q / pp)), starts)
    if beta is not None:
        over = (gain > np.minimum(beta, -np.log(pp)) + 1e-12).astype(np.float64)
        out["enhanced"][groups] = np.maximum.reduceat(over, starts)
    if distance == "equal":
        out["t"][groups] = 0.5 * (np.add.reduceat(np.abs(q - pp), starts) + 1.0 - np.add.reduceat(pp, starts))
    elif distance == "ordered":
        out["t"][groups] = _ordered_emd(pg, pv, q, starts, p)
    else:
        out["t"][groups] = _hierarchical_emd(pg, pv, q, groups, p, tree)
    return out, p, n


def _ordered_emd(pg, pv, q, starts, p) -> np.ndarray:
    """``Σ_i |Q(i) − P(i)| / (m − 1)`` per group from its sparse pairs: Q is constant between
    the group's values, and over such a segment the sum of ``|c − P(i)|`` (P increasing) is
    two prefix sums split where P crosses c."""
    m = len(p)
    if m < 2:
        return np.zeros(len(starts))
    cum_p = np.cumsum(p)
    prefix = np.r_[0.0, np.cumsum(cum_p)]
    group_of_pair = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(pg)]))
    c = np.cumsum(q) - np.r_[0.0, np.cumsum(q)][starts][group_of_pair]  # Q at each pair's value
    last = np.r_[pg[1:] != pg[:-1], True]
    b = np.where(last, m, np.r_[pv[1:], m])

    def seg(a, b, c):
        split = np.clip(np.searchsorted(cum_p, c, side="left"), a, b)
        return c * (split - a) - (prefix[split] - prefix[a]) + (prefix[b] - prefix[split]) - c * (b - split)

    total = np.add.reduceat(seg(pv, b, c), starts) + (prefix[pv[starts]] - prefix[0])  # before the first value Q = 0
    return total / (m - 1)


def _hierarchical_emd(pg, pv, q, groups, p, tree) -> np.ndarray:
    """The tree EMD on dense blocks of groups (categorical trees are small)."""
    m = len(p)
    out = np.zeros(len(groups))
    row = np.searchsorted(groups, pg)
    block = max(1, BLOCK_CELLS // max(m, 1))
    for lo in range(0, len(groups), block):
        hi = min(len(groups), lo + block)
        sel = slice(*np.searchsorted(row, [lo, hi]))
        dense = np.zeros((hi - lo, m))
        dense[row[sel] - lo, pv[sel]] = q[sel]
        out[lo:hi] = _tree_emd(dense - p, tree)
    return out


def attribute_disclosure(
    frame: pl.DataFrame,
    keys: list[str],
    sensitive: list[str] | str,
    *,
    distance: dict[str, Distance] | None = None,
    hierarchies: dict[str, dict[Any, list[Any]]] | None = None,
    targets: dict[str, Any] | None = None,
) -> AttributeResult:
    """t-closeness, δ-disclosure, β-likeness and (α,k)-anonymity of ``sensitive`` given ``keys``.

    ``distance``: the EMD per sensitive variable (default: ordered for numbers, equal for
    text); ``hierarchical`` needs ``hierarchies[variable]`` = {value: [level 1, …, top]}.
    ``targets`` (``t_closeness``, ``delta_disclosure``, ``beta_likeness``,
    ``max_sensitive_share``) add the records in groups above each target.

    >>> df = pl.DataFrame({"camp": [1, 1, 2, 2], "status": ["a", "b", "a", "a"]})
    >>> r = attribute_disclosure(df, ["camp"], ["status"], distance={"status": "equal"})
    >>> r.variables["status"]["t_closeness"], r.variables["status"]["alpha"]
    (0.25, 1.0)
    """
    sensitive = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    distance, hierarchies, targets = dict(distance or {}), dict(hierarchies or {}), dict(targets or {})
    g, n_groups = _key_groups(frame, list(keys))
    columns: dict[str, Any] = {}
    variables: dict[str, dict[str, Any]] = {}
    for name in sensitive:
        s = frame.get_column(name)
        kind = distance.get(name) or ("ordered" if s.dtype.is_numeric() else "equal")
        if kind not in DISTANCES:
            raise ValueError(f"{name}: distance must be one of {', '.join(DISTANCES)}, got {kind!r}")
        if kind == "hierarchical" and name not in hierarchies:
            raise ValueError(f"{name}: the hierarchical distance needs a hierarchy")
        beta = targets.get("beta_likeness")
        per_group, p, n = _measures(g, n_groups, s, kind, hierarchies.get(name), name, beta)
        for measure in ("t", "delta", "beta", "alpha"):
            columns[f"{measure}_{name}"] = per_group[measure][g]
        variables[name] = _summary(per_group, p, n, g, kind, targets)
    return AttributeResult(list(keys), sensitive, pl.DataFrame(columns), variables)


def _summary(per_group, p, n, g, kind, targets) -> dict[str, Any]:
    seen = n > 0
    records = n[g] > 0

    def top(values: np.ndarray) -> float | None:
        v = values[seen]
        return float(v.max()) if v.size else None

    beta = top(per_group["beta"])
    out: dict[str, Any] = {
        "distance": kind,
        "t_closeness": top(per_group["t"]),
        "delta_disclosure": top(per_group["delta"]),
        "beta_likeness": beta,
        "beta_likeness_enhanced": min(beta, float(-np.log(p[p > 0].min()))) if beta is not None else None,
        "alpha": top(per_group["alpha"]),
        "k": int(n[seen].min()) if seen.any() else None,
        "n_groups": int(seen.sum()),
    }
    limits = {
        "t_closeness": ("t", "n_records_above_t"),
        "delta_disclosure": ("delta", "n_records_above_delta"),
        "beta_likeness": ("beta", "n_records_above_beta"),
        "max_sensitive_share": ("alpha", "n_records_above_alpha"),
    }
    for target, (measure, label) in limits.items():
        if targets.get(target) is not None:
            out[label] = int(np.count_nonzero(records & (per_group[measure][g] > float(targets[target]) + 1e-12)))
    if targets.get("beta_likeness") is not None:
        out["n_records_above_beta_enhanced"] = int(np.count_nonzero(records & (per_group["enhanced"][g] == 1)))
    return out
