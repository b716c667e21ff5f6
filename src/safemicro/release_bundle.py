"""Reading a release bundle back: its SHA256SUMS checked, the released data with its provenance.

What :func:`safemicro.release.anonymize` takes when it derives a public use file from a
scientific use file bundle, and what the documentation writers hash files with.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError
from safemicro.io import Dataset, read


def verify_bundle(folder: str | os.PathLike[str]) -> list[str]:
    """Check a bundle's SHA256SUMS; returns the problems found (empty list: intact)."""
    return _check_sums(Path(folder))[0]


def _check_sums(folder: Path) -> tuple[list[str], dict[str, str]]:
    """The problems :func:`verify_bundle` reports and the digest of each file checked."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return [f"{sums}: missing"], {}
    problems = []
    digests: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        target = folder / name
        if not target.is_file():
            problems.append(f"{name}: missing")
            continue
        digests[name] = file_sha256(target)
        if digests[name] != digest:
            problems.append(f"{name}: checksum differs")
    return problems, digests


@dataclass
class Bundle:
    """A release bundle read back: the released data, its provenance and the parsed report."""

    dataset: Dataset
    origin: dict[str, Any]
    report: dict[str, Any]


def open_bundle(folder: str | os.PathLike[str]) -> Bundle:
    """The bundle in ``folder`` (checksums verified), each file read and hashed once."""
    folder = Path(folder)
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise SafemicroError("not a release bundle (no report.json)", file=str(folder))
    problems, digests = _check_sums(folder)
    if problems:
        raise SafemicroError("bundle does not verify: " + "; ".join(problems), file=str(folder))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    data_file = folder / report["release"]["files"]["data"]
    ds = read(data_file)

    def digest(path: Path) -> str:
        return digests.get(path.name) or file_sha256(path)

    origin = {
        "file": data_file.name,
        "sha256": digest(data_file),
        "format": data_file.suffix.lower(),
        "stem": data_file.name[: -len(data_file.suffix)],
        "derived_from": {
            "bundle": folder.name,
            "tier": report["scenario"]["tier"],
            "report_sha256": digest(report_path),
        },
    }
    return Bundle(ds, origin, report)


def read_bundle(folder: str | os.PathLike[str]) -> tuple[Dataset, dict[str, Any]]:
    """The released dataset of a bundle (checksums verified) and its provenance."""
    bundle = open_bundle(folder)
    return bundle.dataset, bundle.origin


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (what SHA256SUMS and the DDI record)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def private_files(changes: list) -> list[tuple[str, dict]]:
    """The (mapping file, tables) pairs the steps asked for (pseudonymise's ``mapping_file``)."""
    return [(c.private["mapping_file"], c.private["mapping"]) for c in changes if "mapping_file" in c.private]


def check_private_files(files: list[tuple[str, dict]], out: Path) -> list[tuple[Path, dict]]:
    """Pseudonym mapping tables (path, {variable: original -> pseudonym frame}) go outside
    the bundle folder, to regular files only: checked before the bundle is written."""
    from safemicro.outputs import check_file

    checked = []
    bundle = out.resolve()
    for name, tables in files:
        path = Path(name).resolve()
        if path == bundle or bundle in path.parents:
            raise SafemicroError(
                "the pseudonym mapping table must be written outside the release bundle", file=str(name)
            )
        checked.append((check_file(path), tables))
    return checked


def write_private_files(checked: list[tuple[Path, dict]]) -> None:
    """Each mapping table as one CSV (variable, original, pseudonym), written atomically."""
    import polars as pl

    from safemicro.atomic import write_frame_csv

    for path, tables in checked:
        rows = [t.select(pl.lit(v).alias("variable"), "original", "pseudonym") for v, t in tables.items()]
        write_frame_csv(path, pl.concat(rows) if rows else pl.DataFrame())
