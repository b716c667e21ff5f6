"""Keyed pseudonyms of phone numbers: HMAC-SHA256 with the operator's key, first 8 bytes.

A raw number (integer or string; spaces, dashes and a leading ``+`` are ignored) becomes an
unsigned 64-bit pseudonym. The key stays with the operator: without it the pseudonyms cannot
be recomputed from a list of numbers, and a new key changes every pseudonym. Raw numbers are
held only in memory while a partition is read (``PseudonymMap`` caches the numbers seen, so
each is hashed once per run) and are never written, logged or audited. 64 bits make a
collision among 10^7 subscribers about 3 in a million.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import polars as pl

from safemicro.errors import SafemicroError

KEY_ENV = "SAFEMICRO_MOBILITY_KEY"


def load_key(path: str | Path | None = None) -> bytes:
    """The operator key: a file's bytes (stripped), else the environment variable
    ``SAFEMICRO_MOBILITY_KEY``; at least 16 bytes."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SafemicroError("pseudonymisation key file not found", file=str(p))
        key = p.read_bytes().strip()
    else:
        key = os.environ.get(KEY_ENV, "").encode()
        if not key:
            raise SafemicroError(f"no pseudonymisation key: give --key FILE or set {KEY_ENV}")
    if len(key) < 16:
        raise SafemicroError("the pseudonymisation key must have at least 16 bytes")
    return key


def new_key(path: str | Path) -> Path:
    """Write a fresh random key (64 hex characters) readable by the owner only."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(os.urandom(32).hex() + "\n")
    p.chmod(0o600)
    return p


def canonical(values: pl.Series) -> pl.Series:
    """Numbers as digit strings: integers printed, strings without spaces, dashes, '+'."""
    s = values.cast(pl.String)
    return s.str.replace_all(r"[\s\-+]", "")


def hmac64(key: bytes, texts: list[str]) -> list[int]:
    """HMAC-SHA256 of each text under ``key``, as unsigned 64-bit integers."""
    return [int.from_bytes(hmac.digest(key, t.encode(), hashlib.sha256)[:8], "big") for t in texts]


class PseudonymMap:
    """Raw number -> pseudonym, hashing each distinct number once (kept in memory only).

    The cache is keyed by the input's own type (integers or strings), so a partition is
    joined without first turning every row into text."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._maps: dict[str, pl.DataFrame] = {}

    def __len__(self) -> int:
        return sum(m.height for m in self._maps.values())

    def apply(self, values: pl.Series) -> pl.Series:
        """The pseudonyms of ``values`` (nulls stay null), in order."""
        kind = "int" if values.dtype.is_integer() else "str"
        raw = (values.cast(pl.Int64) if kind == "int" else values.cast(pl.String)).alias("raw")
        known = self._maps.get(kind, pl.DataFrame(schema={"raw": raw.dtype, "pseudo": pl.UInt64}))
        new = raw.drop_nulls().unique().to_frame().join(known, on="raw", how="anti")
        if new.height:
            texts = canonical(new["raw"]).to_list()
            new = new.with_columns(pseudo=pl.Series(hmac64(self._key, texts), dtype=pl.UInt64))
            known = self._maps[kind] = pl.concat([known, new])
        out = raw.to_frame().join(known, on="raw", how="left", maintain_order="left")["pseudo"]
        return out.alias(values.name)
