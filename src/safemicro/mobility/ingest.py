"""Ingest call records: check every row, pseudonymise, write clean day partitions and QA.

Input: ``events/date=YYYY-MM-DD/*.parquet|*.csv`` (one folder per local day; timestamps in
UTC or with an offset), columns ``msisdn`` (or ``subscriber_id``), ``ts``, ``cell_id``,
``event_type`` and optionally ``outgoing``, ``msisdn_counterpart`` (or ``counterpart_id``),
``duration_s``. Phone numbers are replaced by HMAC pseudonyms (:mod:`.pseudonym`) as the
partition is read; raw numbers are never written, logged or audited.

Bad rows are never dropped silently: each is counted and listed in
``bad_rows/date=.../part-0.parquet`` with its file, row (1-based data row) and reason
(``missing subscriber``, ``unparseable time``, ``null cell``, ``unknown cell``, ``unknown
event type``, ``outside its day partition``); the listing carries no phone number. The QA
report (``qa.json``) has per day: rows, clean rows, subscribers, the counts of each bad
reason, null-cell share, events by type and events-per-subscriber quantiles, and (once, for
the operator deciding what to serve) how unique the raw traces are on a sample
(``trace_uniqueness``: unicity at 2 and 4 points, Location attack at k = 2, 4, HomeWork).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.cells import resolve_cells, valid_on
from safemicro.mobility.pseudonym import PseudonymMap
from safemicro.mobility.uniqueness import sample_traces, uniqueness_report

EVENT_TYPES = ["call", "sms", "data", "topup", "other"]
EVENT_ENUM = pl.Enum(EVENT_TYPES)
REASONS = (
    "missing subscriber",
    "unparseable time",
    "null cell",
    "unknown cell",
    "unknown event type",
    "outside its day partition",
)
CLEAN_SCHEMA = {
    "sub": pl.UInt64,
    "ts": pl.Datetime("us", "UTC"),
    "hour": pl.Int8,
    "cell_ix": pl.UInt32,
    "event_type": EVENT_ENUM,
    "outgoing": pl.Boolean,
    "counterpart": pl.UInt64,
}
ALIASES = {"subscriber_id": "msisdn", "counterpart_id": "msisdn_counterpart"}
PART = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
BUCKET = re.compile(r"-b(\d+)\.parquet$")
CSV_ROW_BYTES = 64  # a CSV day's rows are estimated from its size (only the bucket count uses it)


def day_partitions(events: str | Path) -> list[tuple[dt.date, list[Path]]]:
    """The day folders of an events tree, in date order, with their data files."""
    root = Path(events)
    if not root.is_dir():
        raise SafemicroError("events folder not found", file=str(root))
    out = []
    for d in sorted(root.iterdir()):
        m = PART.match(d.name)
        if d.is_dir() and m:
            files = sorted(p for p in d.iterdir() if p.suffix in (".parquet", ".csv"))
            if files:
                out.append((dt.date.fromisoformat(m.group(1)), files))
    if not out:
        raise SafemicroError(
            "no day partitions (folders named date=YYYY-MM-DD with .parquet or .csv files)", file=str(root)
        )
    return out


def subscriber_buckets(files: list[Path], bucket_rows: int) -> int:
    """How many subscriber buckets a day of these raw files is written in: a power of two
    giving at most about ``bucket_rows`` events each (1 for a small day). Rows are read
    from Parquet metadata; a CSV file's rows are estimated from its size."""
    rows = 0
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                rows += pq.ParquetFile(f).metadata.num_rows
            except Exception as e:
                raise SafemicroError(
                    f"cannot read: {type(e).__name__}: {str(e).splitlines()[0]}", file=str(f)
                ) from None
        else:
            rows += f.stat().st_size // CSV_ROW_BYTES
    buckets = 1
    while rows > buckets * bucket_rows:
        buckets *= 2
    return buckets


