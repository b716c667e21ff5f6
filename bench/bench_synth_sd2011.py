"""Utility, cost and copying risk of safemicro's CART synthesizer on SD2011, with baselines.

SD2011 (5000 x 35, tests/data/sd2011) is split once with a fixed seed into 4000
training rows (all a generator sees) and 1000 holdout rows. Each generator draws 5000
synthetic rows. Printed per generator:

- fit and sample seconds (wall clock);
- sdmetrics QualityReport against the training rows: overall, column shapes, pair trends
  (string columns categorical, numbers numerical);
- copies, with ``safemicro.synth.safeguards``: share of synthetic rows equal to a training
  row (missing = missing); replicated uniques on the quasi-identifiers (sex, age, region,
  placesize, edu, marital: synthetic rows equal on them to a training record unique on
  them), also as the anchor study's RU@1000; Q_δ against the holdout with its bootstrap
  threshold τ;
- anonymeter 1.1 risks against the holdout with 95 % CIs: singling-out (univariate and
  multivariate), linkability (quasi-identifiers split in two) and inference of ``income``
  and ``socprof`` from the quasi-identifiers; ``--attacks`` attacks each (default 500);
- the same quality and risks after the replicated-uniques filter;
- the floor of multivariate singling-out: a fresh real sample posing as synthetic data
  (``--no-floor`` skips it).

Generators: ``cart`` (the defaults), ``cart_synthpop`` (min leaf 5, no smoothing, no tail
limits: synthpop's default CART), ``marginals`` (each column bootstrapped independently)
and ``gaussian_copula`` (SDV, only if ``sdv`` is installed).

    python bench/bench_synth_sd2011.py [--generators cart,marginals] [--attacks 500]
        [--no-privacy] [--seed 1] [--json out.json] [--cart '{"min_leaf": 20}']

``--released SETTINGS --seeds 1,2,3`` measures instead what ``safemicro.synthesize``
releases: each setting (CartSynthesizer parameters; ``null`` for independent marginals,
``"raw marginals"`` for that baseline without the safeguard, ``"gaussian copula"`` for SDV's
GaussianCopulaSynthesizer) is run through
``synthesize(train, keys=QI, n=5000, seed=s)``, so replicated uniques are *replaced by
fresh draws* as in a real release; per seed and as the mean over seeds it prints quality,
the anonymeter risks (multivariate singling-out with its CI), replicated uniques left, Q_δ
and the number of records replaced:

    python bench/bench_synth_sd2011.py --released '{"cart": {}, "leaf100": {"min_leaf": 100},
        "marginals": "raw marginals"}' --seeds 1,2,3

Needs sdmetrics and anonymeter (bench/test-only; anonymeter pins numpy<1.27 but runs
with numpy 2: install it with ``pip install --no-deps anonymeter``).
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

from safemicro.io import read
from safemicro.io.dataset import Dataset
from safemicro.synth.cart import CartSynthesizer

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "sd2011" / "SD2011.csv"
QI = ["sex", "age", "region", "placesize", "edu", "marital"]
SPLIT_SEED = 2011
N_SYNTH = 5000


def split(ds: Dataset) -> tuple[Dataset, Dataset]:
    perm = np.random.default_rng(SPLIT_SEED).permutation(ds.n)
    return ds.with_frame(ds.frame[perm[:4000]]), ds.with_frame(ds.frame[perm[4000:]])


# -- generators ---------------------------------------------------------------------------


CART_PARAMS: dict = {}


def gen_cart(train: Dataset, seed: int, **kw) -> tuple[Dataset, float, float]:
    kw = kw or CART_PARAMS
    t0 = time.perf_counter()
    model = CartSynthesizer(**kw).fit(train, seed=seed)
    t1 = time.perf_counter()
    syn = model.sample(N_SYNTH, seed=seed + 1)
    return syn, t1 - t0, time.perf_counter() - t1


def gen_cart_synthpop(train: Dataset, seed: int) -> tuple[Dataset, float, float]:
    return gen_cart(train, seed, min_leaf=5, smoothing=False, tail_k=1)


def gen_marginals(train: Dataset, seed: int) -> tuple[Dataset, float, float]:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    cols = [train.frame.get_column(c).gather(rng.integers(train.n, size=N_SYNTH)) for c in train.columns]
    return train.with_frame(pl.DataFrame(cols)), 0.0, time.perf_counter() - t0


def gen_gaussian_copula(train: Dataset, seed: int, n: int = N_SYNTH) -> tuple[Dataset, float, float]:
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    df = train.frame.to_pandas()
    t0 = time.perf_counter()
    metadata = Metadata.detect_from_dataframes({"sd2011": df})  # SDV 2.x
    model = GaussianCopulaSynthesizer(metadata)
    model.fit({"sd2011": df})
    t1 = time.perf_counter()
    syn = pl.from_pandas(model.sample(n)["sd2011"]).cast(train.frame.schema)
    return train.with_frame(syn), t1 - t0, time.perf_counter() - t1


GENERATORS = {
    "cart": gen_cart,
    "cart_synthpop": gen_cart_synthpop,
    "marginals": gen_marginals,
    "gaussian_copula": gen_gaussian_copula,
}


# -- measures -----------------------------------------------------------------------------


def quality(real: pl.DataFrame, syn: pl.DataFrame) -> dict:
    from sdmetrics.reports.single_table import QualityReport

    meta = {
        "columns": {c: {"sdtype": "numerical" if real.schema[c].is_numeric() else "categorical"} for c in real.columns}
    }
    report = QualityReport()
    report.generate(real.to_pandas(), syn.to_pandas(), meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes")
    worst = shapes.sort_values("Score").head(3)
    return {
        "overall": round(float(report.get_score()), 4),
        "shapes": round(float(props["Column Shapes"]), 4),
        "pairs": round(float(props["Column Pair Trends"]), 4),
        "worst_columns": {r.Column: round(float(r.Score), 3) for r in worst.itertuples()},
    }


def copies(train: Dataset, syn: Dataset, holdout: Dataset) -> dict:
    """Exact copies, replicated uniques (before and after the filter) and Q_δ."""
    from safemicro.synth.safeguards import drop_replicated_uniques, exact_match_rates, q_delta_check

    rates = exact_match_rates(syn.frame, train.frame, holdout.frame)
    kept = drop_replicated_uniques(train, syn, QI)
    q = q_delta_check(train.frame, syn.frame, holdout.frame, seed=0)
    return {
        "exact_copies": round(rates["synth_in_train"], 4),
        "natural_copies": round(rates["holdout_in_train"], 4),
        "replicated_uniques": int(syn.n - kept.n),
        "replicated_uniques_after_filter": int(kept.n - drop_replicated_uniques(train, kept, QI).n),
        "ru_1000": round(ru_share(train.frame, syn.frame.head(1000)), 3),
        "q_delta": round(q["q_delta"], 4),
        "q_delta_threshold": round(q["threshold"], 4),
        "q_delta_passed": q["passed"],
    }, kept


def ru_share(train: pl.DataFrame, sample: pl.DataFrame) -> float:
    """The anchor study's RU@QI: share of a sample unique on the quasi-identifiers in itself and in training."""
    t = train.group_by(QI).len().filter(pl.col("len") == 1).drop("len")
    s = sample.group_by(QI).len().filter(pl.col("len") == 1).drop("len")
    return s.join(t, on=QI, how="inner", nulls_equal=True).height / sample.height


