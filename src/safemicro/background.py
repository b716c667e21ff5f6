"""Run one call in a thread while the caller goes on: overlap Polars work with imports.

Polars releases the GIL while it decodes a file or counts values, so a thread doing that
runs beside the main thread's imports and NumPy work on a second core. A start-up-sized
tool, not a pool: one thread per call, its exception re-raised by ``result()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``fn(*args, **kwargs)`` running in a daemon thread (a daemon, so that an interrupted
    command does not wait for it); :meth:`result` waits and returns or raises as the call did."""

    def __init__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(*args, **kwargs)
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e

        self._thread = threading.Thread(target=run, name=f"safemicro-{getattr(fn, '__name__', 'call')}", daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
