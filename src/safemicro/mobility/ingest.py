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
reason, null-cell share, events by type and events-per-subscriber quantiles.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError
from safemicro.mobility.cells import resolve_cells, valid_on
from safemicro.mobility.pseudonym import PseudonymMap

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
ALIASES = {"subscriber_id": "msisdn", "counterpart_id": "msisdn_counterpart"}
PART = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


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


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, infer_schema=False)
    except Exception as e:
        raise SafemicroError(f"cannot read: {type(e).__name__}: {str(e).splitlines()[0]}", file=str(path)) from None
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


def clean_file(
    path: Path, day: dt.date, cells_today: pl.DataFrame, pseudo: PseudonymMap, timezone: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(clean events, bad rows) of one file of day ``day``."""
    raw = _read(path).with_row_index("row", offset=1)
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
    etype = raw["event_type"].cast(pl.String)
    if not etype.unique().drop_nulls().is_in(EVENT_TYPES).all():  # normalise only when needed
        etype = etype.str.to_lowercase()
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
        .then(pl.lit(REASONS[0]))
        .when(pl.col("ts").is_null())
        .then(pl.lit(REASONS[1]))
        .when(pl.col("cell_id").is_null())
        .then(pl.lit(REASONS[2]))
        .when(pl.col("cell_ix").is_null())
        .then(pl.lit(REASONS[3]))
        .when(~pl.col("event_type").is_in(EVENT_TYPES))
        .then(pl.lit(REASONS[4]))
        .when(pl.col("local_day") != day)
        .then(pl.lit(REASONS[5]))
    )
    frame = frame.with_columns(reason.alias("reason"))
    bad = frame.filter(pl.col("reason").is_not_null()).select(
        pl.lit(str(path)).alias("file"), pl.col("row"), pl.col("reason")
    )
    good = frame.filter(pl.col("reason").is_null())
    clean = pl.DataFrame(
        {
            "sub": pseudo.apply(good["msisdn"]),
            "ts": good["ts"],
            "hour": good["hour"],
            "cell_ix": good["cell_ix"],
            "event_type": good["event_type"].cast(EVENT_ENUM),
            "outgoing": good["outgoing"],
            "counterpart": pseudo.apply(good["counterpart"]),
        }
    )
    return clean, bad


def qa_day(day: dt.date, rows: int, clean: pl.DataFrame, bad: pl.DataFrame) -> dict:
    """The QA record of one day (FlowETL-like checks)."""
    per_sub = clean.group_by("sub").len()["len"] if clean.height else pl.Series([0])
    reasons = dict(bad.group_by("reason").len().iter_rows()) if bad.height else {}
    types = dict(clean.group_by("event_type").len().with_columns(pl.col("event_type").cast(pl.String)).iter_rows())
    return {
        "date": day.isoformat(),
        "rows": rows,
        "clean_rows": clean.height,
        "bad_rows": bad.height,
        "subscribers": int(clean["sub"].n_unique()) if clean.height else 0,
        **{r.replace(" ", "_"): int(reasons.get(r, 0)) for r in REASONS},
        "null_cell_share": (reasons.get("null cell", 0) / rows) if rows else 0.0,
        "events_by_type": {k: int(v) for k, v in sorted(types.items())},
        "events_per_subscriber": {
            q: float(per_sub.quantile(v, "nearest")) for q, v in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }
        | {"max": int(per_sub.max())},
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
) -> dict:
    """Ingest every day partition of ``events`` into ``out``; returns the QA report."""
    root = Path(out)
    resolved = resolve_cells(cells, bridge, units)
    (root / "events").mkdir(parents=True, exist_ok=True)
    resolved.write_parquet(root / "cells.parquet")
    pseudo = PseudonymMap(key)
    report = {"timezone": timezone, "days": []}
    for day, files in day_partitions(events):
        today = valid_on(resolved, day, str(cells))
        parts, bads, rows = [], [], 0
        for f in files:
            clean, bad = clean_file(f, day, today, pseudo, timezone)
            rows += clean.height + bad.height
            parts.append(clean)
            bads.append(bad)
        clean = pl.concat(parts)
        bad = pl.concat(bads)
        part = root / "events" / f"date={day.isoformat()}"
        part.mkdir(exist_ok=True)
        clean.write_parquet(part / "part-0.parquet", statistics=False)
        if bad.height:
            bdir = root / "bad_rows" / f"date={day.isoformat()}"
            bdir.mkdir(parents=True, exist_ok=True)
            bad.write_parquet(bdir / "part-0.parquet")
        rec = qa_day(day, rows, clean, bad)
        report["days"].append(rec)
        if progress is not None:
            progress(day, rec)
    report["subscribers_seen"] = len(pseudo)
    (root / "qa.json").write_text(json.dumps(report, indent=2))
    return report
