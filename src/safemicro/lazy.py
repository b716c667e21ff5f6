"""Lazy package exports: a package's public names are imported from their module on first use.

A package lists its modules and the names each exports, ``_EXPORTS = {module: (name, ...)}``
(modules relative to the package), and sets ``__getattr__, __all__ = lazy_exports(__name__,
_EXPORTS)``, so that importing the package (and ``safemicro --help``) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, tuple[str, ...]]) -> tuple[Callable[[str], Any], list[str]]:
    """The module ``__getattr__`` of ``package`` (each name from its module in ``exports``)
    and its ``__all__`` (the names, sorted)."""
    home = {name: f"{package}.{module}" for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in home:
            return getattr(import_module(home[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(home)
