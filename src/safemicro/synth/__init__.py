"""Synthetic microdata: sequential CART, household-relational and differentially private
synthesizers with copy safeguards. ``safemicro.synthesize`` is the one-call entry point.

Modules: :mod:`~safemicro.synth.schema` (column kinds, special codes, exact type
restoration), :mod:`~safemicro.synth.cart`, :mod:`~safemicro.synth.household`,
:mod:`~safemicro.synth.dp`, :mod:`~safemicro.synth.safeguards`,
:mod:`~safemicro.synth.synthesis`. Imported lazily: ``import safemicro.synth`` is cheap.
"""


def synthesize(data, **kwargs):
    """See :func:`safemicro.synth.synthesis.synthesize`."""
    from safemicro.synth.synthesis import synthesize as _synthesize

    return _synthesize(data, **kwargs)
