"""The running node watches its own audit log: a tampered line stops it serving.

:class:`ChainWatch` verifies the whole hash chain when the node starts, then remembers how
far it has checked: the byte offset, the SHA-256 of every byte before it, and the last
entry's seq and hash. Each later :meth:`ChainWatch.check` (the node runs one on every
checkpoint it signs) re-hashes that prefix (one pass of SHA-256 in C, milliseconds for
megabytes) and verifies only the entries appended since, so an edit, a deletion, an
insertion or a truncation anywhere in the log is found, whoever appended the entries
(this process, other node processes, or someone with write access to the file). The only
tolerated irregularity is a torn last line (a crash in the middle of a write), which the
next append cuts off and records.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from pathlib import Path

from safemicro.errors import SafemicroError
from safemicro.service.audit import GENESIS, check_line

__all__ = ["AuditBroken", "ChainWatch"]


class AuditBroken(SafemicroError):
    """The audit log no longer verifies: the node must not serve."""


class ChainWatch:
    """Incremental verification of one audit log (thread-safe)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._offset = 0
        self._prefix = hashlib.sha256()
        self._seq = 0  # the next entry's expected seq
        self._prev = GENESIS
        self.check()

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry verified (-1 and the genesis hash when empty)."""
        return self._seq - 1, self._prev

    def check(self) -> int:
        """Verify what was appended since the last check and that nothing before changed;
        the number of entries verified. Raises :class:`AuditBroken` naming the line."""
        with self._lock, open(self.path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # appends hold LOCK_EX: no half-written line
            try:
                size = f.seek(0, os.SEEK_END)
                if size < self._offset:
                    raise self._broken(
                        None,
                        f"the log is shorter than the {self._offset} bytes already verified (truncated or rewritten)",
                    )
                f.seek(0)
                prefix = hashlib.sha256()
                left = self._offset
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    prefix.update(chunk)
                    left -= len(chunk)
                if prefix.digest() != self._prefix.digest():
                    raise self._broken(None, f"an entry before seq {self._seq} changed since it was verified")
                line_no = self._seq
                for raw in f:
                    line_no += 1
                    if not raw.endswith(b"\n"):
                        if f.tell() == size:
                            break  # a torn last line: the next append cuts it off and logs it
                    entry, problem = check_line(raw, self._seq, self._prev)
                    if problem:
                        raise self._broken(line_no, problem)
                    self._prefix.update(raw)
                    self._offset += len(raw)
                    self._seq += 1
                    self._prev = entry["hash"]
                return self._seq
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _broken(self, line: int | None, why: str) -> AuditBroken:
        where = f"line {line}: " if line else ""
        return AuditBroken(
            f"audit log integrity check failed, {where}{why}; the node stops serving "
            f"(inspect with `safemicro audit verify`)",
            file=str(self.path),
        )
