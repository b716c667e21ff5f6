"""One BLAS thread for the service's small dense products (the differencing ledger, protection)."""

from __future__ import annotations

__all__ = ["one_blas_thread"]

_CONTROLLER: list = []


def one_blas_thread():
    """Small dense products run much faster on one BLAS thread than on a busy machine's many.
    (One controller for the process: building one per call costs milliseconds.)"""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    if not _CONTROLLER:
        import scipy.linalg  # noqa: F401 - load SciPy's BLAS too before the controller looks

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")
