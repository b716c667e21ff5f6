"""One BLAS thread while a node is open: the ledger's and protection's dense products are small."""

from __future__ import annotations

import threading

__all__ = ["hold_one_blas_thread", "release_blas_threads"]

_LOCK = threading.Lock()
_HELD: list = []  # [the limiter of the first node opened, the number of nodes open]


def hold_one_blas_thread() -> None:
    """Small dense products run much faster on one BLAS thread than on a busy machine's many.

    The limit is process-wide, and threadpoolctl (3.8 and later) lets only one Python thread
    change OpenBLAS's: set from a request's worker thread it is silently ignored. So a node
    holds it for its whole life, set in the thread that opens the node (the server's main
    thread); the first node opened sets it and the last one closed restores the limit from
    before (:func:`release_blas_threads`)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    import scipy.linalg  # noqa: F401 - load SciPy's BLAS too before the limit is set

    with _LOCK:
        if not _HELD:
            _HELD.append([threadpool_limits(limits=1, user_api="blas"), 0])
        _HELD[0][1] += 1


def release_blas_threads() -> None:
    """A node closes: the last one open restores the BLAS limit from before the first."""
    with _LOCK:
        if not _HELD:
            return
        _HELD[0][1] -= 1
        if _HELD[0][1] == 0:
            _HELD.pop()[0].restore_original_limits()
