"""Reading a release bundle back: its SHA256SUMS checked, the released data with its provenance.

What :func:`safemicro.release.anonymize` takes when it derives a public use file from a
scientific use file bundle, and what the documentation writers hash files with.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError
from safemicro.io import Dataset, read


def verify_bundle(folder: str | os.PathLike[str]) -> list[str]:
    """Check a bundle's SHA256SUMS; returns the problems found (empty list: intact)."""
    folder = Path(folder)
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return [f"{sums}: missing"]
    problems = []
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        target = folder / name
        if not target.is_file():
            problems.append(f"{name}: missing")
        elif file_sha256(target) != digest:
            problems.append(f"{name}: checksum differs")
    return problems


def read_bundle(folder: str | os.PathLike[str]) -> tuple[Dataset, dict[str, Any]]:
    """The released dataset of a bundle (checksums verified) and its provenance."""
    folder = Path(folder)
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise SafemicroError("not a release bundle (no report.json)", file=str(folder))
    problems = verify_bundle(folder)
    if problems:
        raise SafemicroError("bundle does not verify: " + "; ".join(problems), file=str(folder))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    data_file = folder / report["release"]["files"]["data"]
    ds = read(data_file)
    return ds, {
        "file": data_file.name,
        "sha256": file_sha256(data_file),
        "format": data_file.suffix.lower(),
        "stem": data_file.name[: -len(data_file.suffix)],
        "derived_from": {
            "bundle": folder.name,
            "tier": report["scenario"]["tier"],
            "report_sha256": file_sha256(report_path),
        },
    }


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (what SHA256SUMS and the DDI record)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
