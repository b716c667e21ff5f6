"""Keyed pseudonymisation and partial masking of direct identifiers.

A registration extract shared with a partner often needs a stable identifier (to link
later deliveries, to answer a query about a case) but never the real one. *HMAC* replaces
each value by ``HMAC-SHA256(key, value)`` in hexadecimal, cut to ``length`` characters:
the same value gives the same pseudonym in every release made with the same key, and
without the key nobody can recompute or reverse it (unlike a plain hash of a phone number
or a case number, which anyone can brute-force over all possible values). The key is held
by the data provider — read from a file or an environment variable, never written into
the bundle, the report or the lock plan (only where it was read from). *Masking* keeps
the first ``keep_first`` and last ``keep_last`` characters and replaces the others
(``+999 7•• ••• •45``), for a check digit users need to see.

On request (``mapping_file``) the table original → pseudonym is written, atomically and
only outside the release bundle, for the provider to re-identify a case under its own
rules; it never enters the bundle or its reports. Missing values stay missing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods import base
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, register

__all__ = ["pseudonymise", "read_key", "MIN_KEY_BYTES"]

STEP = "pseudonymise"
MIN_KEY_BYTES = 16


def read_key(*, key_file: str | os.PathLike[str] | None = None, key_env: str | None = None) -> bytes:
    """The provider's secret key from a file (its bytes, a trailing newline dropped) or an
    environment variable; at least 16 bytes."""
    if (key_file is None) == (key_env is None):
        raise SafemicroError("give the key as key_file or key_env (exactly one)", step=STEP)
    if key_file is not None:
        try:
            key = Path(key_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise SafemicroError(
                f"cannot read the key file: {exc.strerror or exc}", file=str(key_file), step=STEP
            ) from None
        where = f"key file {str(key_file)!r}"
    else:
        value = os.environ.get(str(key_env))
        if value is None:
            raise SafemicroError(f"environment variable {key_env} (the pseudonymisation key) is not set", step=STEP)
        key, where = value.encode(), f"environment variable {key_env}"
    if len(key) < MIN_KEY_BYTES:
        raise SafemicroError(f"the key in {where} is shorter than {MIN_KEY_BYTES} bytes", step=STEP)
    return key


def _text(s: pl.Series) -> pl.Series:
    """Values as text, whole numbers without '.0' (the same id read as 12 or 12.0 agrees)."""
    if s.dtype.is_float():
        whole = (s == s.round(0)).fill_null(False)
        return pl.select(
            pl.when(whole).then(s.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(s.cast(pl.String))
        ).to_series()
    return s.cast(pl.String)


def pseudonymise(
    ds: Dataset,
    *,
    variables: str | Sequence[str],
    key: bytes | None = None,
    method: Literal["hmac", "mask"] = "hmac",
    length: int = 16,
    prefix: str = "",
    keep_first: int = 0,
    keep_last: int = 2,
    mask_char: str = "•",
) -> MethodResult:
    """Replace ``variables`` by keyed pseudonyms (``hmac``) or partially masked text (``mask``).

    The change record's ``private["mapping"]`` holds the original → pseudonym table (never
    serialised; :class:`~safemicro.release.Release` writes it outside the bundle on request).

    >>> ds = Dataset(pl.DataFrame({"case": ["A-1", "A-2", None]}))
    >>> out, _ = pseudonymise(ds, variables="case", key=b"0123456789abcdef", length=8)
    >>> out.frame["case"].to_list()[2] is None, len(out.frame["case"][0])
    (True, 8)
    """
    variables = base.column_names(variables, "variables", STEP)
    if method not in ("hmac", "mask"):
        raise SafemicroError(f"method must be hmac or mask, got {method!r}", step=STEP)
    if method == "hmac" and (key is None or len(key) < MIN_KEY_BYTES):
        raise SafemicroError(f"hmac needs a key of at least {MIN_KEY_BYTES} bytes", step=STEP)
    if not 4 <= int(length) <= 64:
        raise SafemicroError(f"length must lie between 4 and 64 hexadecimal characters, got {length}", step=STEP)
    if min(keep_first, keep_last) < 0 or len(mask_char) != 1:
        raise SafemicroError("keep_first and keep_last must be 0 or more and mask_char one character", step=STEP)
    columns, mappings = [], {}
    for name in variables:
        if name not in ds.columns:
            raise SafemicroError("no such column", column=name, step=STEP)
        text = _text(ds.frame[name])
        distinct = text.drop_nulls().unique(maintain_order=True)
        if method == "hmac":
            assert key is not None
            new = [
                prefix + hmac.new(key, v.encode("utf-8"), hashlib.sha256).hexdigest()[: int(length)] for v in distinct
            ]
        else:
            new = [_mask(v, keep_first, keep_last, mask_char) for v in distinct]
        table = pl.DataFrame({"original": distinct, "pseudonym": pl.Series(new, dtype=pl.String)})
        if method == "hmac" and table["pseudonym"].n_unique() < table.height:
            raise SafemicroError(
                f"two values got the same pseudonym at length {length}: use a longer one", column=name, step=STEP
            )
        columns.append(text.replace_strict(table["original"], table["pseudonym"], default=None).alias(name))
        mappings[name] = table
    frame = ds.frame.with_columns(columns)
    out = ds.with_frame(frame)
    for name in variables:
        meta = out.codebook.meta(name)
        meta.value_labels, meta.missing_values, meta.missing_ranges = {}, [], []
    changed, suppressed, touched = base.count_changes(ds.frame, frame, variables)
    change = Change(
        method=STEP,
        params={
            "variables": variables,
            "method": method,
            "length": int(length),
            "prefix": prefix,
            "keep_first": int(keep_first),
            "keep_last": int(keep_last),
        },
        changed=changed,
        suppressed=suppressed,
        records_touched=touched,
        details={"distinct_values": {n: t.height for n, t in mappings.items()}},
        private={"mapping": mappings},
    )
    return MethodResult(out, change)


def _mask(value: str, keep_first: int, keep_last: int, char: str) -> str:
    n = len(value)
    if keep_first + keep_last >= n:
        return char * n  # too short to show anything safely
    return value[:keep_first] + char * (n - keep_first - keep_last) + value[n - keep_last :]


# -- plan step --------------------------------------------------------------------------------


class PseudonymiseParams(StepParams):
    """Keyed pseudonyms (HMAC-SHA256 with the provider's key) or partial masking of direct identifiers."""

    variables: list[str] | None = None  # default: roles.direct_ids
    method: Literal["hmac", "mask"] = "hmac"
    key_file: str | None = None
    key_env: str | None = None
    length: int = Field(16, ge=4, le=64)
    prefix: str = ""
    keep_first: int = Field(0, ge=0)
    keep_last: int = Field(2, ge=0)
    mask_char: str = "•"
    mapping_file: str | None = None  # written outside the bundle by Release.write

    def _variables(self, ctx: StepContext) -> list[str]:
        return list(self.variables) if self.variables is not None else list(ctx.roles.direct_ids)

    def reads(self, ctx: StepContext) -> list[str]:
        return self._variables(ctx)

    def check(self, ctx: StepContext) -> None:
        if not self._variables(ctx):
            raise ValueError("pseudonymise needs variables (or roles.direct_ids)")
        if self.method == "hmac" and (self.key_file is None) == (self.key_env is None):
            raise ValueError("hmac needs the key: key_file or key_env (exactly one; the key is never written out)")


def _describe(params: PseudonymiseParams, change: Change) -> str:
    names = ", ".join(change.params["variables"])
    if params.method == "mask":
        return f"{names}: all but the first {params.keep_first} and last {params.keep_last} characters were masked."
    return (
        f"{names}: replaced by keyed pseudonyms (HMAC-SHA256 with a key held by the data provider); "
        "the same value has the same pseudonym throughout, and only the provider can link it back."
    )


@register(STEP, PseudonymiseParams, _describe)
def _step(ds: Dataset, params: PseudonymiseParams, ctx: StepContext) -> MethodResult:
    key = read_key(key_file=params.key_file, key_env=params.key_env) if params.method == "hmac" else None
    result = pseudonymise(
        ds,
        variables=params._variables(ctx),
        key=key,
        method=params.method,
        length=params.length,
        prefix=params.prefix,
        keep_first=params.keep_first,
        keep_last=params.keep_last,
        mask_char=params.mask_char,
    )
    if params.mapping_file:
        result.change.private["mapping_file"] = params.mapping_file
    return result
