"""safemicro: responsible release of microdata on forcibly displaced people."""

__version__ = "0.1.0"


def anonymize(data, plan, **kwargs):
    """Apply a release plan to data; returns a Release (see :func:`safemicro.release.anonymize`).

    >>> release = anonymize("survey.dta", "plan.yaml")  # doctest: +SKIP
    >>> release.write("bundle/")                          # doctest: +SKIP
    """
    from safemicro.release import anonymize as _anonymize

    return _anonymize(data, plan, **kwargs)


def synthesize(data, **kwargs):
    """Synthetic data with copy safeguards; returns a Synthesis (see
    :func:`safemicro.synth.synthesis.synthesize`).

    >>> synthesis = synthesize("survey.dta", seed=1)   # doctest: +SKIP
    >>> synthesis.write("synthetic.dta")                # doctest: +SKIP
    """
    from safemicro.synth.synthesis import synthesize as _synthesize

    return _synthesize(data, **kwargs)
