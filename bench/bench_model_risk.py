"""Time model-based risk on the scaled copies of testdata (7 keys, weights per household):
modRisk's τ1/τ2 (log-linear main effects and two-way interactions) with each estimator
(default, CE, PML, weightedLLM; IPF is the default's fit), the population-uniqueness
estimators (Zayatz, Pitman, SNB, Dankar's rule) and the exact individual risk.

sdcMicro's timings (tests/data/sdcmicro_reference/timings_sdcmicro.csv) have no run of
``modRisk``; its ``measure_risk`` and ``freqCalc`` are printed beside for scale (the modRisk
column reads that file too, so a later sdcMicro run with call ``modRisk_<method>`` shows).

    python bench/bench_model_risk.py [--sizes 4580,100000,1000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_assess import KEYS7, best_of, data_file, sdcmicro_timings  # noqa: E402


def main() -> None:
    import numpy as np
    import polars as pl

    from safemicro.keys import build_key_table
    from safemicro.risk.individual_exact import individual_risk_exact
    from safemicro.risk.model_risk import model_risk
    from safemicro.risk.uniqueness import population_uniqueness

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4580,100000,1000000")
    a = p.parse_args()
    ref = sdcmicro_timings()
    fmt = lambda call, n: ", ".join(f"{s:g}" for s, _ in ref.get((call, n), [])) or "-"  # noqa: E731
    print(f"{'rows':>9} {'call':<40} {'seconds':>8}  result; sdcMicro (runs)")
    for n in [int(s) for s in a.sizes.split(",")]:
        df = pl.read_parquet(data_file(n, 0.0))
        w = df["sampling_weight"].cast(pl.Float64).to_numpy()
        t_kt = best_of(lambda: build_key_table(df.select(KEYS7), KEYS7, w))
        kt = build_key_table(df.select(KEYS7), KEYS7, w)
        pi = n / float(w.sum())
        counts = np.rint(kt.count).astype(np.int64)
        rows = [
            ("key table (group-by, once)", lambda: None, t_kt, f"{kt.n_keys} keys; freqCalc {fmt('freqCalc', n)}"),
            *[
                (f"modRisk {m}, {label}", lambda m=m, i=i: model_risk(kt, interactions=i, method=m), None, m)
                for m in ("default", "CE", "PML", "weightedLLM")
                for i, label in ((1, "main effects"), (2, "two-way"))
            ],
            ("population uniqueness (4 estimators)", lambda: population_uniqueness(counts, pi), None, ""),
            ("exact individual risk", lambda: individual_risk_exact(kt.fk, kt.Fk), None, ""),
        ]
        for name, fn, t, note in rows:
            if t is None:
                t = best_of(fn)
                r = fn()
                note = (
                    f"tau1 {r.tau1:.4g}, tau2 {r.tau2:.4g} of {r.n_sample_uniques} uniques"
                    + (f", gamma {r.gamma:.3g}" if r.gamma is not None and r.method == "weightedLLM" else "")
                    + f"; sdcMicro {fmt('modRisk_' + note, n)}"
                    if hasattr(r, "tau1")
                    else f"dankar {r['dankar']:.4g} ({r['dankar_model']})"
                    if isinstance(r, dict)
                    else f"max {r.max():.4g}; measure_risk {fmt('measure_risk', n)}"
                )
            print(f"{n:>9} {name:<40} {t:8.3f}  {note}")


if __name__ == "__main__":
    main()
