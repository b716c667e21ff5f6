"""Tokens: strict verification (unit) and every refusal through the real server's HTTP API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import httpx
import pytest

from safemicro.service.tokens import (
    LEEWAY_SECONDS,
    Grant,
    TokenError,
    VerifiedTokens,
    generate_keypair,
    issue_token,
    load_private_key,
    load_public_key,
    verify_token,
)
from service_support import Server, forge_unsigned, post_query, token, write_config

AUD = "node-test"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_with_public_key(claims: dict, public_pem: bytes) -> str:
    """The algorithm-confusion forgery: HMAC-SHA256 keyed with the verifier's public key."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def claims(**over) -> dict:
    now = int(time.time())
    c = {
        "sub": "mallory",
        "aud": AUD,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "x1",
        "grants": [{"dataset": "*", "queries": ["count"], "dimensions": ["*"], "actions": ["query"]}],
    }
    c.update(over)
    return c


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    priv, pub = generate_keypair(folder / "issuer")
    other, _ = generate_keypair(folder / "other")
    return {
        "folder": folder,
        "priv": load_private_key(priv),
        "pub": load_public_key(pub),
        "pub_pem": pub.read_bytes(),
        "other": load_private_key(other),
    }


def _sign(k, c: dict) -> str:
    import jwt

    return jwt.encode(c, k["priv"], algorithm="EdDSA")


def check(tok: str, keys, revoked=()) -> object:
    return verify_token(tok, keys["pub"], audience=AUD, max_minutes=60, is_revoked=lambda j: j in revoked)


def test_round_trip_carries_grants(keys):
    g = Grant(dataset="d", queries=["count", "sum"], dimensions=["province"], measures=["income"], actions=["query"])
    tok = issue_token(keys["priv"], audience=AUD, subject="alice", organisation="jips", grants=[g], minutes=5)
    p = check(tok, keys)
    assert (p.subject, p.organisation) == ("alice", "jips")
    assert p.grant_for("d", "query") == g
    assert p.grant_for("d", "revoke") is None and p.grant_for("other", "query") is None


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda k: forge_unsigned(claims()), "algorithm 'none'"),
        (lambda k: hs256_with_public_key(claims(), k["pub_pem"]), "algorithm 'HS256'"),
        (lambda k: issue_token(k["other"], audience=AUD, subject="m", grants=[]), "signature invalid"),
        (lambda k: issue_token(k["priv"], audience="another-node", subject="m", grants=[]), "another audience"),
        (
            lambda k: issue_token(
                k["priv"], audience=AUD, subject="m", grants=[], now=int(time.time()) - 7200, minutes=30
            ),
            "expired",
        ),
        (
            lambda k: issue_token(k["priv"], audience=AUD, subject="m", grants=[], not_before=int(time.time()) + 3600),
            "not yet valid",
        ),
        (
            lambda k: issue_token(
                k["priv"],
                audience=AUD,
                subject="m",
                grants=[],
                now=int(time.time()) + 3600,
                not_before=int(time.time()),
            ),
            "issued in the future",
        ),
        (lambda k: _sign(k, claims(iat="soon")), "'iat' is not a number"),
        (lambda k: issue_token(k["priv"], audience=AUD, subject="m", grants=[], minutes=24 * 60), "lifetime"),
        (lambda k: issue_token(k["priv"], audience=AUD, subject="m", grants=[], jti="gone"), "revoked"),
        (lambda k: "not.a.token", "malformed"),
    ],
    ids=[
        "alg-none",
        "hs256-public-key",
        "foreign-key",
        "audience",
        "expired",
        "nbf",
        "iat-future",
        "iat-text",
        "too-long",
        "revoked",
        "garbage",
    ],
)
def test_refused(keys, make, why):
    with pytest.raises(TokenError) as e:
        check(make(keys), keys, revoked={"gone"})
    assert e.value.status == 401 and why in e.value.message


def test_tampered_grants_break_the_signature(keys):
    tok = issue_token(keys["priv"], audience=AUD, subject="m", grants=[{"dataset": "d", "queries": ["count"]}])
    head, body, sig = tok.split(".")
    c = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    c["grants"][0]["queries"].append("sum")
    forged = f"{head}.{_b64(json.dumps(c).encode())}.{sig}"
    with pytest.raises(TokenError, match="signature"):
        check(forged, keys)


def test_missing_jti_refused(keys):
    import jwt

    c = claims()
    del c["jti"]
    with pytest.raises(TokenError, match="jti"):
        check(jwt.encode(c, keys["priv"], algorithm="EdDSA"), keys)


# ----- through the real server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokserver")
    cfg = write_config(folder, f"duckdb:///{folder / 'state.duckdb'}")
    s = Server(cfg).start()
    yield s, folder
    s.stop()


COUNT = {"dataset": "displaced", "kind": "count", "by": ["province"]}


def assert_no_data(r: httpx.Response) -> None:
    assert '"cells"' not in r.text and "p0" not in r.text


