"""What the curator's guide pages share at build time (markdown-exec runs their Python).

The example survey is generated once per build and written as Stata into a temporary
folder, so every page reads the same file a curator would; ``svg(fig)`` inlines a
matplotlib figure (no image files, nothing fetched).
"""

from __future__ import annotations

import io
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
warnings.filterwarnings("ignore", category=UserWarning)


@lru_cache(maxsize=1)
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="safemicro-guide-"))


@lru_cache(maxsize=1)
def survey_file() -> str:
    """The bundled example survey (2 000 households) as a Stata file, written once."""
    import safemicro.io as sio
    from safemicro.examples import generate_survey

    path = workdir() / "survey.dta"
    sio.write(generate_survey(), path)
    return str(path)


@lru_cache(maxsize=1)
def suf_bundle() -> str:
    """The scientific use file bundle of the example (its reviewed SUF plan), written once."""
    import safemicro
    from safemicro.examples import SURVEY_PLAN

    out = workdir() / "suf"
    safemicro.anonymize(survey_file(), SURVEY_PLAN).write(out)
    return str(out)


def svg(fig) -> str:
    """The figure as inline SVG (printed by a block with html="1")."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f} %"
