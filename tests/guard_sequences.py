"""Hypothesis settings shared by the differencing guard's agreement tests: each example is a
random request sequence from a seed, a frame of ``n`` records and a threshold; the guards
are slow per example (MILPs) and use function-scoped fixtures (monkeypatched switches)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def random_sequences(max_examples: int, n_min: int, n_max: int):
    """Decorate a test taking ``seed``, ``n`` and ``threshold`` (3..8)."""
    run = settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    draw = given(seed=st.integers(0, 100_000), n=st.integers(n_min, n_max), threshold=st.integers(3, 8))
    return lambda test: run(draw(test))
