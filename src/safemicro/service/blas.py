"""One BLAS thread for the service's small dense products (the differencing ledger, protection)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["one_blas_thread"]

_CONTROLLER: list = []
_LOCK = threading.Lock()
_HELD: list = []  # the limiter of the outermost entry, while any thread is inside


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Small dense products run much faster on one BLAS thread than on a busy machine's many.

    BLAS limits are process-wide and requests are protected in several threads at once, so
    the first thread in sets the limit and the last one out restores it (one controller
    for the process: building one per call costs milliseconds)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with _LOCK:
        if not _CONTROLLER:
            import scipy.linalg  # noqa: F401 - load SciPy's BLAS too before the controller looks

            _CONTROLLER.append(ThreadpoolController())
        if not _HELD:
            _HELD.append([_CONTROLLER[0].limit(limits=1, user_api="blas"), 0])
        _HELD[0][1] += 1
    try:
        yield
    finally:
        with _LOCK:
            _HELD[0][1] -= 1
            if _HELD[0][1] == 0:
                _HELD.pop()[0].restore_original_limits()