def by_bucket(files: list[Path]) -> list[list[Path]]:
    """An ingested day's clean files grouped by subscriber bucket (``part-K-bB.parquet``;
    files without a bucket are one group): a subscriber's events of the day are all in one
    group, so the per-subscriber daily tables are computed a group at a time."""
    groups: dict[int, list[Path]] = {}
    for f in files:
        m = BUCKET.search(f.name)
        groups.setdefault(int(m.group(1)) if m else -1, []).append(f)
    return [groups[b] for b in sorted(groups)]


def _write_clean(clean: pl.DataFrame, part: Path, k: int, buckets: int) -> None:
    """Chunk ``k`` of a day as ``part-K.parquet``, or split by subscriber bucket (the
    pseudonym modulo ``buckets``; pseudonyms are keyed hashes, so buckets are even) as
    ``part-K-bB.parquet``."""
    if buckets == 1:
        clean.write_parquet(part / f"part-{k}.parquet", statistics=False)
        return
    keyed = clean.with_columns((pl.col("sub") % buckets).cast(pl.UInt32).alias("_bucket"))
    for (b,), piece in keyed.partition_by("_bucket", include_key=False, as_dict=True).items():
        piece.write_parquet(part / f"part-{k}-b{b:03d}.parquet", statistics=False)


