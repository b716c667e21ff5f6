"""Lazy package exports: a package's public names are imported from their module on first use.

A package lists ``_EXPORTS = {name: module}`` and sets ``__getattr__ = lazy_exports(__name__,
_EXPORTS)``, so that importing the package (and ``safemicro --help``) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: the name from its module in ``exports``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
