"""Shared test fixtures: the reference data beside the clone (../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SDC_DATA = SHARED / "data" / "sdcmicro"
SDC_REF = SHARED / "reference" / "sdcmicro"
KV7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
KV5 = ["urbrur", "roof", "walls", "water", "sex"]


@pytest.fixture(scope="session")
def testdata() -> pl.DataFrame:
    return pl.read_csv(SDC_DATA / "testdata.csv")


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((SDC_REF / "testdata_reference.json").read_text())


def ref_csv(name: str) -> pl.DataFrame:
    return pl.read_csv(SDC_REF / name, null_values=[""])


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: renders a page in a real headless Chromium")
