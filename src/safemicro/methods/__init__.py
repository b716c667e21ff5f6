"""Anonymization methods: pure functions on a Dataset returning (dataset, change record).

Importing this package imports every method module, which registers its plan steps in
:data:`safemicro.methods.base.STEPS`; each module's public functions are re-exported here.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from safemicro.methods.base import STEPS, Change, MethodResult, StepContext, StepParams

__all__ = ["STEPS", "Change", "MethodResult", "StepContext", "StepParams"]

for _info in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name == "base":
        continue
    _module = _importlib.import_module(f"{__name__}.{_info.name}")
    for _name in getattr(_module, "__all__", ()):
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
