"""Hash-chained audit log and release signatures (issue 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safemicro.errors import SafemicroError
from safemicro.service.audit import (
    AuditLog,
    generate_key,
    public_key_pem,
    sign_release,
    verify,
    verify_release,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _log(tmp_path: Path, n: int = 6) -> Path:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(n):
        log.append("request" if i % 2 == 0 else "decision", {"i": i, "who": "analyst:é", "cells": [1, 2, 3]})
    return path


def test_chain_verifies_and_entries_link(tmp_path):
    path = _log(tmp_path)
    report = verify(path)
    assert report.ok and report.entries == 6 and report.first_bad_line is None
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [e["seq"] for e in lines] == list(range(6))
    assert lines[0]["prev"] == "0" * 64
    assert all(lines[i]["prev"] == lines[i - 1]["hash"] for i in range(1, 6))
    assert report.head_hash == lines[-1]["hash"]


_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=12)
_PAYLOADS = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6) | st.integers(0, 9), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(_PAYLOADS, min_size=1, max_size=3))
def test_every_line_is_the_canonical_json_of_the_entry_it_returns(tmp_path_factory, payloads):
    """The append writes its line without the generic canonical_json walk; the line must
    still be exactly that canonical form (verify rechecks it) of the entry returned."""
    from safemicro.service.audit import canonical_json

    path = tmp_path_factory.mktemp("canon") / "audit.jsonl"
    log = AuditLog(path)
    entries = [log.append("kind-é", p) for p in payloads]
    lines = path.read_bytes().decode("utf-8").split("\n")  # not splitlines: text may hold U+0085
    assert [canonical_json(e) for e in entries] + [""] == lines
    assert verify(path).ok


_ENTRIES = 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(0, _ENTRIES - 1), where=st.floats(0, 1, exclude_max=True), delta=st.integers(1, 255))
def test_changing_any_byte_of_any_entry_is_detected_at_that_line(tmp_path_factory, line, where, delta):
    path = _log(tmp_path_factory.mktemp("tamper"), _ENTRIES)
    data = bytearray(path.read_bytes())
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    start, end = starts[line], starts[line + 1]  # the line with its newline
    pos = start + int(where * (end - start))
    data[pos] = (data[pos] + delta) % 256
    path.write_bytes(bytes(data))
    report = verify(path)
    assert not report.ok
    assert report.first_bad_line == line + 1, report


def test_deletion_insertion_and_reordering_are_detected(tmp_path):
    path = _log(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # delete a middle entry
    path.write_text("".join(lines[:2] + lines[3:]), encoding="utf-8")
    assert verify(path).first_bad_line == 3
    # swap two entries
    path.write_text("".join([lines[0], lines[2], lines[1]] + lines[3:]), encoding="utf-8")
    assert verify(path).first_bad_line == 2
    # insert a copy of an entry
    path.write_text("".join(lines[:4] + [lines[1]] + lines[4:]), encoding="utf-8")
    assert verify(path).first_bad_line == 5
    # drop the last entry: only a checkpoint held elsewhere shows it
    private, public = generate_key()
    path.write_text("".join(lines), encoding="utf-8")
    checkpoint = AuditLog(path).checkpoint(private)
    assert verify(path, head=checkpoint, public_key=public).ok
    path.write_text("".join(lines[:-1]), encoding="utf-8")
    assert verify(path).ok  # a shorter chain is still a chain ...
    report = verify(path, head=checkpoint, public_key=public)
    assert not report.ok and "truncated" in report.reason  # ... but not the one the witness saw
    forged = dict(checkpoint, seq=checkpoint["seq"] - 1)
    assert "signature" in verify(path, head=forged, public_key=public).reason


def test_torn_tail_is_reported_then_repaired_by_the_next_append(tmp_path):
    path = _log(tmp_path, 3)
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"kind":"req')
    report = verify(path)
    assert not report.ok and report.first_bad_line == 4 and "torn" in report.reason
    entry = AuditLog(path).append("release", {"x": 1})
    assert verify(path).ok and entry["seq"] == 4
    kinds = [json.loads(x)["kind"] for x in path.read_text().splitlines()]
    assert kinds[-2:] == ["recovery", "release"]


def test_threads_and_processes_append_without_breaking_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from safemicro.service.audit import AuditLog;"
        "log = AuditLog(sys.argv[2]);"
        "[log.append('request', {'proc': sys.argv[3], 'i': i}) for i in range(40)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, SRC, str(path), str(p)]) for p in range(2)]
    threads = [
        threading.Thread(target=lambda t=t: [log.append("decision", {"thread": t, "i": i}) for i in range(40)])
        for t in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(timeout=60) == 0 for p in procs)
    report = verify(path)
    assert report.ok and report.entries == 200


def test_sigkill_loses_no_entry_that_append_returned(tmp_path):
    """A writer killed with SIGKILL mid-stream: every entry whose append() had returned (and
    was reported on stdout) is in the log, which verifies after the next append."""
    path = tmp_path / "audit.jsonl"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from safemicro.service.audit import AuditLog;"
        "log = AuditLog(sys.argv[2]);\n"
        "i = 0\n"
        "while True:\n"
        "    e = log.append('release', {'i': i, 'pad': 'x' * (i % 500)})\n"
        "    sys.stdout.write(f\"{e['seq']} {e['hash']}\\n\"); sys.stdout.flush(); i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, SRC, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.time() + 30
    while len(acknowledged) < 150 and time.time() < deadline:
        line = proc.stdout.readline()
        if line:
            acknowledged.append(line.split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for line in proc.stdout:  # acknowledgements still in the pipe
        acknowledged.append(line.split())
    assert len(acknowledged) >= 150
    AuditLog(path).append("restart", {})  # repairs a torn tail, if the kill left one
    report = verify(path)
    assert report.ok, report
    on_disk = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        e = json.loads(raw)
        on_disk[e["seq"]] = e["hash"]
    for seq, digest in acknowledged:
        assert on_disk.get(int(seq)) == digest


def test_release_signatures(tmp_path):
    private, public = generate_key()
    body = json.dumps({"cells": [1, 2, 3]}).encode()
    sig = sign_release(body, private)
    assert verify_release(body, sig, public)
    assert verify_release(body, sig, public_key_pem(private))
    assert not verify_release(body + b" ", sig, public)
    assert not verify_release(body, sig, generate_key()[1])
    assert not verify_release(body, "not base64!!", public)
    tampered = bytearray(__import__("base64").b64decode(sig))
    tampered[0] ^= 1
    assert not verify_release(body, bytes(tampered), public)
    with pytest.raises(SafemicroError, match="PEM"):
        sign_release(body, b"not a key")


def test_bad_kind_and_missing_log(tmp_path):
    with pytest.raises(SafemicroError):
        AuditLog(tmp_path / "a.jsonl").append("", {})
    with pytest.raises(SafemicroError, match="no audit log"):
        verify(tmp_path / "missing.jsonl")


def test_concurrent_appends_share_fsyncs_and_each_returns_on_disk(tmp_path, monkeypatch):
    """Group commit: threads appending together need fewer flushes than entries (one fsync
    per entry made 20 clients queue 7 ms each on this disk), and an append still returns
    only after an fsync that started after its line was written."""
    import safemicro.service.audit as audit_mod

    log = AuditLog(tmp_path / "a.jsonl")
    calls = []
    real = os.fsync

    def counted(fd):
        calls.append(os.fstat(fd).st_size)  # the bytes on the file when this flush starts
        time.sleep(0.002)  # a disk flush takes time; others write meanwhile
        return real(fd)

    monkeypatch.setattr(audit_mod.os, "fsync", counted)
    returned: list[tuple[int, int]] = []

    def writer(i: int) -> None:
        for j in range(25):
            e = log.append("x", {"i": i, "j": j})
            returned.append((e["seq"], len(calls)))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verify(tmp_path / "a.jsonl").ok
    assert len(returned) == 400
    assert len(calls) < 200, len(calls)
    offsets = [0]
    for line in (tmp_path / "a.jsonl").read_bytes().splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    for seq, flushes in returned:  # some flush before the return covered the whole line
        assert flushes and max(calls[:flushes]) >= offsets[seq + 1]
