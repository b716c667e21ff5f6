"""Stage i and ii as SQL text, one text for DuckDB and Spark SQL (definitions: :mod:`.daily`,
:mod:`.features`). Relations: ``ev`` (clean events with ``admin3`` and ``date``), ``daily``,
``cellcounts``, ``contacts`` (each with ``date``) and ``cells`` (cell_ix, lon, lat).
Only portable SQL: window functions for the tie-breaks, explicit casts and ``NULLS LAST``."""

from __future__ import annotations

import datetime as dt
import math

from safemicro.mobility.features import R_EARTH_KM

NIGHT = (20, 4)
TABLES = ("daily", "cellcounts", "contacts")  # what stage i writes per day


def hours_sql(hours: tuple[int, int]) -> str:
    """The local-hour condition of [h0, h1) (wrapping past midnight when h0 > h1)."""
    h0, h1 = hours
    return f"(hour >= {h0} AND hour < {h1})" if h0 < h1 else f"(hour >= {h0} OR hour < {h1})"


def daily_sql(hours: tuple[int, int] | None = None) -> dict[str, str]:
    """The three daily tables per (date, sub) from ``ev``; ``hours`` restricts the location."""
    where = f"WHERE {hours_sql(hours)}" if hours is not None else ""
    per_type = ", ".join(
        f"CAST(sum(CASE WHEN event_type = '{t}' THEN 1 ELSE 0 END) AS BIGINT) AS n_{t}" for t in ("call", "sms", "data")
    )
    daily = f"""
        WITH loc AS (SELECT * FROM ev {where}),
        lastr AS (SELECT date, sub, admin3, row_number() OVER (
            PARTITION BY date, sub ORDER BY ts DESC, cell_ix ASC) AS r FROM loc),
        per AS (SELECT date, sub, admin3, count(*) AS n, max(ts) AS t FROM loc GROUP BY date, sub, admin3),
        mcr AS (SELECT date, sub, admin3, row_number() OVER (
            PARTITION BY date, sub ORDER BY n DESC, t DESC, admin3 ASC NULLS LAST) AS r FROM per),
        counts AS (SELECT date, sub, CAST(count(*) AS BIGINT) AS n_events,
            CAST(sum(CASE WHEN {hours_sql(NIGHT)} THEN 1 ELSE 0 END) AS BIGINT) AS n_night, {per_type}
            FROM ev GROUP BY date, sub)
        SELECT c.sub, c.n_events, c.n_night, c.n_call, c.n_sms, c.n_data,
            l.admin3 AS unit_last, m.admin3 AS unit_mc, c.date
        FROM counts c
        LEFT JOIN lastr l ON l.date = c.date AND l.sub = c.sub AND l.r = 1
        LEFT JOIN mcr m ON m.date = c.date AND m.sub = c.sub AND m.r = 1"""
    return {
        "daily": daily,
        "cellcounts": "SELECT sub, cell_ix, CAST(count(*) AS BIGINT) AS n, date FROM ev GROUP BY date, sub, cell_ix",
        "contacts": "SELECT DISTINCT sub, counterpart, date FROM ev "
        "WHERE counterpart IS NOT NULL AND counterpart <> sub",
    }


def _in(days: list[dt.date]) -> str:
    return "date IN (" + ", ".join(f"DATE '{d.isoformat()}'" for d in days) + ")"


def modal_sql(days: list[dt.date], column: str = "unit_last") -> str:
    """F2: sub, modal (ties: the most recent day, then the smallest pcode)."""
    return f"""
        SELECT sub, unit AS modal FROM (
            SELECT sub, {column} AS unit, row_number() OVER (
                PARTITION BY sub ORDER BY count(*) DESC, max(date) DESC, {column} ASC) AS r
            FROM daily WHERE {_in(days)} AND {column} IS NOT NULL GROUP BY sub, {column}) t
        WHERE r = 1"""