def _chunks(path: Path, chunk_rows: int) -> Iterator[tuple[pl.DataFrame, int]]:
    """(frame, rows before it) per chunk: Parquet by record batches of ``chunk_rows`` (a day
    of a billion-event run never sits in memory whole), CSV whole."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            done = 0
            for groups in _row_group_runs(pf, chunk_rows):
                batches = (
                    [pf.read_row_groups(groups)]
                    if len(groups) > 1 or pf.metadata.row_group(groups[0]).num_rows <= chunk_rows
                    else pf.iter_batches(batch_size=chunk_rows, row_groups=groups)
                )
                for batch in batches:
                    frame = pl.from_arrow(batch)
                    yield _columns(frame, path), done
                    done += frame.height
            return
        frame = pl.read_csv(path, infer_schema=False)
    except SafemicroError:
        raise
    except Exception as e:
        raise SafemicroError(f"cannot read: {type(e).__name__}: {str(e).splitlines()[0]}", file=str(path)) from None
    yield _columns(frame, path), 0


def _row_group_runs(pf, chunk_rows: int) -> Iterator[list[int]]:
    """Consecutive row groups of a Parquet file joined into runs of at most ``chunk_rows``
    rows (a row group larger than that is a run alone, read in batches): a file written with
    small row groups is still cleaned in big chunks, so the per-chunk work (the pseudonym
    join against every number seen so far) is paid a few times per day, not per row group."""
    run, rows = [], 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if run and rows + n > chunk_rows:
            yield run
            run, rows = [], 0
        run.append(i)
        rows += n
    if run:
        yield run


def _columns(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    frame = frame.rename({k: v for k, v in ALIASES.items() if k in frame.columns})
    for c in ("msisdn", "ts", "cell_id", "event_type"):
        if c not in frame.columns:
            raise SafemicroError(f"column missing (have {', '.join(frame.columns)})", file=str(path), column=c)
    return frame


def _timestamps(ts: pl.Series) -> pl.Series:
    """UTC timestamps; unparseable text becomes null (counted as a bad row)."""
    if isinstance(ts.dtype, pl.Datetime):
        return ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
    s = ts.cast(pl.String).str.strip_chars().str.replace(r"Z$", "+00:00")
    with_tz = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC")
    plain = s.str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    plain2 = s.str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us")
    return with_tz.fill_null(plain.fill_null(plain2).dt.replace_time_zone("UTC"))


def _booleans(s: pl.Series) -> pl.Series:
    """true/1/t (any case) as True, other text as False, nulls kept."""
    if s.dtype == pl.Boolean:
        return s
    text = s.cast(pl.String).str.to_lowercase()
    return (
        text.to_frame("t")
        .select(pl.when(pl.col("t").is_not_null()).then(pl.col("t").is_in(["true", "1", "t"])))["t"]
        .alias(s.name)
    )


def clean_chunk(
    raw: pl.DataFrame,
    offset: int,
    path: Path,
    day: dt.date,
    cells_today: pl.DataFrame,
    pseudo: PseudonymMap,
    timezone: str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(clean events, bad rows) of one chunk of a file of day ``day`` (``offset`` rows of
    the file come before it)."""
    raw = raw.with_row_index("row", offset=offset + 1)
    ts = _timestamps(raw["ts"])
    local = ts.dt.convert_time_zone(timezone)
    key_int = cells_today["cell_id"].dtype.is_integer()
    cell = raw["cell_id"]
    if key_int and not cell.dtype.is_integer():
        cell = (
            cell.cast(pl.String)
            .str.strip_chars()
            .cast(pl.Int64, strict=False)
            .fill_null(pl.when(cell.is_null()).then(None).otherwise(-1))
        )
    cell = cell.cast(pl.Int64 if key_int else pl.String)
    etype = raw["event_type"]
    if etype.unique().drop_nulls().cast(pl.String).is_in(EVENT_TYPES).all():  # the usual case:
        etype = etype.cast(EVENT_ENUM)  # categorical codes mapped at once, no text per row
    else:  # normalise only when needed
        etype = etype.cast(pl.String).str.to_lowercase()
    frame = pl.DataFrame(
        {
            "row": raw["row"],
            "msisdn": raw["msisdn"],
            "ts": ts,
            "hour": local.dt.hour().cast(pl.Int8),
            "local_day": local.dt.date(),
            "cell_id": cell,
            "event_type": etype,
            "outgoing": _booleans(raw["outgoing"])
            if "outgoing" in raw.columns
            else pl.Series([None] * raw.height, dtype=pl.Boolean),
            "counterpart": raw["msisdn_counterpart"]
            if "msisdn_counterpart" in raw.columns
            else pl.Series([None] * raw.height, dtype=pl.Int64),
        }
    )
    frame = frame.join(cells_today.select("cell_id", "cell_ix"), on="cell_id", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("msisdn").is_null())
        .then(pl.lit(0, dtype=pl.UInt8))
        .when(pl.col("ts").is_null())
        .then(pl.lit(1, dtype=pl.UInt8))
        .when(pl.col("cell_id").is_null())
        .then(pl.lit(2, dtype=pl.UInt8))
        .when(pl.col("cell_ix").is_null())
        .then(pl.lit(3, dtype=pl.UInt8))
        .when(~pl.col("event_type").is_in(EVENT_TYPES))
        .then(pl.lit(4, dtype=pl.UInt8))
        .when(pl.col("local_day") != day)
        .then(pl.lit(5, dtype=pl.UInt8))
    )
    frame = frame.with_columns(reason.alias("reason"))
    bad = frame.filter(pl.col("reason").is_not_null()).select(
        pl.lit(str(path)).alias("file"),
        pl.col("row"),
        pl.col("reason").replace_strict(list(range(len(REASONS))), list(REASONS), return_dtype=pl.String),
    )
    good = frame.filter(pl.col("reason").is_null()).select(
        "msisdn", "ts", "hour", "cell_ix", pl.col("event_type").cast(EVENT_ENUM), "outgoing", "counterpart"
    )
    clean = pseudo.pseudonymise(good, {"msisdn": "sub", "counterpart": "counterpart_p"})
    return clean.rename({"counterpart_p": "counterpart"}).select(list(CLEAN_SCHEMA)), bad


