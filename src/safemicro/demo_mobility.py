"""The mobile-data section of the demo, and the analyst's displacement table over HTTP.

:func:`run_mobile_demo` plays both sides: the operator generates call records with a
displacement scenario, ingests them under its own HMAC key, computes the features and the
reference table and serves them (a real node on 127.0.0.1); the analyst, with a token,
asks the protected tables and writes the displacement report. :func:`analyst_report` is
the analyst's part alone (``safemicro mobility table``).
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from safemicro.cli_support import friendly, out

if TYPE_CHECKING:
    import polars as pl
    from rich.console import Console

    from safemicro.client import Client

ORIGIN = "R1D1"


def _ask(client: Client, dataset: str, kind: str, **kw) -> pl.DataFrame | None:
    """A released table, or None when the ledger refused it (409)."""
    from safemicro.client import ServiceError  # the client imports polars: not at CLI start-up

    try:
        return client.query(dataset, kind, **kw)
    except ServiceError as e:
        if e.status == 409:  # refused by the ledger: the report says so instead
            return None
        raise


def analyst_report(
    client: Client,
    out: str | Path,
    *,
    dataset: str = "mobility",
    origin_level: str = "home0_admin2",
    origins: list[str] | None = None,
    population: pl.DataFrame | None = None,
) -> dict:
    """Ask the displacement tables, derive estimates from protected counts, write the report."""
    import polars as pl

    from safemicro.client import ServiceError
    from safemicro.mobility.estimates import above_normal, displacement_table, scaled_estimates
    from safemicro.mobility.report import write_report

    by = [origin_level]
    # flows first (on a fresh ledger the sparse table has the best chance of release), one
    # origin row at a time: where the displaced of each origin went (follow-up home, admin2)
    rows = []
    for o in origins or []:
        t = _ask(
            client, dataset, "count", by=["home1_admin2"], filters={origin_level: [o], "displacement": ["displaced"]}
        )
        if t is not None:
            rows.append(t.with_columns(pl.lit(o).alias(origin_level)))
    flows = pl.concat(rows, how="diagonal") if rows else None
    shown = _ask(client, dataset, "count", by=by, filters={"displacement": ["displaced"]})
    located = _ask(client, dataset, "count", by=by)
    if shown is None or located is None:
        raise ServiceError(409, "the node refused the displacement tables (earlier releases on these subscribers)")
    table = displacement_table(shown, located, origin_level)
    if population is not None:
        table = scaled_estimates(table, population, origin_level)
    cat = client.catalogue()["datasets"][dataset]["dimensions"]
    weeks = sorted(d for d in cat if d.startswith("wk_"))
    weekly = None
    if origins:
        rows = []
        for w in weeks:
            home = _ask(
                client,
                dataset,
                "count",
                filters={origin_level: origins[:1], w: [u for u in cat[w]["values"] if u.startswith(origins[0])]},
            )
            located_w = _ask(
                client,
                dataset,
                "count",
                filters={origin_level: origins[:1], w: [u for u in cat[w]["values"] if u != "none"]},
            )
            val = lambda t: None if t is None or t["status"][0] != "released" else float(t["value"][0])  # noqa: E731
            h, loc = val(home), val(located_w)
            rows.append({"week": w[3:], "at_home": h, "away": None if h is None or loc is None else loc - h})
        weekly = pl.DataFrame(rows, schema={"week": pl.String, "at_home": pl.Float64, "away": pl.Float64})
    z = above_normal(table, origin_level, origins) if origins else None
    notes = [
        "Every number is a released cell of the safemicro node (threshold 16, secondary suppression, "
        "differencing ledger); derived numbers use released cells only.",
    ]
    if flows is None:
        notes.append(
            "The flows table was refused by the node's differencing ledger (earlier releases on these subscribers)."
        )
    if z is not None:
        notes.append(f"Displaced share of {', '.join(origins)} against the other origins: z = {z:.1f}.")
    path = write_report(Path(out), table, flows, weekly, notes=notes, flow_dims=(origin_level, "home1_admin2"))
    return {"table": table, "flows": flows, "weekly": weekly, "z": z, "report": path}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mobile_demo(out_dir: str | Path, *, console: Console | None = None, subscribers: int = 6000) -> dict[str, Path]:
    """generate -> ingest -> features -> serve -> the analyst's displacement report."""
    import polars as pl
    import uvicorn
    import yaml
    from rich.console import Console

    from safemicro.client import Client
    from safemicro.mobility.ingest import ingest
    from safemicro.mobility.pipeline import Windows, features_and_reference
    from safemicro.mobility.pseudonym import load_key, new_key
    from safemicro.mobility.reference import dataset_config
    from safemicro.mobility.synth import Scenario, SynthConfig
    from safemicro.mobility.synth_days import generate
    from safemicro.service.app import create_app
    from safemicro.service.config import load_config
    from safemicro.service.tokens import generate_keypair, issue_token, load_private_key

    console = console or Console(quiet=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SynthConfig(
        n_subscribers=subscribers,
        days=21,
        seed=2015,
        scenario=Scenario(origins=[f"{ORIGIN}C{i}" for i in range(1, 5)], day=7, spread_days=3, outage_days=2),
    )
    console.print(f"mobile: generating call records ({subscribers} SIMs, 21 days, a displacement from {ORIGIN}) …")
    raw = generate(out / "operator" / "raw", cfg)
    key_file = new_key(out / "operator" / "pseudonym.key")
    console.print("mobile: ingesting (HMAC pseudonyms, QA) …")
    ingest(
        raw["events"],
        raw["cells"],
        raw["bridge"],
        out / "operator" / "ingested",
        load_key(key_file),
        units=raw["units"],
    )
    start = cfg.start
    windows = Windows(
        (start, start + dt.timedelta(days=7)), (start + dt.timedelta(days=11), start + dt.timedelta(days=21))
    )
    console.print("mobile: daily tables and per-subscriber features …")
    node = features_and_reference(out / "operator" / "ingested", out / "operator" / "node", windows)
    keys = out / "operator" / "keys"
    keys.mkdir(exist_ok=True)
    generate_keypair(keys / "issuer")
    generate_keypair(keys / "node")
    ref = pl.read_parquet(node["reference"])
    service = {
        "audience": "mobile-demo",
        "database": "duckdb:///state.duckdb",
        "issuer_public_key": "keys/issuer.pub",
        "signing_key": "keys/node.key",
        "audit_log": "audit.jsonl",
        "datasets": {"mobility": dataset_config(ref, str(node["reference"].resolve()))},
    }
    config = out / "operator" / "service.yaml"
    config.write_text(yaml.safe_dump(service, sort_keys=False))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(load_config(config)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        grants = [
            {
                "dataset": "mobility",
                "queries": ["count", "crosstab"],
                "dimensions": ["*"],
                "measures": ["*"],
                "actions": ["query", "catalogue", "budget"],
            }
        ]
        tok = issue_token(
            load_private_key(keys / "issuer.key"), audience="mobile-demo", subject="analyst", grants=grants, minutes=30
        )
        console.print(f"mobile: serving on http://127.0.0.1:{port}; the analyst asks the displacement tables …")
        pop = pl.read_csv(raw["units"]).group_by(pl.col("admin2").alias("home0_admin2")).agg(pl.col("population").sum())
        with Client(f"http://127.0.0.1:{port}", tok) as client:
            result = analyst_report(client, out / "displacement_report.html", origins=[ORIGIN], population=pop)
    finally:
        server.should_exit = True
        thread.join(10)
    result["table"].write_csv(out / "displacement_table.csv")
    return {
        "mobile raw events": raw["events"],
        "mobile service config": config,
        "displacement table": out / "displacement_table.csv",
        "displacement report": result["report"],
    }


def register_table(mobility_app: typer.Typer) -> None:
    """Add ``safemicro mobility table`` (the analyst's report from a running node)."""

    @mobility_app.command("table")
    @friendly
    def table(
        url: str = typer.Argument(..., help="the node's URL, e.g. http://127.0.0.1:8700"),
        token_file: Path = typer.Option(..., "--token", help="file holding the analyst's token"),
        output: Path = typer.Option(Path("displacement_report.html"), "--out", help="HTML report to write"),
        dataset: str = typer.Option("mobility", "--dataset", help="the mobility dataset"),
        origins: str = typer.Option("", "--origins", help="origin units to follow (comma-separated)"),
        origin_level: str = typer.Option("home0_admin2", "--level", help="origin dimension"),
        population: Path | None = typer.Option(None, "--population", help="CSV with the origin column and population"),
    ) -> None:
        """The analyst's displacement table and report, from protected tables only."""
        import polars as pl

        from safemicro.client import Client

        pop = pl.read_csv(population) if population else None
        names = [o.strip() for o in origins.split(",") if o.strip()] or None
        with Client(url, token_file.read_text().strip()) as client:
            result = analyst_report(
                client, output, dataset=dataset, origin_level=origin_level, origins=names, population=pop
            )
        out.print(result["table"])
        out.print(f"wrote {result['report']}", highlight=False)
