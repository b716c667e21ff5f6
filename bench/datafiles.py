"""Where the benchmarks find their inputs, so that they run from a plain clone.

Reference data come from ``tests/data`` (carried in the repository, origin and licence in
``tests/data/README.md``). Inputs too large to carry are read from a ``shared/data`` folder
beside the clone when there is one (the development checkout); otherwise the 100 000-row
timing copy of testdata is made by ``bench/scaled.py``'s recipe, and a bench that needs any
other such file stops with a message saying which file to put where.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS_DATA = ROOT / "tests" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


def carried(*parts: str) -> Path:
    """A file carried in tests/data."""
    return TESTS_DATA.joinpath(*parts)


def not_carried(*parts: str, source: str) -> Path:
    """A file too large to carry: ``../shared/data/<parts>`` or exit naming where to put it."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        sys.exit(f"{path.name} is not carried in the repository; to run this benchmark put it at {path} ({source}).")
    return path


def scaled_100k() -> Path:
    """sdcMicro's 100 000-row timing input: the copy its timings were taken on when present
    (``../shared/data/sdcmicro/testdata_scaled_100k.csv.gz``), else a scaled copy made once
    from tests/data by the same recipe (other draws, so timings compare but cells differ)."""
    path = SHARED_DATA / "sdcmicro" / "testdata_scaled_100k.csv.gz"
    if path.exists():
        return path
    made = ROOT / "bench" / "data" / "testdata_100000_0.parquet"
    if not made.exists():
        print(
            f"note: {path} not found; making a scaled copy of testdata with bench/scaled.py "
            f"({made}), the same recipe with other draws",
            file=sys.stderr,
        )
        sys.path.insert(0, str(ROOT / "bench"))
        from scaled import scaled_testdata

        made.parent.mkdir(exist_ok=True)
        scaled_testdata(100_000).write_parquet(made)
    return made
