"""Score deidentified NIST CRC files with sdnist 2.4 (run with bench/.venv-sdnist/bin/python).

Usage: score_sdnist.py DATA_ROOT OUT.json TARGET:FILE.csv [TARGET:FILE.csv ...]

TARGET is ma2019 or tx2019. DATA_ROOT is laid out as sdnist expects
(massachusetts/ma2019.{csv,json}, texas/tx2019.{csv,json} and the three config files). For each file this prints and stores sdnist's own K-Marginal score (the
report's headline utility score: 2-marginals within PUMA, numbers in 20 percentile bins)
and its unique exact match rate (unique target records found in the deidentified data).
Nothing is downloaded: Dataset(..., download=False).
"""

import json
import sys
from pathlib import Path

from sdnist.load import TestDatasetName
from sdnist.metrics.kmarginal import KMarginal
from sdnist.metrics.unique_exact_matches import unique_exact_matches
from sdnist.report.dataset import Dataset  # first: sdnist.metrics imports sdnist.report
from sdnist.utils import SimpleLogger


def score(path: Path, root: Path, target: str = "ma2019") -> dict:
    ds = Dataset(path, SimpleLogger(), TestDatasetName[target], data_root=root, download=False)
    dropped = sorted(set(ds.target_data_features) - set(ds.features))
    km = KMarginal(ds.d_target_data, ds.d_synthetic_data, ds.config["k_marginal"]["group_features"])
    km.compute_score()
    matched, pct, uniques, _ = unique_exact_matches(ds.c_target_data, ds.c_synthetic_data)
    return {
        "file": str(path),
        "k_marginal": int(km.score),
        "unique_exact_matches": int(matched),
        "unique_exact_match_pct": float(pct),
        "target_unique_records": int(uniques),
        "records": int(ds.c_synthetic_data.shape[0]),
        "features_dropped_by_sdnist": dropped,
    }


if __name__ == "__main__":
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    results = [score(Path(p.split(":", 1)[1]), root, p.split(":", 1)[0]) for p in sys.argv[3:]]
    out.write_text(json.dumps(results, indent=1))
    for r in results:
        print(json.dumps(r))
