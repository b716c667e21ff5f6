"""A real `safemicro workbench` server in a subprocess on 127.0.0.1, for the workbench tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


class Server:
    """``safemicro workbench FILE --project DIR --no-browser`` until :meth:`stop`."""

    def __init__(self, project: Path, file: Path | None = None, *extra: str) -> None:
        args = [sys.executable, "-m", "safemicro.cli", "workbench"]
        args += [str(file)] if file is not None else []
        args += ["--project", str(project), "--no-browser", *extra]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "400"})
        lines = []
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline and self.url is None:
            line = self.proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            hit = re.search(r"open: (http://\S+)", line)
            if hit:
                self.url = hit.group(1)
        if self.url is None:
            self.proc.kill()
            raise RuntimeError("the workbench did not start:\n" + "".join(lines) + self.proc.stderr.read())
        self.log = lines
        threading.Thread(target=lambda: lines.extend(self.proc.stderr), daemon=True).start()  # keep the pipe drained
        self.base, self.token = self.url.split("/?token=")
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/static/workbench.css", headers=self.headers, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Workbench-Token": self.token}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=self.headers, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
