"""Audit entries for requests refused before the node's pipeline sees them.

Malformed JSON (400), bodies that fail validation (422), bodies above the size limit (413),
unknown paths or methods (404, 405) and internal errors (500) never reach
:meth:`~safemicro.service.node.Node.query`, so they are logged here as ``rejected`` entries:
method, path, status, the reason, and the SHA-256 and length of the body bytes received —
never the body itself (an analyst's malformed query can still hold what they typed).
:class:`BodyDigestMiddleware` hashes the body as it streams past and leaves the digest in
the ASGI scope for the exception handlers.
"""

from __future__ import annotations

import hashlib
from typing import Any

SCOPE_KEY = "safemicro.body"
REFUSED_KEY = "safemicro.refused"  # set when a middleware has answered and logged the request

__all__ = ["BodyDigestMiddleware", "BodyDigest", "rejection", "SCOPE_KEY", "REFUSED_KEY"]


class BodyDigest:
    """A running SHA-256 and byte count of a request body."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.bytes = 0

    def update(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.bytes += len(chunk)

    def summary(self) -> dict[str, Any]:
        return {"body_sha256": self.sha.hexdigest(), "body_bytes": self.bytes}


class BodyDigestMiddleware:
    """Put a :class:`BodyDigest` of the request body in ``scope["safemicro.body"]``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        digest = scope.setdefault(SCOPE_KEY, BodyDigest())

        async def hashed():
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))
            return message

        await self.app(scope, hashed, send)


def rejection(scope, status: int, reason: str) -> dict[str, Any]:
    """The payload of a ``rejected`` audit entry for one request."""
    digest = scope.get(SCOPE_KEY)
    body = digest.summary() if isinstance(digest, BodyDigest) else {"body_sha256": None, "body_bytes": 0}
    return {
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": int(status),
        "reason": str(reason)[:500],
        **body,
    }