def anonymeter_risks(
    train: pl.DataFrame, syn: pl.DataFrame, holdout: pl.DataFrame, n_attacks: int, seed: int = 0
) -> dict:
    from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator

    ori, sy, ctl = train.to_pandas(), syn.to_pandas(), holdout.to_pandas()
    out = {}

    def record(name: str, evaluator) -> None:
        r = evaluator.risk()
        out[name] = {"risk": round(float(r.value), 3), "ci": [round(float(v), 3) for v in r.ci]}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(seed)  # anonymeter's inference and linkability draw from numpy's global generator
        for mode in ("univariate", "multivariate"):
            ev = SinglingOutEvaluator(ori=ori, syn=sy, control=ctl, n_attacks=n_attacks, seed=seed)
            ev.evaluate(mode=mode)
            record(f"singling_out_{mode}", ev)
        ev = LinkabilityEvaluator(
            ori=ori,
            syn=sy,
            control=ctl,
            n_attacks=min(n_attacks, len(ctl)),
            aux_cols=(QI[:3], QI[3:]),
            n_neighbors=10,
        )
        ev.evaluate(n_jobs=1)
        record("linkability", ev)
        for secret in ("income", "socprof"):
            ev = InferenceEvaluator(
                ori=ori,
                syn=sy,
                control=ctl,
                aux_cols=QI,
                secret=secret,
                n_attacks=min(n_attacks, len(ctl)),
                regression=secret == "income",
            )
            ev.evaluate(n_jobs=1)
            record(f"inference_{secret}", ev)
    return out


