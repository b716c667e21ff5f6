"""How low can multivariate singling-out go for data that looks real? A floor, with baselines.

anonymeter's multivariate singling-out risk is not zero for records that never saw the
training data: its control set is smaller than the original, and the size correction it
fits leaves a positive offset. This bench measures that floor with *fresh real records*
posing as synthetic data, next to what safemicro releases and two baselines, in the same
design as the SD2011 bench (4 000 original rows, 1 000 control rows, 5 000 "synthetic"
rows) but on NIST's national ACS excerpt (27 253 rows x 24), which has enough rows to
hold a fresh real sample:

- ``fresh real``: 5 000 other real records (a generator that learned the population
  perfectly and copied nothing specific to the training sample);
- ``cart``: ``safemicro.synthesize`` (CART, replicated uniques on the keys replaced);
- ``marginals``: each column bootstrapped independently;
- ``gaussian_copula``: SDV's GaussianCopulaSynthesizer, if ``sdv`` is installed.

Per seed (a new split each) it prints the sdmetrics quality and the multivariate
singling-out risk with its 95 % CI, then the mean per generator:

    python bench/bench_singling_out_floor.py [--seeds 1,2,3,4,5,6] [--attacks 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth_sd2011 import quality  # noqa: E402
from datafiles import not_carried  # noqa: E402

from safemicro.io import read  # noqa: E402
from safemicro.synth.synthesis import synthesize  # noqa: E402

KEYS = ["PUMA", "AGEP", "SEX", "RAC1P", "HISP", "EDU"]
N_ORI, N_CTL, N_SYN = 4000, 1000, 5000


def numeric_view(frame: pl.DataFrame) -> pl.DataFrame:
    """What the attacker queries: numbers as numbers (``N`` = missing), codes as strings."""
    cols = []
    for name in frame.columns:
        s = frame.get_column(name)
        if s.dtype == pl.String:
            as_num = s.replace("N", None).cast(pl.Float64, strict=False)
            if as_num.null_count() == s.replace("N", None).null_count() and name not in ("PUMA",):
                s = as_num
        cols.append(s.rename(name))
    return pl.DataFrame(cols)


def gaussian_copula(ori: pl.DataFrame, n: int, seed: int) -> pl.DataFrame | None:
    try:
        from sdv.metadata import Metadata
        from sdv.single_table import GaussianCopulaSynthesizer
    except ImportError:
        return None
    df = ori.to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianCopulaSynthesizer(Metadata.detect_from_dataframes({"t": df}))
        model.fit({"t": df})
        np.random.seed(seed)
        return pl.from_pandas(model.sample(n)["t"]).cast(ori.schema)


def so_multivariate(ori: pl.DataFrame, syn: pl.DataFrame, ctl: pl.DataFrame, n_attacks: int, seed: int) -> dict:
    from anonymeter.evaluators import SinglingOutEvaluator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = SinglingOutEvaluator(
            ori=ori.to_pandas(), syn=syn.to_pandas(), control=ctl.to_pandas(), n_attacks=n_attacks, seed=seed
        )
        ev.evaluate(mode="multivariate")
        r = ev.risk()
    return {"risk": round(float(r.value), 3), "ci": [round(float(v), 3) for v in r.ci]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3,4,5,6")
    ap.add_argument("--attacks", type=int, default=1000)
    args = ap.parse_args(argv)
    full = read(
        not_carried(
            "nist_crc",
            "national2019.csv",
            source="NIST CRC Diverse Communities Data Excerpts, usnistgov/SDNist, public domain",
        )
    )
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        perm = np.random.default_rng(1000 + seed).permutation(full.n)
        ori_ds = full.with_frame(full.frame[perm[:N_ORI]])
        ctl = full.frame[perm[N_ORI : N_ORI + N_CTL]]
        fresh = full.frame[perm[N_ORI + N_CTL : N_ORI + N_CTL + N_SYN]]
        rng = np.random.default_rng(seed)
        ori = ori_ds.frame
        t0 = time.perf_counter()
        cart = synthesize(ori_ds, keys=KEYS, n=N_SYN, seed=seed).dataset.frame
        cart_s = time.perf_counter() - t0
        generated = {
            "fresh real": fresh,
            "cart": cart,
            "marginals": pl.DataFrame([ori[c].gather(rng.integers(N_ORI, size=N_SYN)) for c in ori.columns]),
        }
        o, c = numeric_view(ori), numeric_view(ctl)
        gc = gaussian_copula(o, N_SYN, seed)
        views = {name: numeric_view(f) for name, f in generated.items()}
        if gc is not None:
            views["gaussian_copula"] = gc
        for name, syn in views.items():
            row = {
                "generator": name,
                "seed": seed,
                "quality": quality(o, syn)["overall"],
                **so_multivariate(o, syn, c, args.attacks, seed),
            }
            if name == "cart":
                row["seconds"] = round(cart_s, 1)
            rows.append(row)
            print(json.dumps(row))
            sys.stdout.flush()
    print("\n| generator | seeds | quality | multivariate singling-out, mean | per seed | CI range |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["generator"] for r in rows):
        g = [r for r in rows if r["generator"] == name]
        risks = [r["risk"] for r in g]
        lo, hi = min(r["ci"][0] for r in g), max(r["ci"][1] for r in g)
        print(
            f"| {name} | {len(g)} | {np.mean([r['quality'] for r in g]):.3f} | **{np.mean(risks):.3f}** "
            f"| {', '.join(f'{x:.3f}' for x in risks)} | [{lo:.2f}, {hi:.2f}] |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
