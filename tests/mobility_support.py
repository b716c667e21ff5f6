"""What the mobility tests share: a generated run through ingest, features and the
reference table, and a service config serving it (SDC and DP datasets, one population)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import yaml

from safemicro.mobility.ingest import ingest
from safemicro.mobility.pipeline import Windows, features_and_reference
from safemicro.mobility.pseudonym import PseudonymMap
from safemicro.mobility.reference import dataset_config
from safemicro.mobility.synth import SynthConfig
from safemicro.mobility.synth_days import generate
from service_support import make_keys

KEY = b"mobility-test-operator-key-0123"


def build_run(tmp: Path, cfg: SynthConfig, windows: Windows) -> dict:
    """generate -> ingest -> features -> reference; returns paths, frames and the truth
    keyed by pseudonym (as the operator, who holds the key, can)."""
    raw = generate(tmp / "raw", cfg)
    qa = ingest(raw["events"], raw["cells"], raw["bridge"], tmp / "ingested", KEY, units=raw["units"])
    node = features_and_reference(tmp / "ingested", tmp / "node", windows, daily_columns=True)
    truth = pl.read_parquet(raw["truth"])
    truth = truth.with_columns(subscriber=PseudonymMap(KEY).apply(truth["msisdn"]).cast(pl.String))
    return {
        "raw": raw,
        "qa": qa,
        "node": node,
        "reference": pl.read_parquet(node["reference"]),
        "features": pl.read_parquet(node["features"]),
        "truth": truth,
        "units": pl.read_csv(raw["units"]),
    }


def days(start: dt.date, a: int, b: int) -> tuple[dt.date, dt.date]:
    return (start + dt.timedelta(days=a), start + dt.timedelta(days=b))


def write_service(folder: Path, reference: Path, *, audience: str = "node-test") -> Path:
    """A service config with `mobility` (SDC, no daily columns) and `mobility_dp` (DP, with
    the daily location columns) over the same reference file."""
    make_keys(folder)
    ref = pl.read_parquet(reference)
    sdc = dataset_config(ref, str(reference))
    dp = dataset_config(ref, str(reference), dp=True)
    cfg = {
        "audience": audience,
        "database": "duckdb:///state.duckdb",
        "issuer_public_key": "issuer.pub",
        "signing_key": "node.key",
        "audit_log": "audit.jsonl",
        "max_token_minutes": 60,
        "datasets": {"mobility": sdc, "mobility_dp": dp},
    }
    path = folder / "service.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
