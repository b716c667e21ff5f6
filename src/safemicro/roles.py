"""The plan's variable roles checked against the data, before anything is computed.

Shared by the risk assessment, the release and the methods that take roles (local
suppression), so it sits below all of them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.plan import Roles


def _fail(message: str, dataset: Dataset, column: str | None = None, row: int | None = None):
    raise SafemicroError(message, file=dataset.source, column=column, row=row)


def _first_row(mask: pl.Series | np.ndarray) -> int:
    """1-based row number of the first True."""
    arr = mask.to_numpy() if isinstance(mask, pl.Series) else mask
    return int(np.argmax(arr)) + 1


def validate_roles(dataset: Dataset, roles: Roles) -> None:
    """Reject roles that do not fit the data, naming the file, column and row."""
    frame = dataset.frame
    if frame.height == 0:
        _fail("the data has no records", dataset)
    if not roles.keys and not roles.numeric_keys:
        _fail(
            "no key variables given (use --keys or --numeric, or a plan with roles.keys or roles.numeric_keys)", dataset
        )
    roles.check_columns(frame.columns, dataset.source)
    for name in roles.keys:
        if dataset.analysis_column(name).null_count() == frame.height:
            _fail("key variable has only missing values", dataset, column=name)
    for name in roles.numeric_keys:
        if not frame.schema[name].is_numeric():
            _fail(f"numeric key must be numeric, found {frame.schema[name]}", dataset, column=name)
    if roles.weight:
        w = dataset.analysis_column(roles.weight)
        if not w.dtype.is_numeric():
            unparsed = w.is_not_null() & w.cast(pl.Float64, strict=False).is_null()
            row = _first_row(unparsed) if unparsed.any() else None
            found = f"{w[row - 1]!r}" if row else str(w.dtype)
            _fail(f"weight must be numeric, found {found}", dataset, column=roles.weight, row=row)
        if w.null_count():
            _fail("weight is missing", dataset, column=roles.weight, row=_first_row(w.is_null()))
        bad = ~(w.cast(pl.Float64) > 0)
        if bad.any():
            row = _first_row(bad)
            _fail(f"weight must be positive, found {w[row - 1]}", dataset, column=roles.weight, row=row)
    if roles.household:
        h = frame.get_column(roles.household)
        if h.null_count():
            _fail("household id is missing", dataset, column=roles.household, row=_first_row(h.is_null()))
        for name in roles.household_level:
            _check_household_level(dataset, roles.household, name)


def _check_household_level(dataset: Dataset, household: str, name: str) -> None:
    """A household-level variable must take one value per household."""
    frame = dataset.frame.select(household, name).with_row_index("__row")
    # a record differs when its value is not that of the first record of its household
    differs = frame.filter(pl.col(name).ne_missing(pl.col(name).first().over(household)))
    if differs.height:
        hid, row = differs.row(0)[1], int(differs.get_column("__row")[0])
        first = int(frame.filter(pl.col(household).eq_missing(hid)).get_column("__row")[0])
        n_bad = differs.get_column(household).n_unique()
        _fail(
            f"household-level variable differs within household {hid!r}: "
            f"{frame.get_column(name)[row]!r} here, {frame.get_column(name)[first]!r} in row {first + 1} "
            f"({n_bad} household(s) affected)",
            dataset,
            column=name,
            row=row + 1,
        )
