"""The HTTP service: FastAPI routes over one :class:`~safemicro.service.node.Node`.

Every request is authenticated with a scoped token, validated against the closed
catalogue, logged to the hash-chained audit log and answered only through the node's
protection pipeline; every response body (errors included) is signed with the node's
Ed25519 key (header `X-Safemicro-Signature`). Nothing returns records; bad input gets a
4xx with a message, never a traceback.
"""

from __future__ import annotations

import json

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from safemicro.errors import SafemicroError
from safemicro.service.audit import sign_release
from safemicro.service.config import ServiceConfig
from safemicro.service.http_audit import REFUSED_KEY, BodyDigest, BodyDigestMiddleware, rejection
from safemicro.service.node import Node, Refusal
from safemicro.service.queries import Query
from safemicro.service.tokens import Principal, TokenError

SIGNATURE_HEADER = "X-Safemicro-Signature"
KEY_HEADER = "X-Safemicro-Key-Id"


# ----- HTTP


class Revocation(BaseModel):
    """A token id to put on the revocation list."""

    model_config = ConfigDict(extra="forbid")
    jti: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    reason: str = Field("", max_length=500)


def create_app(cfg: ServiceConfig, node: Node | None = None):
    """The FastAPI application of a node."""
    node = node or Node(cfg)
    bearer = HTTPBearer(auto_error=False, description="Ed25519 (EdDSA) JWT issued by `safemicro token issue`")

    app = FastAPI(
        title="safemicro aggregate service",
        version="1",
        description="Protected aggregates only: threshold, dominance, p %, secondary suppression, a "
        "differencing ledger across analysts or differential privacy with budgets; every "
        "release logged to a hash chain and every response signed (Ed25519).",
    )
    app.state.node = node

    async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        token = creds.credentials if creds else None
        known = node.known_principal(token)  # a token checked before: its window and revocation only
        if known is not None:
            return known
        try:  # verification, and the audit entry of a refusal, off the event loop
            return await run_in_threadpool(node.authenticate, token, request.url.path)
        except TokenError as e:
            raise Refusal(e.status, e.message) from None

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        content = {"error": exc.message, **({"field": exc.field} if exc.field else {})}
        return JSONResponse(status_code=exc.status, content=content, headers=headers)

    async def rejected(request: Request, status: int, reason: str) -> None:
        """Log a request refused before the node's pipeline (body hash, not the body)."""
        if request.scope.get(REFUSED_KEY):
            return  # answered 413 and logged already; the application saw a disconnected client
        await run_in_threadpool(node.audit.append, "rejected", rejection(request.scope, status, reason))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            await rejected(request, 400, "malformed JSON in the request body")
            return JSONResponse(status_code=400, content={"error": "malformed JSON in the request body"})
        parts = []
        for e in errors[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msg = str(e.get("msg", "invalid"))[:200]
            parts.append(f"{loc or 'body'}: {msg}")
        # the log gets where and what kind of problem, not pydantic's message (it quotes the input)
        await rejected(
            request,
            422,
            "; ".join(
                f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('type', 'invalid')}"
                for e in errors[:5]
            ),
        )
        return JSONResponse(status_code=422, content={"error": "; ".join(parts), "problems": len(errors)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        await rejected(request, exc.status_code, str(exc.detail))
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)})

    @app.exception_handler(SafemicroError)
    async def _user(request: Request, exc: SafemicroError):
        return JSONResponse(status_code=422, content={"error": str(exc)})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        # fail closed and say nothing about the data; the traceback goes to the server's log only
        import logging

        logging.getLogger("safemicro.service").error("internal error on %s", request.url.path, exc_info=exc)
        try:
            await rejected(request, 500, f"internal error ({type(exc).__name__})")
        except Exception:  # noqa: BLE001 - the log itself failing must not hide the 500
            logging.getLogger("safemicro.service").error("could not log the internal error", exc_info=True)
        return JSONResponse(status_code=500, content={"error": "internal error; nothing was released"})

    @app.get("/v1/health", tags=["node"])
    def health() -> dict:
        return {"status": "ok", "audience": node.cfg.audience, "key_id": node.key_id}

    @app.get("/v1/keys", tags=["node"])
    def keys() -> dict:
        """The node's Ed25519 public key: verifies the `X-Safemicro-Signature` of every response."""
        return {"key_id": node.key_id, "public_key": node.public_pem, "algorithm": "Ed25519"}

    @app.get("/v1/catalogue", tags=["analyst"])
    def catalogue(who: Principal = Depends(principal)) -> dict:
        """Datasets, query kinds, dimensions (with values) and measures this token may use."""
        return node.catalogue(who)

    @app.post("/v1/query", tags=["analyst"], response_class=Response)
    def query(q: Query, who: Principal = Depends(principal)):
        """Run one catalogue query; the answer is a protected table with a status per cell."""
        body = node.query(who, q)
        return Response(content=body, media_type="application/json")

    @app.get("/v1/budget/{dataset}", tags=["analyst"])
    def budget(dataset: str, who: Principal = Depends(principal)) -> dict:
        """Privacy budget spent by this analyst and by everyone on a dataset."""
        return node.budget(who, dataset)

    @app.get("/v1/audit/checkpoint", tags=["node"])
    def checkpoint(who: Principal = Depends(principal)) -> dict:
        """The audit log's current head (seq, hash) signed with the node key: a witness who
        keeps it can later prove the log was not truncated or rewritten before that point.
        The node verifies the chain first and stops serving (503) if it no longer holds."""
        return node.checkpoint()

    @app.post("/v1/admin/revocations", tags=["provider"])
    def revoke(r: Revocation, who: Principal = Depends(principal)) -> dict:
        """Add a token id to the revocation list (needs a grant with the `revoke` action)."""
        return node.revoke(who, r.jti, r.reason)

    app.add_middleware(BodyDigestMiddleware)  # innermost: hashes the body the handlers see
    app.add_middleware(BodyLimitMiddleware, limit=cfg.max_body_bytes, node=node)
    app.add_middleware(SigningMiddleware, node=node)  # outermost: signs every response, 413s too
    return app


