"""Shared test fixtures: the reference data carried in tests/data (see tests/data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

DATA = Path(__file__).resolve().parent / "data"
SDC_DATA = DATA / "sdcmicro"
SDC_REF = DATA / "sdcmicro_reference"
SD2011 = DATA / "sd2011" / "SD2011.csv"
NIST = DATA / "nist_crc"
KV7 = ["urbrur", "roof", "walls", "water", "electcon", "relat", "sex"]
KV5 = ["urbrur", "roof", "walls", "water", "sex"]

# The 10-record example of the IHSN/World Bank SDC Practice Guide: keys residence, gender,
# education, labour status, with its sampling weights.
PRACTICE_GUIDE = pl.DataFrame(
    {
        "residence": ["Urban"] * 4 + ["Rural"] + ["Urban"] * 5,
        "gender": ["Female", "Female", "Female", "Male", "Female", "Male", "Female", "Male", "Female", "Female"],
        "education": [
            "Secondary incomplete",
            "Secondary incomplete",
            "Primary incomplete",
            "Secondary complete",
            "Secondary complete",
            "Secondary complete",
            "Primary complete",
            "Post-secondary",
            "Secondary incomplete",
            "Secondary incomplete",
        ],
        "labour": [
            "Employed",
            "Employed",
            "Non-LF",
            "Employed",
            "Unemployed",
            "Employed",
            "Non-LF",
            "Unemployed",
            "Non-LF",
            "Non-LF",
        ],
        "weight": [180, 180, 215, 76, 186, 76, 180, 215, 186, 76],
    }
)


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


@pytest.fixture(scope="module")
def spark_session():
    """One local[2] SparkSession per test module (start-up ~10-20 s), stopped at its end."""
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Java is needed for Spark (make java)")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("safemicro-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # a short-lived JVM: the quick JIT tier and a small serial heap start faster
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    yield spark
    spark.stop()
