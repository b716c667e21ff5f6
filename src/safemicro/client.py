"""Python client of the aggregate service: protected tables as Polars (or pandas) frames.

    from safemicro.client import Client
    c = Client("http://127.0.0.1:8700", token)
    table = c.query("displaced", "count", by=["province", "status"])
    table.filter(pl.col("status") == "suppressed")

Every response of the node is signed (Ed25519); the client checks the signature against
the node's key (fetched once from /v1/keys, or given as `public_key` to pin it) and raises
if it does not verify. `combine` adds tables from several providers cell by cell.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from safemicro.errors import SafemicroError

SIGNATURE_HEADER = "X-Safemicro-Signature"


class ServiceError(SafemicroError):
    """The node refused a request: `status` is the HTTP status, the message the node's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass
class Release:
    """One verified answer: the table, the raw signed bytes and their signature."""

    table: pl.DataFrame
    meta: dict
    body: bytes
    signature: str
    extra: dict = field(default_factory=dict)


class Client:
    """Talk to one node with one token."""

    def __init__(
        self, url: str, token: str, *, public_key: str | None = None, verify: bool = True, timeout: float = 60.0
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.token = token
        self.verify = verify
        self._public_key_pem = public_key
        self._key = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self.last: Release | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- plumbing

    def _node_key(self):
        from cryptography.hazmat.primitives import serialization

        if self._key is None:
            pem = self._public_key_pem
            if pem is None:
                r = self._http.get("/v1/keys")
                pem = r.json()["public_key"]
            self._key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        return self._key

    def _checked(self, r) -> dict:
        if self.verify:
            from cryptography.exceptions import InvalidSignature

            sig = r.headers.get(SIGNATURE_HEADER)
            if not sig:
                raise SafemicroError("response carries no signature; refusing it")
            try:
                self._node_key().verify(base64.b64decode(sig), r.content)
            except (InvalidSignature, ValueError):
                raise SafemicroError("response signature does not verify; refusing it") from None
        try:
            data = r.json()
        except json.JSONDecodeError:
            raise ServiceError(r.status_code, r.text[:200]) from None
        if r.status_code >= 400:
            raise ServiceError(r.status_code, data.get("error", str(data)) if isinstance(data, dict) else str(data))
        return data

    # ----- API

    def catalogue(self) -> dict:
        """What this token may ask: datasets, query kinds, dimensions with values, measures."""
        return self._checked(self._http.get("/v1/catalogue"))

    def budget(self, dataset: str) -> dict:
        return self._checked(self._http.get(f"/v1/budget/{dataset}"))

    def release(
        self,
        dataset: str,
        kind: str = "count",
        *,
        by: Sequence[str] = (),
        measure: str | None = None,
        quantile: float | None = None,
        filters: dict[str, Sequence[str]] | None = None,
        time: tuple[str, str] | None = None,
        margins: bool = True,
    ) -> Release:
        """Run a query and return the verified release (table, metadata, signed bytes)."""
        spec: dict[str, Any] = {"dataset": dataset, "kind": kind, "by": list(by), "margins": margins}
        if measure is not None:
            spec["measure"] = measure
        if quantile is not None:
            spec["quantile"] = quantile
        if filters:
            spec["filters"] = {k: list(v) for k, v in filters.items()}
        if time is not None:
            spec["time"] = {"start": time[0], "end": time[1]}
        r = self._http.post("/v1/query", json=spec)
        data = self._checked(r)
        cells = data.pop("cells")
        schema = {
            **{d: pl.String for d in by},
            "value": pl.Float64,
            "status": pl.String,
            "rule": pl.String,
            "lower": pl.Float64,
            "upper": pl.Float64,
            "rounded_to": pl.Int64,
            "noise_scale": pl.Float64,
            "noise_variance": pl.Float64,
        }
        table = pl.DataFrame(cells, schema=schema) if cells else pl.DataFrame(schema=schema)
        self.last = Release(table=table, meta=data, body=r.content, signature=r.headers.get(SIGNATURE_HEADER, ""))
        return self.last

    def query(self, dataset: str, kind: str = "count", *, pandas: bool = False, **kwargs) -> Any:
        """The protected table (dims..., value, status, rule, lower, upper, rounded_to,
        noise_scale) as a Polars frame, or pandas with `pandas=True`."""
        table = self.release(dataset, kind, **kwargs).table
        return table.to_pandas() if pandas else table


def combine(tables: Sequence[pl.DataFrame], dims: Sequence[str]) -> pl.DataFrame:
    """Add protected tables of several providers cell by cell (intervals for suppressed
    cells, summed noise variances); see safemicro.service.combine."""
    from safemicro.service.combine import combine as run

    return run(list(tables), list(dims))
