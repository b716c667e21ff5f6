"""The record-linkage machinery behind :class:`safemicro.attack.linkage.LinkageEvaluator`.

* ``inputs``: the intruder's files checked against the release, and several files combined
  on the intruder's identifier (the mosaic);
* ``encoding``: both files coded on the linking columns, and the per-person outcome;
* ``exact``: exact agreement with missing values as wildcards;
* ``pairwise``: Gower-like distance and Fellegi–Sunter, pair by pair within blocks.
"""