def test_http_refuses_bad_tokens(server):
    s, folder = server
    pub_pem = (folder / "issuer.pub").read_bytes()
    now = int(time.time())
    bad = {
        "none": forge_unsigned(claims(aud="node-test")),
        "hs256": hs256_with_public_key(claims(aud="node-test"), pub_pem),
        "audience": token(folder, audience="elsewhere"),
        "expired": token(folder, now=now - 4000, minutes=30),
        "nbf": token(folder, not_before=now + 600),
        "too-long": token(folder, minutes=600),
    }
    for name, tok in bad.items():
        r = post_query(s.url, tok, COUNT)
        assert r.status_code == 401, (name, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"
        assert_no_data(r)
    r = httpx.post(s.url + "/v1/query", json=COUNT)
    assert r.status_code == 401 and "token" in r.json()["error"]


def test_http_grants_narrowed(server):
    s, folder = server
    # aggregation level: province granted, district not
    tok = token(folder, dimensions=["province", "group"], queries=["count"], measures=[])
    assert post_query(s.url, tok, COUNT).status_code == 200
    for body, what in [
        ({"dataset": "displaced", "kind": "count", "by": ["district"]}, "district"),
        ({"dataset": "displaced", "kind": "count", "by": ["province"], "filters": {"district": ["D11"]}}, "district"),
        ({"dataset": "displaced", "kind": "count", "time": {"start": "2024-01", "end": "2024-02"}}, "month"),
        ({"dataset": "displaced", "kind": "sum", "measure": "income"}, "sum"),
    ]:
        r = post_query(s.url, tok, body)
        assert r.status_code == 403 and what in r.json()["error"], r.text
        assert_no_data(r)
    # a dataset the token does not name
    only = token(folder, datasets=["displaced_dp"])
    r = post_query(s.url, only, COUNT)
    assert r.status_code == 404 and "displaced" in r.json()["error"]  # as an unknown dataset (issue 13)
    # the token grants quantiles on the DP dataset; the node does not offer them there
    r = post_query(
        s.url, token(folder), {"dataset": "displaced_dp", "kind": "quantile", "measure": "income", "quantile": 0.5}
    )
    assert r.status_code == 403 and "does not offer" in r.json()["error"]
    # a measure not granted
    r = post_query(s.url, token(folder, measures=[]), {"dataset": "displaced", "kind": "mean", "measure": "income"})
    assert r.status_code == 403 and "income" in r.json()["error"]
    # the catalogue shows only what the grant allows
    cat = httpx.get(s.url + "/v1/catalogue", headers={"Authorization": f"Bearer {tok}"}).json()
    assert set(cat["datasets"]["displaced"]["dimensions"]) == {"province", "group"}
    assert cat["datasets"]["displaced"]["queries"] == ["count"]


def test_http_revocation(server):
    s, folder = server
    victim = token(folder, subject="leaky")
    assert post_query(s.url, victim, COUNT).status_code == 200
    # an analyst cannot revoke
    r = httpx.post(
        s.url + "/v1/admin/revocations", json={"jti": "x"}, headers={"Authorization": f"Bearer {token(folder)}"}
    )
    assert r.status_code == 403
    admin = token(folder, subject="provider", datasets=["*"], actions=["revoke"])
    jti = json.loads(base64.urlsafe_b64decode(victim.split(".")[1] + "==="))["jti"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "safemicro.cli",
            "token",
            "revoke",
            victim,
            "--url",
            s.url,
            "--admin-token",
            admin,
            "--reason",
            "laptop stolen",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert jti in r.stdout
    r = post_query(s.url, victim, COUNT)
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    # other tokens keep working
    assert post_query(s.url, token(folder, subject="other"), COUNT).status_code == 200


def test_cli_issue_and_bad_input(tmp_path):
    from service_support import make_keys

    make_keys(tmp_path)
    base = [
        sys.executable,
        "-m",
        "safemicro.cli",
        "token",
        "issue",
        "--key",
        str(tmp_path / "issuer.key"),
        "--audience",
        AUD,
        "--subject",
        "ana",
        "--dataset",
        "displaced",
    ]
    r = subprocess.run(base + ["--queries", "count,sum", "--measures", "income"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = verify_token(
        r.stdout.strip(),
        load_public_key(tmp_path / "issuer.pub"),
        audience=AUD,
        max_minutes=60,
        is_revoked=lambda j: False,
    )
    assert p.grants[0].queries == ["count", "sum"] and p.grants[0].measures == ["income"]
    r = subprocess.run(base + ["--actions", "delete"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown action" in r.stderr and "Traceback" not in r.stderr


def test_a_verified_token_is_checked_again_only_for_what_can_change(keys, monkeypatch):
    """With a VerifiedTokens cache the signature and claims of a token are checked once
    (before: PyJWT and Ed25519 on every request, ~0.3 ms of CPU); its time window and its
    revocation on every use; any other text (a changed signature) gets the full check."""
    import jwt

    decodes = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: (decodes.append(1), real(*a, **k))[1])
    cache = VerifiedTokens(size=2)
    revoked: set[str] = set()

    def use(tok: str, now: float | None = None):
        return verify_token(
            tok, keys["pub"], audience=AUD, max_minutes=60, is_revoked=revoked.__contains__, now=now, verified=cache
        )

    now = time.time()
    tok = issue_token(keys["priv"], audience=AUD, subject="ana", grants=[], minutes=10, now=int(now))
    assert use(tok).subject == "ana" and use(tok).subject == "ana"
    assert len(decodes) == 1
    head, body, sig = tok.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    with pytest.raises(TokenError, match="signature"):
        use(forged)
    # the window, with the same leeway: inside it a hit, outside it none (the full path decides)
    assert cache.valid(tok, now + 600 + LEEWAY_SECONDS - 1) is not None
    assert cache.valid(tok, now + 600 + LEEWAY_SECONDS) is None
    assert cache.valid(tok, now - LEEWAY_SECONDS - 1) is None
    revoked.add(use(tok).jti)
    with pytest.raises(TokenError, match="revoked"):
        use(tok)
    # bounded: the oldest goes first
    others = [issue_token(keys["priv"], audience=AUD, subject=f"s{i}", grants=[], minutes=10) for i in range(2)]
    for t in others:
        use(t)
    assert cache.valid(tok, now) is None and all(cache.valid(t, now) is not None for t in others)
