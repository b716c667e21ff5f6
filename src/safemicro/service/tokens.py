"""Access tokens: Ed25519-signed JWTs with scoped grants, and their strict verification.

A provider mints tokens offline with its issuer key (`safemicro token issue`); the node
holds only the issuer's public key. Verification pins the algorithm to EdDSA before any
key is used (so `alg: none` and HS256-with-the-public-key confusion fail), requires
`exp`, `nbf`, `iat`, `aud`, `jti` and `sub`, enforces the node's own maximum lifetime, and
checks the revocation list. A grant names a dataset, query kinds, dimensions and actions;
the node's configuration is intersected with it, so it can only narrow a grant.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from safemicro.errors import SafemicroError

ALGORITHM = "EdDSA"
ACTIONS = ("query", "catalogue", "budget", "revoke")
LEEWAY_SECONDS = 30


class Grant(BaseModel):
    """What one token may do on one dataset ("*" = every dataset the node serves)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(max_length=64)
    queries: list[str] = Field(default_factory=lambda: ["count"], max_length=8)
    dimensions: list[str] = Field(default_factory=list, max_length=32)  # allowed `by`/filter dimensions
    measures: list[str] = Field(default_factory=list, max_length=32)
    actions: list[str] = Field(default_factory=lambda: ["query", "catalogue", "budget"], max_length=4)


class TokenError(Exception):
    """A refused token: `status` 401 (not authenticated) or 403 (authenticated, not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    """A verified token: who, which organisation, which token and what it grants."""

    subject: str
    organisation: str
    jti: str
    expires: int
    grants: tuple[Grant, ...] = field(default_factory=tuple)

    def grant_for(self, dataset: str, action: str) -> Grant | None:
        for g in self.grants:
            if g.dataset in (dataset, "*") and action in g.actions:
                return g
        return None


# ----- keys


def generate_keypair(out_prefix: str | Path) -> tuple[Path, Path]:
    """Write `<prefix>.key` (private, PEM, mode 0600) and `<prefix>.pub` (public, PEM)."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from safemicro.atomic import atomic_path

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    prefix = Path(out_prefix)
    priv_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for p in (priv_path, pub_path):
        if p.exists():
            raise SafemicroError("exists already; refusing to overwrite a key", file=str(p))
    with atomic_path(priv_path) as tmp:
        tmp.write_bytes(priv)
        os.chmod(tmp, 0o600)
    with atomic_path(pub_path) as tmp:
        tmp.write_bytes(pub)
    return priv_path, pub_path


