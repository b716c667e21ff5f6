"""Assessment and release at data scale: the same measures as :mod:`safemicro.assess`,
computed from a key table that an engine (:mod:`safemicro.engine`) builds where the data
lives, without ever holding the records in memory."""

from safemicro.scale.assess import assess_source, weighted_median

__all__ = ["assess_source", "weighted_median"]
