"""Matplotlib figures for the HTML reports, returned as inline SVG strings.

Every function takes plain data (a Polars frame or small dicts) and returns the SVG
markup of one figure, or ``None`` when there is nothing to draw. Figures are drawn with
the object-oriented API on an Agg canvas (no pyplot, no global backend switch), text is
kept as SVG ``<text>`` (so numbers stay selectable and fonts come from the page), and
the output is deterministic: no date in the metadata, element ids salted per figure.

The figures are split by family: :mod:`.style` (palette, SVG writer), :mod:`.risk` (the
risk report's figures) and :mod:`.release` (before/after figures of the release reports).
"""

from . import release, risk
from .release import (  # noqa: F401 (private helpers re-exported for the other reports)
    AFTER,
    BEFORE,
    _finite,
    _grid,
    _short,
    _small_multiples,
    _value_fmt,
    changes_per_variable_svg,
    marginals_before_after_svg,
    quantiles_before_after_svg,
    risk_overlay_svg,
    risk_range_svg,
    violations_before_after_svg,
)
from .risk import (  # noqa: F401 (public: in risk.__all__)
    household_size_svg,
    risk_distribution_svg,
    suda_contribution_svg,
    violations_by_k,
    violations_by_k_svg,
)
from .style import (  # noqa: F401
    _RC,
    AMBER,
    BLUE,
    GREY,
    GRID,
    INK,
    MUTED,
    RED,
    TEAL,
    _attr,
    _column,
    _count_fmt,
    _new_figure,
    _plain,
    _prefix_ids,
    _risk_tick,
    figure_to_svg,
)

# the public names are each family's own list, in one place
__all__ = ["figure_to_svg"]
__all__ += risk.__all__
__all__ += release.__all__
