"""Controlled rounding of a table with margins to a base b (τ-Argus "controlled rounding";
Cox 1987): every cell and margin goes to one of the two multiples of b next to it (a
multiple of b stays), and the rounded margins are still the sums of the rounded cells.

A mixed-integer programme over y_i ∈ {0, 1} (cell i rounded up), solved with HiGHS through
``scipy.optimize.milp``: for every relation "margin = sum of its cells",
``floor_p + y_p = Σ (floor_c + y_c)`` (in units of b), minimising the total absolute change
Σ |rounded_i − v_i|. Two-way tables always have such a rounding; for three and more
dimensions one may not exist, which is reported as an error.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.service.protection_secondary import table_equations

__all__ = ["controlled_round"]


def controlled_round(table: pl.DataFrame, dims: list[str], value: str, base: int) -> pl.DataFrame:
    """``table`` (cells and margins; a margin has None in the dimensions it sums over) with
    ``value`` replaced by its controlled rounding to ``base``.

    >>> t = pl.DataFrame({"g": ["a", "b", None], "n": [2, 4, 6]})
    >>> controlled_round(t, ["g"], "n", 5)["n"].to_list()
    [0, 5, 5]
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    if base < 1:
        raise SafemicroError(f"the rounding base must be a positive integer, got {base}")
    v = table.get_column(value).to_numpy().astype(float)
    if np.isnan(v).any():
        raise SafemicroError("controlled rounding needs every cell's value (no missing)", column=value)
    n = len(v)
    floor = np.floor(v / base)
    res = v - floor * base
    exact = res < 1e-9
    eqs = table_equations(table, dims)
    a = np.zeros((len(eqs.parents), n))
    rhs = np.zeros(len(eqs.parents))
    for r, (p, kids) in enumerate(zip(eqs.parents, eqs.children)):
        a[r, p] = 1.0
        a[r, kids] -= 1.0
        rhs[r] = floor[kids].sum() - floor[p]
    cost = (base - res) - res  # rounding up costs base - res instead of res
    cons = [LinearConstraint(a, rhs, rhs)] if len(rhs) else []
    out = milp(cost, constraints=cons, integrality=np.ones(n), bounds=Bounds(np.zeros(n), np.where(exact, 0.0, 1.0)))
    if out.status != 0 or out.x is None:
        raise SafemicroError(f"no controlled rounding to base {base} exists for this table (dimensions {dims})")
    rounded = (floor + np.round(out.x)) * base
    return table.with_columns(pl.Series(value, rounded).cast(table.schema[value]))