def qa_day(day: dt.date, rows: int, per_sub: pl.DataFrame, types: pl.DataFrame, bad: pl.DataFrame) -> dict:
    """The QA record of one day (FlowETL-like checks) from the chunks' per-subscriber and
    per-type counts."""
    counts = per_sub.group_by("sub").agg(pl.col("len").sum())["len"] if per_sub.height else pl.Series([0])
    reasons = dict(bad.group_by("reason").len().iter_rows()) if bad.height else {}
    by_type = types.group_by("event_type").agg(pl.col("len").sum()) if types.height else types
    clean_rows = int(per_sub["len"].sum()) if per_sub.height else 0
    return {
        "date": day.isoformat(),
        "rows": rows,
        "clean_rows": clean_rows,
        "bad_rows": bad.height,
        "subscribers": int(per_sub["sub"].n_unique()) if per_sub.height else 0,
        **{r.replace(" ", "_"): int(reasons.get(r, 0)) for r in REASONS},
        "null_cell_share": (reasons.get("null cell", 0) / rows) if rows else 0.0,
        "events_by_type": {str(k): int(v) for k, v in sorted(by_type.iter_rows(), key=lambda kv: str(kv[0]))},
        "events_per_subscriber": {
            q: float(counts.quantile(v, "nearest")) for q, v in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }
        | {"max": int(counts.max())},
    }


def ingest(
    events: str | Path,
    cells: str | Path,
    bridge: str | Path,
    out: str | Path,
    key: bytes,
    *,
    units: str | Path | None = None,
    timezone: str = "UTC",
    progress: Callable[[dt.date, dict], None] | None = None,
    chunk_rows: int = 20_000_000,
    bucket_rows: int = 8_000_000,
    uniqueness_sample: int = 500,
) -> dict:
    """Ingest every day partition of ``events`` into ``out`` (clean events as
    ``events/date=.../part-K.parquet``, one per chunk of at most ``chunk_rows`` rows; a day
    of more than ``bucket_rows`` events is split further by subscriber bucket,
    ``part-K-bB.parquet``, so that the daily tables never group a whole day at once);
    returns the QA report, with the raw traces' uniqueness on a sample of
    ``uniqueness_sample`` subscribers (:mod:`.uniqueness`; 0 leaves it out)."""
    root = Path(out)
    resolved = resolve_cells(cells, bridge, units)
    (root / "events").mkdir(parents=True, exist_ok=True)
    resolved.write_parquet(root / "cells.parquet")
    pseudo = PseudonymMap(key)
    report = {"timezone": timezone, "days": []}
    for day, files in day_partitions(events):
        today = valid_on(resolved, day, str(cells))
        part = root / "events" / f"date={day.isoformat()}"
        part.mkdir(exist_ok=True)
        for stale in part.glob("part-*.parquet"):  # an earlier run's chunks
            stale.unlink()
        subs, types, bads, rows, k = [], [], [], 0, 0
        buckets = subscriber_buckets(files, bucket_rows)
        for f in files:
            for raw, offset in _chunks(f, chunk_rows):
                clean, bad = clean_chunk(raw, offset, f, day, today, pseudo, timezone)
                rows += raw.height
                if clean.height:
                    _write_clean(clean, part, k, buckets)
                    k += 1
                subs.append(clean.group_by("sub").len())
                types.append(clean.group_by("event_type").len().with_columns(pl.col("event_type").cast(pl.String)))
                bads.append(bad)
        if k == 0:  # a day with no clean row still has its (empty) partition
            pl.DataFrame(schema=CLEAN_SCHEMA).write_parquet(part / "part-0.parquet")
        bad = pl.concat(bads)
        if bad.height:
            bdir = root / "bad_rows" / f"date={day.isoformat()}"
            bdir.mkdir(parents=True, exist_ok=True)
            bad.write_parquet(bdir / "part-0.parquet")
        rec = qa_day(day, rows, pl.concat(subs), pl.concat(types), bad)
        report["days"].append(rec)
        if progress is not None:
            progress(day, rec)
    report["subscribers_seen"] = len(pseudo)
    if uniqueness_sample:
        report["trace_uniqueness"] = uniqueness_report(sample_traces(root, uniqueness_sample))
    (root / "qa.json").write_text(json.dumps(report, indent=2))
    return report
