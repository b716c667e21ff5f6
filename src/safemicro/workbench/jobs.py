"""Long work in the background: a thread per job, its progress, and a cancel button.

A job is a function ``work(tick)``; it calls ``tick(stage, fraction)`` between stages and
``tick`` raises :class:`Cancelled` once the curator pressed cancel, so a job stops at its
next stage boundary and writes nothing more (outputs are written atomically at the end).
Finished jobs keep their result (a dict for the page) until the server stops; what they
wrote lives in the project's ``results/`` folder and survives a restart.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from safemicro.errors import SafemicroError


class Cancelled(Exception):
    """Raised inside a job when it was cancelled."""


@dataclass
class Job:
    id: str
    kind: str
    state: str = "running"  # running, done, failed, cancelled
    stage: str = "starting"
    fraction: float = 0.0
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class Jobs:
    """The running and finished jobs of one workbench server."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Callable[[str, float], None]], dict[str, Any]]) -> Job:
        """Run ``work`` in a thread; one job of a kind at a time (a second start is refused)."""
        with self._lock:
            if any(j.kind == kind and j.state == "running" for j in self._jobs.values()):
                raise SafemicroError(f"a {kind} job is already running: wait for it or cancel it")
            job = Job(id=f"{kind}-{next(self._ids)}", kind=kind)
            self._jobs[job.id] = job

        def tick(stage: str, fraction: float) -> None:
            if job.cancel.is_set():
                raise Cancelled
            job.stage, job.fraction = stage, max(0.0, min(1.0, fraction))

        def run() -> None:
            try:
                job.result = work(tick) or {}
                job.state, job.stage, job.fraction = "done", "done", 1.0
            except Cancelled:
                job.state, job.message = "cancelled", "cancelled: nothing was written"
            except SafemicroError as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:  # shown on the page; the server keeps running
                job.state, job.message = "failed", f"{exc.__class__.__name__}: {exc}"
                traceback.print_exc()
            finally:
                job.finished = time.monotonic()

        threading.Thread(target=run, name=job.id, daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def latest(self, kind: str) -> Job | None:
        jobs = [j for j in self._jobs.values() if j.kind == kind]
        return jobs[-1] if jobs else None
