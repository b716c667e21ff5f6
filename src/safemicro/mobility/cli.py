"""Command-line commands of this package, added to the main `safemicro` app by `register`:
``safemicro mobility keygen|generate|ingest|features|config`` (the analyst's ``table`` is
added by the main CLI, from safemicro.demo_mobility)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer

from safemicro.cli_support import check_outputs, friendly, out
from safemicro.errors import SafemicroError

mobility_app = typer.Typer(
    no_args_is_help=True,
    help="Mobile network data: synthetic call records, ingest with HMAC pseudonyms, per-subscriber features, "
    "and the protected displacement tables of the aggregate service.",
)


def _window(text: str, name: str) -> tuple[dt.date, dt.date]:
    """START:STOP (ISO dates, STOP exclusive)."""
    try:
        a, b = text.split(":")
        return dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    except ValueError:
        raise SafemicroError(f"--{name} must be START:STOP with ISO dates (stop exclusive), got {text!r}") from None


def _edges(text: str, name: str) -> list[float]:
    """Increasing bin edges from "1,5,10"."""
    try:
        edges = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SafemicroError(f"--{name} must be numbers separated by commas, got {text!r}") from None
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise SafemicroError(f"--{name} must be increasing numbers, got {text!r}")
    return edges


def _print_paths(paths: dict[str, Path]) -> None:
    for label, p in paths.items():
        out.print(f"{label}: {p}", highlight=False)


def register(app: typer.Typer) -> typer.Typer:
    """Add `safemicro mobility ...` to the main app; returns the group (for more commands)."""
    app.add_typer(mobility_app, name="mobility")

    @mobility_app.command("keygen")
    @friendly
    def keygen(path: Path = typer.Argument(..., help="key file to write (keep it with the operator)")) -> None:
        """Write a fresh operator key for the HMAC pseudonyms (32 random bytes, hex, mode 0600)."""
        from safemicro.mobility.pseudonym import new_key

        check_outputs([path])
        out.print(f"wrote {new_key(path)}", highlight=False)

    @mobility_app.command("generate")
    @friendly
    def generate(
        output: Path = typer.Argument(..., help="folder for events/, cells.csv, bridge.csv, units.csv, truth/"),
        subscribers: int = typer.Option(20_000, "--subscribers", min=1, help="SIMs at the start"),
        days: int = typer.Option(28, "--days", min=1, help="days of records"),
        seed: int = typer.Option(..., "--seed", help="random seed (required: runs are reproducible)"),
        mean_events: float = typer.Option(8.0, "--mean-events", min=1.0, help="mean events on an active day"),
        origins: str = typer.Option("", "--origins", help="displacement origins, admin3 pcodes (comma-separated)"),
        scenario_day: int = typer.Option(10, "--scenario-day", min=0, help="day index of the displacement"),
        p_leave: float = typer.Option(0.4, "--p-leave", min=0.0, max=1.0, help="share of origin residents leaving"),
    ) -> None:
        """Generate synthetic call records (with an optional displacement scenario and its truth)."""
        from safemicro.mobility.synth import Scenario, SynthConfig
        from safemicro.mobility.synth_days import generate as run
        from safemicro.progress import progress

        names = [o.strip() for o in origins.split(",") if o.strip()]
        scenario = Scenario(origins=names, day=scenario_day, p_leave=p_leave) if names else None
        cfg = SynthConfig(n_subscribers=subscribers, days=days, seed=seed, mean_events=mean_events, scenario=scenario)
        with progress(days, "generating days") as advance:
            paths = run(output, cfg, progress=lambda d: advance(f"day {d + 1} of {days}"))
        _print_paths(paths)

    @mobility_app.command("ingest")
    @friendly
    def ingest(
        events: Path = typer.Argument(..., help="events folder (date=YYYY-MM-DD/ partitions, Parquet or CSV)"),
        cells: Path = typer.Option(
            ..., "--cells", help="cells file (cell_id, lon, lat, [version, valid_from, valid_to])"
        ),
        bridge: Path = typer.Option(..., "--bridge", help="cell -> unit bridge (cell_id, pcode, [weight])"),
        units: Path | None = typer.Option(None, "--units", help="admin hierarchy (admin3, admin2, admin1)"),
        key: Path = typer.Option(..., "--key", help="operator key file (safemicro mobility keygen)"),
        output: Path = typer.Option(..., "--out", help="folder for the clean partitions, bad rows and qa.json"),
        timezone: str = typer.Option("UTC", "--timezone", help="local time zone of the day partitions"),
    ) -> None:
        """Check, pseudonymise (HMAC) and partition call records; write the QA report."""
        from safemicro.mobility.ingest import day_partitions
        from safemicro.mobility.ingest import ingest as run
        from safemicro.mobility.pseudonym import load_key
        from safemicro.progress import progress

        n = len(day_partitions(events))
        with progress(n, "ingesting days") as advance:
            report = run(
                events, cells, bridge, output, load_key(key), units=units, timezone=timezone,
                progress=lambda d, rec: advance(f"{d}: {rec['clean_rows']} rows"),
            )  # fmt: skip
        bad = sum(d["bad_rows"] for d in report["days"])
        rows = sum(d["rows"] for d in report["days"])
        out.print(f"{len(report['days'])} days, {rows} rows, {bad} bad rows (listed in {output / 'bad_rows'})")
        out.print(f"QA report: {output / 'qa.json'}", highlight=False)

    @mobility_app.command("features")
    @friendly
    def features(
        ingested: Path = typer.Argument(..., help="the ingest output folder"),
        output: Path = typer.Option(..., "--out", help="node folder: daily/, features.parquet, reference.parquet"),
        baseline: str = typer.Option(..., "--baseline", help="START:STOP of the baseline (stop exclusive)"),
        followup: str = typer.Option(..., "--followup", help="START:STOP of the follow-up"),
        later: str | None = typer.Option(None, "--later", help="START:STOP of a later window (returns)"),
        engine: str = typer.Option(
            "polars",
            "--engine",
            help="polars, duckdb or spark (a local[2] session, or the active one under spark-submit)",
        ),
        daily_columns: bool = typer.Option(False, "--daily-columns", help="add daily locations (for a DP dataset)"),
        rog_bins: str = typer.Option("1,5,10,25,50,75", "--rog-bins", help="radius-of-gyration bin edges, km"),
        night_bins: str = typer.Option("10,25,50", "--night-bins", help="night-share bin edges, %"),
        degree_bins: str = typer.Option("1,3,6,10", "--degree-bins", help="degree bin edges"),
    ) -> None:
        """Daily tables day by day, then per-subscriber features F1-F10 and the reference table."""
        from safemicro.mobility.ingest import day_partitions
        from safemicro.mobility.pipeline import Windows, features_and_reference
        from safemicro.progress import progress

        w = Windows(
            _window(baseline, "baseline"),
            _window(followup, "followup"),
            _window(later, "later") if later else None,
        )
        bins = {
            "rog_bin": ("rog_km", _edges(rog_bins, "rog-bins")),
            "night_bin": ("night_pct", _edges(night_bins, "night-bins")),
            "degree_bin": ("degree", _edges(degree_bins, "degree-bins")),
        }
        n = len(day_partitions(ingested / "events"))
        with progress(n, "daily tables") as advance:
            paths = features_and_reference(
                ingested,
                output,
                w,
                engine=engine,
                daily_columns=daily_columns,
                bins=bins,
                progress=lambda d: advance(str(d)),
            )
        _print_paths(paths)

    @mobility_app.command("config")
    @friendly
    def config(
        node: Path = typer.Argument(..., help="node folder (with reference.parquet)"),
        issuer_public_key: Path = typer.Option(..., "--issuer-public-key", help="token issuer's key (.pub)"),
        signing_key: Path = typer.Option(..., "--signing-key", help="the node's signing key (.key)"),
        output: Path = typer.Option(..., "--out", help="service YAML to write"),
        dp: bool = typer.Option(False, "--dp", help="also declare a DP dataset (mobility_dp, daily columns)"),
    ) -> None:
        """Write a service config serving the reference table as a mobility dataset."""
        import polars as pl
        import yaml

        from safemicro.mobility.reference import dataset_config

        check_outputs([output])
        ref_path = (node / "reference.parquet").resolve()
        if not ref_path.is_file():
            raise SafemicroError("no reference.parquet (run safemicro mobility features first)", file=str(node))
        ref = pl.read_parquet(ref_path)
        bins_file = node / "bins.json"
        bins = {k: (v[0], v[1]) for k, v in json.loads(bins_file.read_text()).items()} if bins_file.is_file() else None
        datasets = {"mobility": dataset_config(ref, str(ref_path), bins=bins)}
        if dp:
            datasets["mobility_dp"] = dataset_config(ref, str(ref_path), bins=bins, dp=True)
        cfg = {
            "audience": "safemicro",
            "database": "duckdb:///safemicro-state.duckdb",
            "issuer_public_key": str(issuer_public_key.resolve()),
            "signing_key": str(signing_key.resolve()),
            "audit_log": "audit.jsonl",
            "datasets": datasets,
        }
        output.write_text(yaml.safe_dump(cfg, sort_keys=False))
        out.print(f"wrote {output}", highlight=False)

    return mobility_app
