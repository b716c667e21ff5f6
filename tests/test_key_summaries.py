"""Record-level risk statistics taken on the key table equal those taken on the records."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from safemicro.risk.individual import k_anonymity_violations, risk_histogram, risky_records, weighted_median

risks = st.lists(st.sampled_from([1e-7, 0.001, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0]), min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(risks, st.data())
def test_key_level_statistics_equal_record_level_ones(values, data):
    v = np.array(values)
    counts = np.array(data.draw(st.lists(st.integers(1, 7), min_size=len(v), max_size=len(v))), dtype=np.float64)
    records = np.repeat(v, counts.astype(int))
    assert weighted_median(v, counts) == np.median(records)  # exactly: the same middle records
    assert weighted_median(np.abs(v - 0.1), counts) == np.median(np.abs(records - 0.1))
    assert risk_histogram(v, counts) == risk_histogram(records)
    assert np.array_equal(
        np.repeat(risky_records(v, counts=counts, floor=0.0), counts.astype(int)), risky_records(records, floor=0.0)
    )
    fk = np.arange(1, len(v) + 1, dtype=np.float64)
    assert k_anonymity_violations(fk, (2, 3, 5), counts=counts) == k_anonymity_violations(
        np.repeat(fk, counts.astype(int))
    )
