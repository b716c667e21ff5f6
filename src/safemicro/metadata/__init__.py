"""Documentation and publishing: DDI Codebook 2.5, HTML codebook, Data Package, NADA.

>>> from safemicro.metadata import document
>>> document("puf/", "docs/", study="study.yaml")          # doctest: +SKIP
{'csv': ..., 'datapackage': ..., 'ddi': ..., 'html': ...}

Names are imported lazily so that ``safemicro --help`` stays fast.
"""

from __future__ import annotations

from safemicro.lazy import lazy_exports

_EXPORTS = {
    "documentation": ("document", "build_documentation", "prefill"),
    "ddi": ("build_ddi", "ddi_string", "write_ddi", "read_ddi", "validate_ddi"),
    "codebook_html": ("render_codebook",),
    "datapackage": ("write_datapackage", "datapackage_descriptor"),
    "nada": ("plan_publication", "send", "write_requests", "Resource"),
    "study": ("Study", "load_study"),
    "model": ("Documentation",),
    "summary": ("summarize_dataset",),
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
