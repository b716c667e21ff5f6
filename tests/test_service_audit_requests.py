"""Every request that reaches the node is audited, and the running node notices a tampered
audit log (issue 13, item 5): the real server on 127.0.0.1 with the DuckDB store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import httpx
import pytest

from safemicro.service.audit import AuditLog, verify
from safemicro.service.audit_watch import AuditBroken, ChainWatch
from service_support import PYTHON, Server, post_query, token, write_config


def entries(folder) -> list[dict]:
    return [json.loads(x) for x in (folder / "audit.jsonl").read_text().splitlines()]


@pytest.fixture()
def node(tmp_path):
    cfg = write_config(tmp_path, f"duckdb:///{tmp_path / 'state.duckdb'}", max_body=2048)
    s = Server(cfg).start()
    yield s, tmp_path
    s.stop()


def test_refused_bodies_leave_an_entry_with_their_hash_not_their_text(node):
    s, folder = node
    h = {"Authorization": f"Bearer {token(folder)}", "content-type": "application/json"}
    secret = "p00042-rashid"  # what an analyst typed must not end up in the log
    bodies = [
        (b'{"dataset": "displaced", "kind": ', 400),
        (json.dumps({"dataset": "displaced", "kind": "count", "note": secret}).encode(), 422),
        (json.dumps({"dataset": "displaced", "kind": "count", "by": [secret]}).encode(), 422),
        (json.dumps({"dataset": "displaced", "kind": "count", "pad": secret + "x" * 4000}).encode(), 413),
    ]
    before = len(entries(folder))
    for body, status in bodies:
        r = httpx.post(s.url + "/v1/query", content=body, headers=h)
        assert r.status_code == status, r.text

    def chunks():  # no content-length: the limit trips while streaming
        yield b'{"dataset": "displaced", "kind": "count", "pad": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    assert httpx.post(s.url + "/v1/query", content=chunks(), headers=h).status_code == 413
    assert httpx.get(s.url + "/v1/nothing-here", headers=h).status_code == 404
    new = entries(folder)[before:]
    rejected = [e["payload"] for e in new if e["kind"] == "rejected"]
    assert [p["status"] for p in rejected] == [400, 422, 422, 413, 413, 404]
    for (body, status), p in zip(bodies[:3], rejected):
        assert p["body_sha256"] == hashlib.sha256(body).hexdigest() and p["body_bytes"] == len(body)
        assert p["path"] == "/v1/query" and p["method"] == "POST"
    assert rejected[3]["body_bytes"] == 0  # refused on its content-length, before reading it
    assert rejected[4]["body_bytes"] > 2048  # hashed up to the chunk that tripped the limit
    assert secret not in (folder / "audit.jsonl").read_text()
    assert verify(folder / "audit.jsonl").ok


def test_every_query_request_is_counted_in_the_log(node):
    """One `request`, `auth` or `rejected` entry per POST /v1/query, whatever the outcome."""
    s, folder = node
    tok = token(folder)
    before = entries(folder)
    sent = [
        post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": ["province"]}),  # 200
        post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": ["province"]}),  # 200, cached
        post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": ["nationality"]}),  # 422 node
        post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "extra": 1}),  # 422 pydantic
        post_query(s.url, "bad-token", {"dataset": "displaced", "kind": "count"}),  # 401
        post_query(s.url, tok, {"dataset": "nowhere", "kind": "count"}),  # 404
    ]
    assert [r.status_code for r in sent] == [200, 200, 422, 422, 401, 404]
    new = entries(folder)[len(before) :]
    counted = [e for e in new if e["kind"] in ("request", "auth", "rejected")]
    assert len(counted) == len(sent)


def test_a_tampered_line_stops_the_running_node_and_its_restart(node):
    s, folder = node
    tok = token(folder)
    assert post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": ["province"]}).status_code == 200
    r = httpx.get(s.url + "/v1/audit/checkpoint", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200
    head = r.json()
    assert verify(folder / "audit.jsonl", head=head, public_key=(folder / "node.pub").read_bytes()).ok
    # someone with write access edits an old line (a refusal turned into nothing)
    log = folder / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"kind":"', '"kind":"x', 1)
    log.write_text("".join(lines))
    r = httpx.get(s.url + "/v1/audit/checkpoint", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 503 and "integrity" in r.json()["error"]
    r = post_query(s.url, tok, {"dataset": "displaced", "kind": "count", "by": ["sex"]})
    assert r.status_code == 503  # halted: nothing more is answered
    assert "integrity check failed" in s.log.read_text()
    s.stop()
    # a node does not start on a log that does not verify, and says which line
    run = subprocess.run(
        [PYTHON, "-m", "safemicro.cli", "serve", str(folder / "service.yaml"), "--port", "1"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    assert run.returncode != 0
    assert "audit log integrity check failed" in run.stderr and "line 2" in run.stderr
    assert "Traceback" not in run.stderr


def test_chain_watch_is_incremental_and_finds_changes_anywhere(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(5):
        log.append("request", {"i": i})
    watch = ChainWatch(path)
    assert watch.head[0] == 4
    for i in range(5, 8):
        log.append("request", {"i": i})
    assert watch.check() == 8 and watch.head == (7, log.head()["hash"])
    raw = path.read_bytes()
    # a torn last line (a crash mid-write) is tolerated; the next append repairs it
    path.write_bytes(raw + b'{"seq":8,"ti')
    assert watch.check() == 8
    log.append("request", {"i": 8})
    assert watch.check() == 10  # the recovery entry and the new one
    good = path.read_bytes()
    for tamper in (
        lambda b: b.replace(b'"i":2', b'"i":3', 1),  # an entry verified long ago
        lambda b: b[: b.rfind(b"\n", 0, len(b) - 1) + 1],
    ):  # the last entry removed
        path.write_bytes(tamper(good))
        w = ChainWatch.__new__(ChainWatch)
        w.__dict__.update(watch.__dict__)
        w._prefix = watch._prefix.copy()
        with pytest.raises(AuditBroken, match="integrity check failed"):
            w.check()
    path.write_bytes(good)
    log.append("request", {"i": 9})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1].replace(b'"i":9', b'"i":1'))  # a new entry edited
    with pytest.raises(AuditBroken, match="line 11"):
        watch.check()
    with pytest.raises(AuditBroken, match="line 11"):
        ChainWatch(path)  # and at start


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
