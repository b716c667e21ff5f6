"""A Parquet file's row groups in order, the next one read while the caller works on this one.

The out-of-core passes read a row group, then fold it (bincounts) or rewrite it (the
released file); done one after the other, one of the two cores idles. Polars reads in a
background thread (it releases the GIL) while the caller works, so at most two row
groups are in memory at once. A row group that cannot be read stops with an error naming
the file and the row group.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError


def read_row_groups(path: str | Path, meta, exprs: list[pl.Expr] | None = None) -> Iterator[pl.DataFrame]:
    """Each row group of the Parquet file ``path`` (``meta``: its pyarrow metadata) as a
    Polars frame, all columns or ``exprs`` evaluated on them."""
    scan = pl.scan_parquet(str(path))
    starts = [0]
    for g in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(g).num_rows)

    def read(g: int) -> pl.DataFrame:
        part = scan.slice(starts[g], starts[g + 1] - starts[g])
        try:
            return (part.select(exprs) if exprs is not None else part).collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            msg = str(exc).strip().splitlines()[0]
            raise SafemicroError(f"row group {g} cannot be read ({msg})", file=str(path)) from None

    total = meta.num_row_groups
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="safemicro-read") as pool:
        ahead = pool.submit(read, 0) if total else None
        for g in range(total):
            batch = ahead.result()
            ahead = pool.submit(read, g + 1) if g + 1 < total else None
            yield batch
