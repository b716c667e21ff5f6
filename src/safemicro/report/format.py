"""Shared by every report page: tier and role names, forgiving number formatters, the
Jinja environment (autoescaping, strict undefined, the package's templates)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

RULE_HIGH_RISK = 0.1

TIERS = {
    "puf": ("Public use file", "anyone may download it; the strictest protection applies"),
    "suf": ("Scientific use file", "licensed to registered researchers under an agreement"),
    "enclave": ("Data enclave", "used only inside a controlled environment; outputs are checked"),
}

ROLE_LABELS = {
    "key": "key (categorical)",
    "numeric_key": "key (numeric)",
    "key_numeric": "key (numeric)",
    "sensitive": "sensitive",
    "weight": "weight",
    "household": "household id",
    "direct_id": "direct identifier",
    "strata": "strata",
    "cluster": "cluster",
    "ghost": "ghost",
    "other": "other",
}

# ---------------------------------------------------------------------------------------
# small, forgiving accessors and formatters
# ---------------------------------------------------------------------------------------


def _section(summary: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not isinstance(summary, Mapping):
        return None
    value = summary.get(name)
    return dict(value) if isinstance(value, Mapping) and value else None


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt_int(value: Any) -> str:
    """Count with thousand separators: ``4580 -> '4,580'``; ``None -> '–'``."""
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    return f"{int(round(x)):,}"


def fmt_pct(value: Any, decimals: int | None = None) -> str:
    """A value already in percent: ``0.235 -> '0.235 %'``, ``12.04 -> '12.04 %'``."""
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    if x == 0:
        return "0 %"
    if decimals is None:
        decimals = 2 if abs(x) >= 1 else 3
    return f"{x:,.{decimals}f} %"


def fmt_share(part: Any, whole: Any) -> str:
    """``part`` as a percentage of ``whole`` (``''`` when either is unknown)."""
    p, w = _num(part), _num(whole)
    if p is None or not w:
        return ""
    return fmt_pct(100.0 * p / w)


def _sig(x: float, digits: int = 3) -> str:
    """*x* (0 < |x| < 1) with *digits* significant digits, fixed notation, no trailing 0s."""
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_prob(value: Any) -> str:
    """A risk or probability in [0, 1]: ``0.0465 -> '0.0465'``, tiny values ``< 0.0001``."""
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    if x == 0:
        return "0"
    if abs(x) < 1e-4:
        return "< 0.0001"
    if abs(x) >= 1:
        return f"{x:g}"
    return _sig(x)


def fmt_target_pct(value: Any) -> str:
    """A target probability shown as percent: ``0.01 -> '1 %'``, ``0.025 -> '2.5 %'``."""
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    return f"{100 * x:.6g} %"


def fmt_er(value: Any) -> str:
    """Expected re-identifications: ``10.78 -> '10.78'``, ``1234.5 -> '1,234.5'``."""
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    return f"{x:,.2f}" if abs(x) < 100 else f"{x:,.1f}" if abs(x) < 10_000 else f"{x:,.0f}"


def fmt_num(value: Any) -> str:
    """A general number: integers with separators, floats with sensible decimals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:,.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax >= 1e-4:
        return _sig(x)
    return f"{x:.2e}"


def _value_text(value: Any) -> str:
    if value is None:
        return "∗ (missing/suppressed)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _status(ok: bool | None) -> str | None:
    if ok is None:
        return None
    return "pass" if ok else "fail"


@cache
def template_environment(package: str | None = None) -> Environment:
    """The reports' jinja environment: the templates of ``safemicro.report``, and first those
    of ``package`` (e.g. ``safemicro.attack``) when given. One environment per package,
    built once: a report never changes another's loader."""
    loader = PackageLoader("safemicro.report", "templates")
    if package is not None:
        loader = ChoiceLoader([PackageLoader(package, "templates"), loader])
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env
