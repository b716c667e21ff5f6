"""safemicro.background: a call in a thread whose result or exception reaches the caller."""

from __future__ import annotations

import threading

import pytest

from safemicro.background import Background
from safemicro.errors import SafemicroError


def test_result_is_the_calls_value():
    assert Background(lambda a, b=0: a + b, 2, b=3).result() == 5


def test_the_calls_error_is_raised_in_the_caller():
    def fail():
        raise SafemicroError("not a readable Parquet file", file="x.parquet")

    job = Background(fail)
    with pytest.raises(SafemicroError, match="x.parquet"):
        job.result()


def test_runs_beside_the_caller():
    """The call waits for an event only the caller sets after starting it: run inline, it
    would time out."""
    started = threading.Event()
    go = threading.Event()

    def wait() -> bool:
        started.set()
        return go.wait(timeout=10)

    job = Background(wait)
    assert started.wait(timeout=10)
    go.set()
    assert job.result() is True
