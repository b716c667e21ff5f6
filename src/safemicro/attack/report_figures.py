"""The figures of the attack report (inline SVG): success against the baselines, risk by
frequency class of the released key, and the variables that drive successful links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib import rc_context

from safemicro.report.plots import _RC, AMBER, BLUE, GREY, RED, TEAL, _new_figure, _plain, figure_to_svg

# -- figures -----------------------------------------------------------------------------------


def _bars(
    labels: list[str],
    series: dict[str, list[float | None]],
    colours: list[str],
    ylabel: str,
    name: str,
    description: str,
    errors: dict[str, list[tuple[float, float] | None]] | None = None,
) -> Markup:
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.0)
        ax = fig.add_subplot()
        x = np.arange(len(labels))
        width = 0.8 / max(len(series), 1)
        for i, ((label, values), colour) in enumerate(zip(series.items(), colours)):
            v = np.array([np.nan if a is None else 100 * a for a in values])
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, v, width * 0.92, color=colour, label=_plain(label))
            if errors and errors.get(label):
                for p, e, val in zip(pos, errors[label], v):
                    if e is not None and np.isfinite(val):
                        ax.plot([p, p], [100 * e[0], 100 * e[1]], color="#1f2933", lw=1)
        ax.set_xticks(x, [_plain(s) for s in labels])
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over a bar
        ax.grid(axis="x", visible=False)
        return Markup(figure_to_svg(fig, name, description))


def _group_figure(groups: dict[str, list[Mapping[str, Any]]], name: str) -> Markup | None:
    """True match rate by frequency class of the released key, one line per scenario."""
    rows = {k: [g for g in v if g["by"].startswith("released key")] for k, v in groups.items()}
    rows = {k: v for k, v in rows.items() if v}
    if not rows:
        return None
    classes = ["1", "2", "3-4", "5-9", "10+"]
    colours = [GREY, BLUE, TEAL, AMBER, RED, "#6b4c9a"]
    with rc_context(_RC):
        fig = _new_figure(6.8, 3.0)
        ax = fig.add_subplot()
        for (label, gs), colour in zip(rows.items(), colours * 3):
            by = {g["group"]: g["true_match_rate"] for g in gs}
            ax.plot(
                range(len(classes)),
                [100 * by[c] if c in by else np.nan for c in classes],
                "o-",
                color=colour,
                label=_plain(label),
            )
        ax.set_xticks(range(len(classes)), classes)
        ax.set_xlabel("released records sharing the person's released key (fk)")
        ax.set_ylabel("people re-identified (%)")
        ax.set_ylim(0, 105)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return Markup(figure_to_svg(fig, name, "re-identification by frequency class of the released key"))


def _driver_figure(drivers: dict[str, list[Mapping[str, Any]]], name: str) -> Markup | None:
    rows = {k: v for k, v in drivers.items() if v}
    if not rows:
        return None
    variables = list(dict.fromkeys(d["variable"] for v in rows.values() for d in v))
    colours = [GREY, BLUE, TEAL, AMBER, RED, "#6b4c9a"]
    with rc_context(_RC):
        fig = _new_figure(6.8, max(2.2, 0.9 + 0.32 * len(variables) * max(1, len(rows)) ** 0.5))
        ax = fig.add_subplot()
        y = np.arange(len(variables))
        h = 0.8 / len(rows)
        for i, ((label, ds), colour) in enumerate(zip(rows.items(), colours * 3)):
            by = {d["variable"]: d["correct_lost"] for d in ds}
            ax.barh(
                y - 0.4 + h * (i + 0.5),
                [by.get(v, 0.0) for v in variables],
                h * 0.92,
                color=colour,
                label=_plain(label),
            )
        ax.set_yticks(y, [_plain(v) for v in variables])
        ax.invert_yaxis()
        ax.set_xlabel("correct re-identifications lost without the variable")
        ax.grid(axis="y", visible=False)
        if len(rows) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return Markup(figure_to_svg(fig, name, "variables driving successful links"))
