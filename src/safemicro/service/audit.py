"""Tamper-evident audit log: hash-chained JSON lines, durable appends, signed releases.

Each line is one entry ``{"seq", "time", "kind", "payload", "prev", "hash"}`` in canonical
JSON (sorted keys, no spaces, UTF-8). ``hash`` is the SHA-256 of the canonical JSON of the
entry without its ``hash`` field, and ``prev`` is the previous entry's ``hash`` (64 zeros for
the first), so editing, deleting, inserting or reordering any entry breaks the chain at
that line. :meth:`AuditLog.append` holds an exclusive ``fcntl`` lock on the log (and a
thread lock) while it reads the tail and writes, and returns only after ``fsync``: an entry
it returned survives a crash, including ``kill -9`` of the writing process (an entry
appended with ``durable=False`` once a later durable append has returned). A torn last
line (a crash in the middle of a write that never returned) is cut off by the next append,
which records a "recovery" entry saying how many bytes were dropped.

Removing entries from the *end* of a chain leaves a valid shorter chain; detect it by
comparing with a head (``seq`` and ``hash``) held elsewhere, e.g. a signed checkpoint
(:meth:`AuditLog.checkpoint`) given to a witness, and ``verify(path, head=...)``.

Releases are signed with Ed25519 (``cryptography``): :func:`sign_release` and
:func:`verify_release`; keys as PEM via :func:`generate_key`, :func:`load_private_key`,
:func:`load_public_key`.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safemicro.errors import SafemicroError
from safemicro.jsonable import json_ready

__all__ = [
    "GENESIS",
    "AuditLog",
    "VerifyReport",
    "verify",
    "entry_hash",
    "canonical_json",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "sign_release",
    "verify_release",
]

GENESIS = "0" * 64
_FIELDS = ("seq", "time", "kind", "payload", "prev", "hash")


def canonical_json(obj: Any, *, ascii: bool = False, ready: bool = False) -> str:
    """Sorted keys, no spaces, no NaN: the bytes that are hashed and signed (UTF-8 text, or
    with ``ascii`` every non-ASCII character escaped, as the service's HTTP bodies are);
    ``ready``: ``obj`` is JSON-ready already (:func:`json_ready` is not run again)."""
    obj = obj if ready else json_ready(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii, allow_nan=False)


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def entry_hash(entry: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of ``entry`` without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


class _GroupCommit:
    """Group commit of one log file for this process's threads: each append writes its line
    under the locks, then waits until an ``fsync`` issued after its write has returned. One
    waiting thread runs that ``fsync`` for every line written so far; the others find their
    line covered and return without one. Each append still returns only once its entry is on
    disk, but concurrent appends share the disk flush instead of queueing one flush each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.written = 0  # lines handed to the kernel (incremented under the log's thread lock)
        self.synced = 0  # lines known to be on disk
        # ((inode, size), next seq, last hash) after this process's last append, under the log's
        # thread lock: while the file and its size are unchanged nobody else wrote, and the
        # tail need not be read
        self.tail: tuple[tuple[int, int], int, str] | None = None

    def wait(self, path: Path, ticket: int) -> None:
        with self.lock:
            if self.synced >= ticket:
                return
            target = self.written  # every line up to here was written before this fsync starts
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.synced = max(self.synced, target)


_GROUP_COMMITS: dict[str, _GroupCommit] = {}


def _group_commit(path: Path) -> _GroupCommit:
    key = str(path.resolve())
    with _THREAD_LOCKS_GUARD:
        return _GROUP_COMMITS.setdefault(key, _GroupCommit())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_line(f, size: int) -> tuple[bytes, int]:
    """The last line of an open binary file of ``size`` bytes (without its newline, if it
    has one) and the offset where it starts."""
    if size == 0:
        return b"", 0
    f.seek(size - 1)
    end = size - 1 if f.read(1) == b"\n" else size
    buf = b""
    pos = end
    step = 4096
    while pos > 0:
        take = min(step, pos)
        pos -= take
        f.seek(pos)
        buf = f.read(take) + buf  # buf holds bytes [pos, end)
        nl = buf.rfind(b"\n")
        if nl >= 0:
            return buf[nl + 1 :], pos + nl + 1
        step *= 2
    return buf, 0


class AuditLog:
    """Append-only hash-chained log in one JSON-lines file (created when missing).

    Safe for several threads and processes writing the same file: each append takes an
    exclusive lock, reads the current tail, writes one line and fsyncs before returning.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            os.close(fd)
            _fsync_dir(self.path.parent)
        self._lock = _thread_lock(self.path)
        self._sync = _group_commit(self.path)

    def append(self, kind: str, payload: Any, *, durable: bool = True) -> dict:
        """Add one entry and return it once it is on disk (fsync), with every entry written
        before it. ``durable=False`` returns once the line is written, for an entry that leads
        up to a durable one of the same request (its "request" before its "release"): the
        next durable append, of any thread, flushes it too, so what the caller then answers
        still leaves only after both are on disk, for one disk flush instead of two."""
        if not isinstance(kind, str) or not kind:
            raise SafemicroError(f"audit entry kind must be a non-empty string, got {kind!r}")
        payload = json_ready(payload)
        # the line's text but for its place in the chain, built before taking the locks: the
        # holder of the locks makes only a few system calls (each lets other threads run, and
        # under load a lock held across many of them was the queue every request waited in)
        head, stamp = _entry_head(kind, payload), _now()
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                if self._sync.tail is not None and self._sync.tail[0] == (st.st_ino, st.st_size):
                    seq, prev = self._sync.tail[1:]
                else:  # another process wrote, or this one never did: read the tail
                    with open(self.path, "r+b") as f:
                        seq, prev = self._tail(f)
                    st = os.fstat(fd)
                digest, line = _chained(head, prev, seq, stamp)
                self._sync.tail = None  # unknown until the whole line is written
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
                self._sync.tail = ((st.st_ino, st.st_size + len(line)), seq + 1, digest)
                self._sync.written += 1
                ticket = self._sync.written
            finally:
                os.close(fd)  # releases the flock
        if durable:
            self._sync.wait(self.path, ticket)
        return {"seq": seq, "time": stamp, "kind": kind, "payload": payload, "prev": prev, "hash": digest}

    def sync(self) -> None:
        """Return once every entry this process has written is on disk."""
        self._sync.wait(self.path, self._sync.written)

    def _tail(self, f) -> tuple[int, str]:
        """Next seq and the last hash; cuts off a torn last line first (logged)."""
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0, GENESIS
        f.seek(size - 1)
        if f.read(1) != b"\n":  # a write that never returned: drop it, say so
            line, start = _last_line(f, size)
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
            torn = hashlib.sha256(line).hexdigest()
            seq, prev = self._tail(f)
            entry = _write_entry(f, seq, "recovery", {"dropped_torn_bytes": size - start, "sha256": torn}, prev)
            return seq + 1, entry["hash"]
        line, _ = _last_line(f, size)
        try:
            last = json.loads(line)
            return int(last["seq"]) + 1, str(last["hash"])
        except (ValueError, KeyError, TypeError):
            raise SafemicroError("the last audit entry is unreadable; run verify", file=str(self.path)) from None

    def head(self) -> dict | None:
        """The last entry (None for an empty log)."""
        with open(self.path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return None
            line, _ = _last_line(f, size)
        return json.loads(line)

    def checkpoint(self, private_key) -> dict:
        """A signed statement of the current head, for a witness to keep:
        ``{"seq", "hash", "signature"}`` over the canonical JSON of seq and hash."""
        head = self.head()
        body = {"seq": -1, "hash": GENESIS} if head is None else {"seq": head["seq"], "hash": head["hash"]}
        return {**body, "signature": sign_release(canonical_json(body).encode("utf-8"), private_key)}


def _write_entry(f, seq: int, kind: str, payload: Any, prev: str, *, sync: bool = True) -> dict:
    """Chain one entry after ``prev`` (its payload JSON-ready), append it to the open log
    ``f`` and (with ``sync``) fsync; the entry."""
    stamp = _now()
    digest, line = _chained(_entry_head(kind, payload), prev, seq, stamp)
    f.seek(0, os.SEEK_END)
    f.write(line)
    f.flush()
    if sync:
        os.fsync(f.fileno())
    return {"seq": seq, "time": stamp, "kind": kind, "payload": payload, "prev": prev, "hash": digest}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _entry_head(kind: str, payload: Any) -> str:
    """An entry's canonical JSON up to its ``prev`` (the keys sort as kind, payload, prev,
    seq, time; ``payload`` JSON-ready): all of it that does not depend on its place in the
    chain, so it can be built before the log is locked."""
    return f'{{"kind":{_json(kind)},"payload":{canonical_json(payload, ready=True)},"prev":"'


def _chained(head: str, prev: str, seq: int, stamp: str) -> tuple[str, bytes]:
    """The entry's hash (:func:`entry_hash`, without its walk of the payload) and its line:
    the hashed text with ``hash`` prepended, as it sorts first among the keys."""
    text = f'{head}{prev}","seq":{seq},"time":{_json(stamp)}}}'
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return digest, f'{{"hash":"{digest}",{text[1:]}\n'.encode()


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: ``ok``, entries read, the first bad line (1-based) and why."""

    ok: bool
    entries: int
    first_bad_line: int | None
    reason: str
    head_seq: int | None
    head_hash: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_line(raw: bytes, seq: int, prev: str) -> tuple[dict | None, str | None]:
    """One raw log line (with its newline) checked as entry number ``seq`` following the hash
    ``prev``: the entry, or None and what is wrong with it."""
    if not raw.endswith(b"\n"):
        return None, "torn last line (a write that did not complete)"
    try:
        text = raw[:-1].decode("utf-8")
        entry = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None, "not valid JSON"
    if not isinstance(entry, dict) or sorted(entry) != sorted(_FIELDS):
        return None, "wrong fields"
    if canonical_json(entry) != text:
        return None, "not in canonical form (edited)"
    if entry["seq"] != seq:
        return None, f"sequence number {entry['seq']!r}, expected {seq} (deleted, inserted or reordered)"
    if entry["prev"] != prev:
        return None, "previous-hash link broken (deleted, inserted or reordered entry)"
    if entry_hash(entry) != entry["hash"]:
        return None, "hash does not match the content (edited)"
    return entry, None


