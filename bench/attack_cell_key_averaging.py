"""The averaging attack on the cell key mode, as an analyst would run it (issue 13).

A person unique on camp, origin, sex and livelihood in the example survey; the attacker
wants their age from `sum` of age answers.

- `filters: any`: pairs of queries whose filters differ by the person's origin only
  (camp, sex, livelihood fixed; every subset of the other origins; every year window that
  holds their arrival). Each pair's difference is the age plus two perturbations; the
  mean of the distinct pairs is printed after 1, 10, 50 and all of them.
- `filters: single` (the default): those pairs are refused; what remains is a margin minus
  its other cells, over every choice of fixed dimensions and grouping dimension.

    .venv/bin/python bench/attack_cell_key_averaging.py [--persons 6] [--pairs 1500]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service_mix import setup  # noqa: E402
from bench_service_tables import cell_key_config  # noqa: E402

KEY = ["camp", "origin", "sex", "livelihood"]
DIMS = [*KEY, "year"]


def open_node(folder: Path, filters: str):
    from safemicro.service.config import load_config
    from safemicro.service.node import Node

    cfg, tok, _ = setup(folder, None)
    cell_key_config(cfg)
    doc = yaml.safe_load(cfg.read_text())
    doc["datasets"]["survey"]["policy"]["cell_key"]["filters"] = filters
    cfg.write_text(yaml.safe_dump(doc))
    node = Node(load_config(cfg))
    return node, node.authenticate(tok, "/v1/query")


def ask(node, who, q: dict) -> list[dict] | None:
    from safemicro.service.queries import Query
    from safemicro.service.refusal import Refusal

    try:
        return json.loads(node.query(who, Query.model_validate(q)))["cells"]
    except Refusal:
        return None


def targets(node, persons: int) -> list[dict]:
    rec = node.records["survey"]
    unique = rec.group_by(KEY).agg(pl.len().alias("n"), pl.col("age").first(), pl.col("year").first())
    return unique.filter(pl.col("n") == 1).sort(KEY).sample(persons, seed=3).to_dicts()


def subset_pairs(node, who, t: dict, limit: int) -> list[float]:
    """Distinct differences of pairs that differ by the person only (any filters)."""
    years = sorted(node.records["survey"]["year"].unique().to_list())
    others = [o for o in node.values["survey"]["origin"] if o != t["origin"]]
    specs = [
        (list(sub), a, b)
        for r in range(1, len(others) + 1)
        for sub in itertools.combinations(others, r)
        for i, a in enumerate(years)
        for b in years[i:]
        if a <= t["year"] <= b
    ]
    random.Random(1).shuffle(specs)
    seen, diffs = set(), []
    for sub, a, b in specs[:limit]:
        base = {"dataset": "survey", "kind": "sum", "measure": "age", "by": [], "time": {"start": a, "end": b}}
        fixed = {"camp": [t["camp"]], "sex": [t["sex"]], "livelihood": [t["livelihood"]]}
        with_them = ask(node, who, {**base, "filters": {**fixed, "origin": sorted([*sub, t["origin"]])}})
        without = ask(node, who, {**base, "filters": {**fixed, "origin": sorted(sub)}})
        if not with_them or not without:
            continue
        pair = (with_them[0]["value"], without[0]["value"])
        if None not in pair and pair not in seen:
            seen.add(pair)
            diffs.append(pair[0] - pair[1])
    return diffs


def margin_differences(node, who, t: dict) -> tuple[list[float], int]:
    """Margin minus its other cells, for every table in which the person is alone in a cell."""
    rec = node.records["survey"]
    estimates, asked = [], 0
    for r in range(len(DIMS)):
        for fixed in itertools.combinations(DIMS, r):
            for g in (d for d in DIMS if d not in fixed):
                if rec.filter(pl.all_horizontal([pl.col(d) == t[d] for d in (*fixed, g)])).height != 1:
                    continue
                q: dict = {"dataset": "survey", "kind": "sum", "measure": "age", "by": [g]}
                q["filters"] = {d: [t[d]] for d in fixed if d != "year"}
                if "year" in fixed:
                    q["time"] = {"start": t["year"], "end": t["year"]}
                asked += 1
                cells = ask(node, who, q) or []
                margin = [c["value"] for c in cells if c[g] is None]
                others = [c["value"] for c in cells if c[g] is not None and c[g] != t[g]]
                if margin and margin[0] is not None and None not in others:
                    estimates.append(margin[0] - sum(others))
    return estimates, asked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=1500, help="pairs of filters tried per person (filters: any)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="attack-ck-") as tmp:
        for mode in ("any", "single"):
            (Path(tmp) / mode).mkdir()
        node, who = open_node(Path(tmp) / "any", "any")
        print("filters: any — pairs of subset filters and windows that differ by one person")
        for t in targets(node, args.persons):
            d = np.array(subset_pairs(node, who, t, args.pairs))
            if len(d) < 2:
                print(f"  age {t['age']:5.1f}: {len(d)} distinct pair(s)")
                continue
            err = [d[:k].mean() - t["age"] for k in (1, 10, 50, len(d))]
            print(
                f"  age {t['age']:5.1f}: {len(d):4d} distinct pairs, error of the mean after 1/10/50/all: "
                + " / ".join(f"{e:+.1f}" for e in err)
                + f" (sd of one {d.std():.1f})"
            )
        node.close()
        node, who = open_node(Path(tmp) / "single", "single")
        print("filters: single (default) — the same pairs are refused; margin minus its other cells:")
        total = 0
        for t in targets(node, args.persons):
            est, asked = margin_differences(node, who, t)
            total += asked
            found = f"{len(est)} estimate(s), mean error {np.mean(est) - t['age']:+.1f}" if est else "not isolated"
            print(f"  age {t['age']:5.1f}: {found}")
        print(f"  {total} queries asked")
        node.close()


if __name__ == "__main__":
    main()