def load_private_key(path: str | Path):
    """An Ed25519 private key from a PEM file (clear error otherwise)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except FileNotFoundError:
        raise SafemicroError("key file not found", file=str(p)) from None
    except (ValueError, TypeError) as e:
        raise SafemicroError(f"not a PEM private key: {e}", file=str(p)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SafemicroError("not an Ed25519 private key", file=str(p))
    return key


def load_public_key(path: str | Path):
    """An Ed25519 public key from a PEM file (clear error otherwise)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    p = Path(path)
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except FileNotFoundError:
        raise SafemicroError("key file not found", file=str(p)) from None
    except ValueError as e:
        raise SafemicroError(f"not a PEM public key: {e}", file=str(p)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SafemicroError("not an Ed25519 public key", file=str(p))
    return key


def public_pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# ----- issue


def issue_token(
    private_key,
    *,
    audience: str,
    subject: str,
    grants: Iterable[Grant | dict],
    organisation: str = "",
    minutes: float = 60,
    not_before: int | None = None,
    now: int | None = None,
    jti: str | None = None,
) -> str:
    """A signed token (EdDSA) for `subject`, valid `minutes` from `not_before` (default now)."""
    import jwt

    if minutes <= 0:
        raise SafemicroError("a token lifetime must be positive")
    now = int(time.time()) if now is None else now
    nbf = now if not_before is None else not_before
    claims = {
        "iss": "safemicro",
        "sub": subject,
        "org": organisation or subject,
        "aud": audience,
        "iat": now,
        "nbf": nbf,
        "exp": int(nbf + minutes * 60),
        "jti": jti or uuid.uuid4().hex,
        "grants": [Grant.model_validate(g).model_dump() for g in grants],
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def token_claims_unverified(token: str) -> dict:
    """The claims of a token without checking it (to print the jti to revoke)."""
    import jwt

    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise SafemicroError(f"not a token: {e}") from None


# ----- verify


class VerifiedTokens:
    """Tokens that passed :func:`verify_token`, by their exact text, with their time claims.

    An analyst sends the same token with every request; its signature, algorithm, audience,
    required claims, lifetime and grants cannot change, so they are checked once (PyJWT and
    Ed25519: ~0.3 ms of CPU a request, measured under load, issue 13). What can change is
    checked on every use: the time window (`nbf`, `exp`, `iat` with the same leeway) and the
    revocation list. A token outside its window takes the full path again, which names why
    it is refused. Bounded: the oldest entries go first."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: dict[str, tuple[Principal, float, float, float]] = {}

    def add(self, token: str, principal: Principal, nbf: float, iat: float, exp: float) -> None:
        while len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)), None)
        self._items[token] = (principal, nbf, iat, exp)

    def valid(self, token: str, now: float) -> Principal | None:
        """The principal of a verified token inside its time window now (not its revocation)."""
        item = self._items.get(token)
        if item is None:
            return None
        principal, nbf, iat, exp = item
        if exp <= now - LEEWAY_SECONDS or nbf > now + LEEWAY_SECONDS or iat > now + LEEWAY_SECONDS:
            return None
        return principal


def verify_token(
    token: str,
    public_key,
    *,
    audience: str,
    max_minutes: int,
    is_revoked: Callable[[str], bool],
    now: float | None = None,
    verified: VerifiedTokens | None = None,
) -> Principal:
    """The principal of a valid token, or TokenError(401) naming why it is refused; with
    ``verified``, a token verified before is checked again for its time window and its
    revocation only (see :class:`VerifiedTokens`)."""
    import jwt

    if not token or len(token) > 8192:
        raise TokenError(401, "missing or oversized bearer token")
    now = time.time() if now is None else now
    known = verified.valid(token, now) if verified is not None else None
    if known is not None and not is_revoked(known.jti):
        return known
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError(401, "malformed token") from None
    if header.get("alg") != ALGORITHM:
        # refuse before touching any key: alg none, HS256 signed with the public key, RS256...
        raise TokenError(401, f"token algorithm {header.get('alg')!r} refused; only {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            leeway=LEEWAY_SECONDS,
            # iat is checked below with its own message (PyJWT would report it as nbf's)
            options={"require": ["exp", "nbf", "iat", "aud", "jti", "sub"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError(401, "token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError(401, "token not yet valid (nbf in the future)") from None
    except jwt.InvalidAudienceError:
        raise TokenError(401, "token issued for another audience") from None
    except jwt.MissingRequiredClaimError as e:
        raise TokenError(401, f"token lacks the claim {e.claim!r}") from None
    except jwt.InvalidSignatureError:
        raise TokenError(401, "token signature invalid") from None
    except jwt.PyJWTError as e:
        raise TokenError(401, f"token refused: {type(e).__name__}") from None
    iat = claims["iat"]
    if isinstance(iat, bool) or not isinstance(iat, (int, float)):
        raise TokenError(401, "token claim 'iat' is not a number")
    if iat > now + LEEWAY_SECONDS:
        raise TokenError(401, "token issued in the future (iat)")
    if claims["exp"] - iat > max_minutes * 60 + LEEWAY_SECONDS:
        raise TokenError(401, f"token lifetime longer than this node allows ({max_minutes} minutes)")
    jti = str(claims["jti"])
    if is_revoked(jti):
        raise TokenError(401, "token revoked")
    try:
        grants = tuple(Grant.model_validate(g) for g in claims.get("grants", []))
    except (ValidationError, TypeError):
        raise TokenError(401, "token grants malformed") from None
    principal = Principal(
        subject=str(claims["sub"]),
        organisation=str(claims.get("org") or claims["sub"]),
        jti=jti,
        expires=int(claims["exp"]),
        grants=grants,
    )
    if verified is not None:
        verified.add(token, principal, float(claims["nbf"]), float(iat), float(claims["exp"]))
    return principal