def verify(path: str | os.PathLike[str], head: dict | None = None, public_key=None) -> VerifyReport:
    """Recompute the chain of the log at ``path``; name the first line that does not fit.

    ``head`` (``{"seq", "hash"}``, optionally with a ``signature`` checked against
    ``public_key``) is a checkpoint held elsewhere: the log must contain that entry, which
    detects truncation.
    """
    path = Path(path)
    if not path.exists():
        raise SafemicroError("no audit log", file=str(path))
    prev = GENESIS
    n = 0
    seen_head = head is None
    last_seq: int | None = None
    last_hash: str | None = None

    def bad(line_no: int, why: str) -> VerifyReport:
        return VerifyReport(False, n, line_no, why, last_seq, last_hash)

    if head is not None and "signature" in head:
        if public_key is None:
            raise SafemicroError("a signed checkpoint needs the public key to check it")
        body = canonical_json({"seq": head["seq"], "hash": head["hash"]}).encode("utf-8")
        if not verify_release(body, head["signature"], public_key):
            return VerifyReport(False, 0, None, "the checkpoint's signature is not valid", None, None)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            entry, problem = check_line(raw, n, prev)
            if problem:
                return bad(line_no, problem)
            if head is not None and entry["seq"] == head.get("seq"):
                if entry["hash"] != head.get("hash"):
                    return bad(line_no, "entry differs from the checkpoint")
                seen_head = True
            prev = entry["hash"]
            last_seq, last_hash = entry["seq"], entry["hash"]
            n += 1
    if not seen_head:
        return VerifyReport(
            False, n, n + 1, f"log ends before the checkpoint at seq {head['seq']} (truncated)", last_seq, last_hash
        )
    return VerifyReport(True, n, None, "ok", last_seq, last_hash)