def _majority(name: str, days: list[dt.date], min_total_days: int | None) -> str:
    """F3 over ``days`` as three CTEs ending in ``name`` (sub, active_days, majority)."""
    floor = math.ceil(0.5 * len(days)) if min_total_days is None else min_total_days
    return f"""
        {name}_k AS (SELECT sub, unit_last AS unit, count(*) AS k, row_number() OVER (
            PARTITION BY sub ORDER BY count(*) DESC, unit_last ASC) AS r
            FROM daily WHERE {_in(days)} AND unit_last IS NOT NULL GROUP BY sub, unit_last),
        {name}_a AS (SELECT sub, count(DISTINCT date) AS active_days FROM daily WHERE {_in(days)} GROUP BY sub),
        {name} AS (SELECT a.sub, a.active_days,
            CASE WHEN 2 * t.k > greatest(a.active_days, {floor}) THEN t.unit END AS majority
            FROM {name}_a a LEFT JOIN {name}_k t ON t.sub = a.sub AND t.r = 1)"""


def features_sql(
    baseline: list[dt.date],
    followup: list[dt.date],
    later: list[dt.date] | None = None,
    *,
    min_total_days: int | None = None,
    min_active_days: int = 1,
) -> str:
    """The per-subscriber table of :func:`.features.subscriber_features`, same columns."""
    rad = repr(math.pi / 180)
    dist = (
        f"2 * {R_EARTH_KM!r} * asin(sqrt(power(sin((ce.clat - p.lat) * {rad} / 2), 2)"
        f" + cos(p.lat * {rad}) * cos(ce.clat * {rad}) * power(sin((ce.clon - p.lon) * {rad} / 2), 2)))"
    )
    b = _in(baseline)
    ctes = [
        f"""act AS (SELECT sub, count(DISTINCT date) AS active_days, sum(n_events) AS n_events,
            sum(n_call) AS n_call, sum(n_sms) AS n_sms, sum(n_data) AS n_data,
            CAST(100 AS DOUBLE) * sum(n_night) / sum(n_events) AS night_pct FROM daily WHERE {b} GROUP BY sub)""",
        f"""per AS (SELECT q.sub, q.n, c.lon, c.lat FROM (SELECT sub, cell_ix, sum(n) AS n FROM cellcounts
            WHERE {b} GROUP BY sub, cell_ix) q LEFT JOIN cells c ON c.cell_ix = q.cell_ix)""",
        """centre AS (SELECT sub, sum(lat * n) / sum(n) AS clat, sum(lon * n) / sum(n) AS clon, sum(n) AS total
            FROM per GROUP BY sub)""",
        f"""rog AS (SELECT p.sub, sqrt(sum(power({dist}, 2) * p.n) / max(ce.total)) AS rog_km
            FROM per p JOIN centre ce ON ce.sub = p.sub GROUP BY p.sub)""",
        f"deg AS (SELECT sub, CAST(count(DISTINCT counterpart) AS BIGINT) AS degree FROM contacts WHERE {b} GROUP BY sub)",
        _majority("h0", baseline, min_total_days),
        _majority("h1", followup, min_total_days),
    ]
    status = """CASE WHEN h0.majority IS NULL THEN 'no_home' WHEN h1.active_days IS NULL THEN 'inactive'
            WHEN h1.majority IS NULL THEN 'unlocatable' WHEN h1.majority = h0.majority THEN 'stayed'
            ELSE 'displaced' END"""
    cols = f"""a.sub, a.active_days, a.n_events, a.n_call, a.n_sms, a.n_data, a.night_pct, rog.rog_km,
        coalesce(deg.degree, 0) AS degree, h0.majority AS home0, h1.majority AS home1,
        h1.active_days AS followup_days, {status} AS status"""
    joins = """FROM act a LEFT JOIN rog ON rog.sub = a.sub LEFT JOIN deg ON deg.sub = a.sub
        LEFT JOIN h0 ON h0.sub = a.sub LEFT JOIN h1 ON h1.sub = a.sub"""
    if later:
        ctes.append(_majority("h2", later, min_total_days))
        cols += f""", h2.majority AS home2, CASE WHEN {status} <> 'displaced' THEN 'na'
            WHEN h2.majority = h0.majority THEN 'returned' ELSE 'not_returned' END AS returned"""
        joins += " LEFT JOIN h2 ON h2.sub = a.sub"
    return f"WITH {', '.join(ctes)} SELECT {cols} {joins} WHERE a.active_days >= {min_active_days}"