class BodyLimitMiddleware:
    """413 for request bodies above the configured size, before anything parses them."""

    def __init__(self, app, limit: int, node: Node | None = None) -> None:
        self.app = app
        self.limit = limit
        self.node = node  # logs each 413 (hash of the bytes received, not the bytes)

    async def _refuse(self, scope, send, digest) -> None:
        message = f"request body larger than {self.limit} bytes"
        if self.node is not None:
            from safemicro.service.http_audit import SCOPE_KEY

            scope[SCOPE_KEY] = digest
            scope[REFUSED_KEY] = True
            await run_in_threadpool(self.node.audit.append, "rejected", rejection(scope, 413, message))
        await _plain(send, 413, {"error": message})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.limit
            except ValueError:
                too_big = True
            if too_big:
                return await self._refuse(scope, send, BodyDigest())
        seen = 0
        rejected = False
        digest = BodyDigest()

        async def limited():
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                digest.update(message.get("body", b""))
                if seen > self.limit:
                    # answer 413 now; the application sees a disconnected client
                    rejected = True
                    await self._refuse(scope, send, digest)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not rejected:
                await send(message)

        await self.app(scope, limited, guarded_send)


async def _plain(send, status: int, content: dict) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SigningMiddleware:
    """Sign every response body with the node's Ed25519 key (header X-Safemicro-Signature)."""

    def __init__(self, app, node: Node) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start: dict = {}
        chunks: list[bytes] = []

        async def buffered(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                signature = sign_release(body, self.node.signing_key)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers += [
                    (b"content-length", str(len(body)).encode()),
                    (SIGNATURE_HEADER.lower().encode(), signature.encode()),
                    (KEY_HEADER.lower().encode(), self.node.key_id.encode()),
                ]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, buffered)


def create_app_from_env():
    """App factory for several uvicorn workers: the config path comes from the environment."""
    import os

    from safemicro.service.config import load_config

    return create_app(load_config(os.environ["SAFEMICRO_SERVICE_CONFIG"]))


def serve(config_path: str, host: str = "127.0.0.1", port: int = 8700, workers: int = 1) -> None:
    """Load the config, build the node and run uvicorn: one process by default; with
    `workers` > 1 (PostgreSQL only) several processes share the database, the ledger and the
    audit log."""
    import os
    from pathlib import Path

    import uvicorn

    from safemicro.service.config import load_config

    cfg = load_config(config_path)
    common = dict(host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=30)
    if workers > 1:
        if not cfg.database.startswith("postgresql"):
            raise SafemicroError(
                "several workers need a PostgreSQL database (DuckDB allows one process)", file=str(config_path)
            )
        os.environ["SAFEMICRO_SERVICE_CONFIG"] = str(Path(config_path).resolve())
        uvicorn.run("safemicro.service.app:create_app_from_env", factory=True, workers=workers, **common)
        return
    uvicorn.run(create_app(cfg), **common)
