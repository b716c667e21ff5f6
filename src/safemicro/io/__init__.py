"""Read and write microdata files with their labels and missing codes.

``read(path)`` / ``write(dataset, path)`` pick the format from the extension;
``from_frame(obj)`` wraps a Polars or pandas frame. See :mod:`safemicro.io.readers` and
:mod:`safemicro.io.writers` for how labels and missing codes are represented.
"""

from safemicro.io.dataset import Codebook, Dataset, VariableMeta
from safemicro.io.readers import READ_EXTENSIONS, from_frame, read
from safemicro.io.writers import WRITE_EXTENSIONS, write

__all__ = [
    "Codebook",
    "Dataset",
    "VariableMeta",
    "read",
    "write",
    "from_frame",
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
]