# -- Ed25519 release signatures ---------------------------------------------------------------


def generate_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private, public_key_pem(key)


def public_key_pem(private_key) -> bytes:
    """PEM of the public half of a private key (object or PEM)."""
    from cryptography.hazmat.primitives import serialization

    key = load_private_key(private_key)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(key):
    """An Ed25519 private key from PEM bytes/text or a key object."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return _load_key(key, Ed25519PrivateKey, "private", "release signing needs an Ed25519 key")


def load_public_key(key):
    """An Ed25519 public key from PEM bytes/text or a key object."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return _load_key(key, Ed25519PublicKey, "public", "release signatures are checked with an Ed25519 key")


def _load_key(key, kind: type, half: str, wrong_type: str):
    """``key`` if it is a ``kind`` already, else the ``half`` ("private" or "public") of a key
    pair read from PEM bytes/text, which must be a ``kind`` (else ``wrong_type``)."""
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, kind):
        return key
    if isinstance(key, str):
        key = key.encode("ascii")
    try:
        if half == "private":
            loaded = serialization.load_pem_private_key(key, password=None)
        else:
            loaded = serialization.load_pem_public_key(key)
    except (ValueError, TypeError) as e:
        raise SafemicroError(f"not a PEM {half} key: {e}") from None
    if not isinstance(loaded, kind):
        raise SafemicroError(wrong_type)
    return loaded


def sign_release(body: bytes, private_key) -> str:
    """Ed25519 signature of the exact release bytes, base64 (standard alphabet)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return base64.b64encode(load_private_key(private_key).sign(bytes(body))).decode("ascii")


def verify_release(body: bytes, signature: str | bytes, public_key) -> bool:
    """True when ``signature`` (base64 text or raw bytes) signs exactly ``body``."""
    from cryptography.exceptions import InvalidSignature

    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        raw = base64.b64decode(signature, validate=True) if isinstance(signature, str) else bytes(signature)
    except (ValueError, TypeError):
        return False
    try:
        load_public_key(public_key).verify(raw, bytes(body))
        return True
    except InvalidSignature:
        return False