def run(name: str, train: Dataset, holdout: Dataset, seed: int, n_attacks: int, privacy: bool) -> dict:
    syn, fit_s, sample_s = GENERATORS[name](train, seed)
    res: dict = {"generator": name, "fit_s": round(fit_s, 2), "sample_s": round(sample_s, 2)}
    t0 = time.perf_counter()
    res["quality"] = quality(train.frame, syn.frame)
    copy, kept = copies(train, syn, holdout)
    res["quality_after_filter"] = quality(train.frame, kept.frame)["overall"]
    res.update(copy)
    res["filter_s"] = round(time.perf_counter() - t0, 1)
    if privacy:
        t0 = time.perf_counter()
        res["anonymeter"] = anonymeter_risks(train.frame, syn.frame, holdout.frame, n_attacks, seed)
        res["anonymeter_after_filter"] = anonymeter_risks(train.frame, kept.frame, holdout.frame, n_attacks, seed)
        res["anonymeter_s"] = round(time.perf_counter() - t0, 1)
    return res


def singling_out_floor(seeds: list[int], n_attacks: int) -> dict:
    """Multivariate singling-out of a *fresh real sample* posing as synthetic data.

    SD2011 is split 2000 (original) / 2000 (fresh real, or what a generator trained on the
    original draws) / 1000 (control). A perfect generator cannot do better than fresh real
    records, so their risk is the floor of the measure.
    """
    from anonymeter.evaluators import SinglingOutEvaluator

    ds = read(DATA)
    out: dict[str, list[float]] = {"fresh real": [], "cart": [], "marginals": []}
    for seed in seeds:
        perm = np.random.default_rng(100 + seed).permutation(ds.n)
        ori, fresh, ctl = (ds.frame[perm[a:b]] for a, b in ((0, 2000), (2000, 4000), (4000, 5000)))
        rng = np.random.default_rng(seed)
        syn = {
            "fresh real": fresh,
            "cart": CartSynthesizer().fit(ds.with_frame(ori), seed=seed).sample(2000, seed=seed).frame,
            "marginals": pl.DataFrame([ori[c].gather(rng.integers(2000, size=2000)) for c in ori.columns]),
        }
        for name, frame in syn.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ev = SinglingOutEvaluator(
                    ori=ori.to_pandas(), syn=frame.to_pandas(), control=ctl.to_pandas(), n_attacks=n_attacks, seed=seed
                )
                ev.evaluate(mode="multivariate")
            out[name].append(round(float(ev.risk().value), 3))
    return out


class _Marginals:
    """Independent marginals as a fit/sample model, so ``synthesize`` can safeguard it too."""

    def fit(self, ds: Dataset, seed: int | None = None) -> _Marginals:
        self.ds = ds
        return self

    def sample(self, n: int, seed: int | None = None) -> Dataset:
        rng = np.random.default_rng(seed)
        f = self.ds.frame
        return self.ds.with_frame(pl.DataFrame([f[c].gather(rng.integers(f.height, size=n)) for c in f.columns]))


class _GaussianCopula:
    """SDV's GaussianCopulaSynthesizer as a fit/sample model, so ``synthesize`` can safeguard it too."""

    def fit(self, ds: Dataset, seed: int | None = None) -> _GaussianCopula:
        self.ds = ds
        return self

    def sample(self, n: int, seed: int | None = None) -> Dataset:
        np.random.seed(seed)
        return gen_gaussian_copula(self.ds, seed or 0, n)[0]


def run_released(
    train: Dataset, holdout: Dataset, settings: dict[str, dict], seeds: list[int], n_attacks: int
) -> list[dict]:
    """What ``safemicro.synthesize`` releases (replicated uniques on QI replaced by fresh draws), per seed."""
    from safemicro.synth.synthesis import synthesize

    rows = []
    for label, params in settings.items():
        for seed in seeds:
            t0 = time.perf_counter()
            if params == "raw marginals":  # the baseline generator as it is, no safeguard
                syn, replaced = gen_marginals(train, seed)[0], 0
            else:
                model = (
                    _Marginals()
                    if params is None
                    else _GaussianCopula()
                    if params == "gaussian copula"
                    else CartSynthesizer(**params)
                )
                out = synthesize(train, keys=QI, seed=seed, n=N_SYNTH, synthesizer=model)
                syn, replaced = out.dataset, out.report["safeguards"]["replicated_uniques"]["units_replaced"]
            elapsed = time.perf_counter() - t0
            copy, _ = copies(train, syn, holdout)
            risks = anonymeter_risks(train.frame, syn.frame, holdout.frame, n_attacks, seed)
            row = {
                "setting": label,
                "params": params,
                "seed": seed,
                "seconds": round(elapsed, 1),
                "replaced": replaced,
                "quality": quality(train.frame, syn.frame)["overall"],
                "ru": copy["replicated_uniques"],
                "q_delta": copy["q_delta"],
                "tau": copy["q_delta_threshold"],
                **{k: v["risk"] for k, v in risks.items()},
                "so_multi_ci": risks["singling_out_multivariate"]["ci"],
            }
            rows.append(row)
            print(json.dumps(row))
            sys.stdout.flush()
    return rows


