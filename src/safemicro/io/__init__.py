"""Read and write microdata files with their labels and missing codes."""

from safemicro.io.dataset import Codebook, Dataset, VariableMeta

__all__ = ["Codebook", "Dataset", "VariableMeta"]
