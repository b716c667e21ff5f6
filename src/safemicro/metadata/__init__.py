"""Documentation and publishing: DDI Codebook 2.5, HTML codebook, Data Package, NADA.

>>> from safemicro.metadata import document
>>> document("puf/", "docs/", study="study.yaml")          # doctest: +SKIP
{'csv': ..., 'datapackage': ..., 'ddi': ..., 'html': ...}

Names are imported lazily so that ``safemicro --help`` stays fast.
"""

from __future__ import annotations

from safemicro.lazy import lazy_exports

_EXPORTS = {
    "document": "safemicro.metadata.documentation",
    "build_documentation": "safemicro.metadata.documentation",
    "prefill": "safemicro.metadata.documentation",
    "build_ddi": "safemicro.metadata.ddi",
    "ddi_string": "safemicro.metadata.ddi",
    "write_ddi": "safemicro.metadata.ddi",
    "read_ddi": "safemicro.metadata.ddi",
    "validate_ddi": "safemicro.metadata.ddi",
    "render_codebook": "safemicro.metadata.codebook_html",
    "write_datapackage": "safemicro.metadata.datapackage",
    "datapackage_descriptor": "safemicro.metadata.datapackage",
    "plan_publication": "safemicro.metadata.nada",
    "send": "safemicro.metadata.nada",
    "write_requests": "safemicro.metadata.nada",
    "Resource": "safemicro.metadata.nada",
    "Study": "safemicro.metadata.study",
    "load_study": "safemicro.metadata.study",
    "Documentation": "safemicro.metadata.model",
    "summarize_dataset": "safemicro.metadata.summary",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