RISKS = ("singling_out_univariate", "singling_out_multivariate", "linkability", "inference_income", "inference_socprof")


def released_table(rows: list[dict]) -> None:
    """Mean over seeds per setting; the multivariate singling-out with the range of per-seed CIs."""
    print(
        "| setting | seeds | quality | SO uni | SO multi (per seed) [CI lo..hi] | link | inf income | inf socprof | RU | Q_δ (τ) | replaced |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label in dict.fromkeys(r["setting"] for r in rows):
        g = [r for r in rows if r["setting"] == label]

        def m(k: str) -> float:
            return float(np.mean([r[k] for r in g]))

        multi = ", ".join(f"{r['singling_out_multivariate']:.3f}" for r in g)
        lo, hi = min(r["so_multi_ci"][0] for r in g), max(r["so_multi_ci"][1] for r in g)
        print(
            f"| {label} | {len(g)} | {m('quality'):.4f} | {m('singling_out_univariate'):.3f} "
            f"| **{m('singling_out_multivariate'):.3f}** ({multi}) [{lo:.2f}..{hi:.2f}] | {m('linkability'):.3f} "
            f"| {m('inference_income'):.3f} | {m('inference_socprof'):.3f} | {m('ru'):.1f} "
            f"| {m('q_delta'):.4f} ({m('tau'):.4f}) | {m('replaced'):.0f} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generators", default="cart,cart_synthpop,marginals,gaussian_copula")
    ap.add_argument("--attacks", type=int, default=500)
    ap.add_argument("--no-privacy", action="store_true")
    ap.add_argument("--no-floor", dest="floor", action="store_false", help="skip the singling-out floor reference")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cart", default="{}", help="CartSynthesizer parameters for 'cart', as JSON")
    ap.add_argument(
        "--released",
        help="instead: settings as JSON {label: CartSynthesizer params, null for marginals, or 'raw marginals' for the unsafeguarded baseline}, each "
        "run through safemicro.synthesize (keys QI) for every --seeds seed; prints the mean over seeds",
    )
    ap.add_argument("--seeds", default="1,2,3")
    args = ap.parse_args(argv)
    CART_PARAMS.update(json.loads(args.cart))
    train, holdout = split(read(DATA))
    if args.released:
        rows = run_released(
            train, holdout, json.loads(args.released), [int(s) for s in args.seeds.split(",")], args.attacks
        )
        print()
        released_table(rows)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 0
    print(
        f"SD2011 train {train.n} / holdout {holdout.n}; RU@QI of the 1000 holdout rows {ru_share(train.frame, holdout.frame):.3f}"
    )
    results = []
    for name in args.generators.split(","):
        if name == "gaussian_copula":
            try:
                import sdv  # noqa: F401
            except ImportError:
                print("gaussian_copula: skipped (sdv is not installed)")
                continue
        res = run(name, train, holdout, args.seed, args.attacks, not args.no_privacy)
        results.append(res)
        print(json.dumps(res))
        sys.stdout.flush()
    print()
    print(
        "| generator | fit s | sample s | quality (shapes/pairs) | exact copies | RU (RU@1000) | Q_δ (τ) | SO uni | SO multi | link | inf income | inf socprof |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for after in (False, True):
            q = r["quality"]
            a = r.get("anonymeter_after_filter" if after else "anonymeter", {})

            def cell(k: str) -> str:
                if k not in a:
                    return "-"
                lo, hi = a[k]["ci"]
                return f"{a[k]['risk']:.3f} [{lo:.2f}, {hi:.2f}]"

            label = r["generator"] + (" + RU filter" if after else "")
            quality_cell = (
                f"{r['quality_after_filter']:.3f}"
                if after
                else f"{q['overall']:.3f} ({q['shapes']:.3f}/{q['pairs']:.3f})"
            )
            ru = r["replicated_uniques_after_filter"] if after else f"{r['replicated_uniques']} ({r['ru_1000']:.3f})"
            print(
                f"| {label} | {r['fit_s']} | {r['sample_s']} | {quality_cell} | {r['exact_copies']:.4f} | {ru} "
                f"| {r['q_delta']:.4f} ({r['q_delta_threshold']:.4f}) | {cell('singling_out_univariate')} "
                f"| {cell('singling_out_multivariate')} | {cell('linkability')} | {cell('inference_income')} "
                f"| {cell('inference_socprof')} |"
            )
    if not args.no_privacy and args.floor:
        floor = singling_out_floor([1, 2, 3], args.attacks)
        print()
        print("Multivariate singling-out floor (2000 original / 2000 synthetic / 1000 control, seeds 1-3):")
        for name, risks in floor.items():
            print(f"  {name}: {np.mean(risks):.3f} {risks}")
        results.append({"singling_out_floor": floor})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
