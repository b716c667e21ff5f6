"""What the service tests share: a real PostgreSQL in a temp dir, the real server in a
subprocess on 127.0.0.1, keys, tokens, configs and a small displacement dataset."""

from __future__ import annotations

import base64
import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----- PostgreSQL


def postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl (PATH or Debian's /usr/lib/postgresql/*/bin), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(cands[-1]).parent if cands else None


class Postgres:
    """A throw-away PostgreSQL cluster: initdb into a temp dir, pg_ctl start on a free port.

    initdb refuses to run as root, so under root the cluster belongs to the `postgres`
    system user (Debian's package creates it) or, failing that, `nobody`.
    """

    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; `make postgres` installs them")
        self.dir = Path(tempfile.mkdtemp(prefix="sm-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                    self.user = name
                    break
                except KeyError:
                    continue
            if self.user is None:
                raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.dir, 0o700)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = (
                ["runuser", "-u", self.user, "--", *cmd]
                if shutil.which("runuser")
                else ["su", "-s", "/bin/sh", self.user, "-c", shlex.join(cmd)]
            )
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)

    def start(self) -> Postgres:
        r = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "sm", "-E", "UTF8", "--no-sync")
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stderr or r.stdout}")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts, "-w", "start")
        if r.returncode:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr or r.stdout} {log}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://sm@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=sm dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# ----- data, keys, config


def displacement_records(n: int = 1200, seed: int = 7) -> pl.DataFrame:
    """Persons in households over two provinces, five districts and six months, with sizes
    chosen so that many cells fall on both sides of a threshold of 10, some singletons."""
    rng = np.random.default_rng(seed)
    districts = {"P1": ["D11", "D12", "D13"], "P2": ["D21", "D22"]}
    weights = np.array([0.35, 0.25, 0.006, 0.35, 0.044])
    flat = [(p, d) for p, ds in districts.items() for d in ds]
    idx = rng.choice(len(flat), size=n, p=weights)
    months = rng.choice(
        ["2024-01-15", "2024-02-10", "2024-03-05", "2024-04-20", "2024-05-11", "2024-06-30"],
        size=n,
        p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03],
    )
    status = rng.choice(["refugee", "idp", "host", "returnee"], size=n, p=[0.4, 0.35, 0.2, 0.05])
    income = np.round(rng.gamma(2.0, 150.0, size=n), 1)
    income[0] = 400_000.0  # one dominant contributor
    return pl.DataFrame(
        {
            "person_id": [f"p{i:05d}" for i in range(n)],
            "province": [flat[i][0] for i in idx],
            "district": [flat[i][1] for i in idx],
            "arrival": months,
            "status": status,
            "sex": rng.choice(["f", "m"], size=n),
            "income": income,
        }
    )


def make_keys(folder: Path) -> dict[str, Path]:
    from safemicro.service.tokens import generate_keypair

    issuer_key, issuer_pub = generate_keypair(folder / "issuer")
    node_key, node_pub = generate_keypair(folder / "node")
    return {"issuer_key": issuer_key, "issuer_pub": issuer_pub, "node_key": node_key, "node_pub": node_pub}


def write_config(
    folder: Path,
    database: str,
    *,
    data: pl.DataFrame | None = None,
    threshold: int = 10,
    dp_budget: tuple[float, float] = (2.0, 5.0),
    audience: str = "node-test",
    max_body: int = 16384,
    copies: tuple[str, ...] = (),
) -> Path:
    """A service config with an SDC dataset `displaced` and a DP dataset `displaced_dp` over
    the same file (one population), and SDC `copies` of `displaced` with ledgers of their
    own: each reads its own file whose person ids carry the copy's name (other units for
    the node; the same file would share the ledger, identical content is refused)."""
    keys = {
        k: folder / f"{k.split('_')[0]}.{'key' if k.endswith('key') else 'pub'}"
        for k in ("issuer_key", "issuer_pub", "node_key", "node_pub")
    }
    if not keys["issuer_pub"].exists():
        make_keys(folder)
    csv = folder / "people.csv"
    if not csv.exists():
        (data if data is not None else displacement_records()).write_csv(csv)
    dims = {
        "province": {"kind": "admin", "column": "province"},
        "district": {"kind": "admin", "column": "district", "parent": "province"},
        "month": {"kind": "time", "column": "arrival", "bin": "month"},
        "group": {"kind": "category", "column": "status", "values": ["refugee", "idp", "host", "returnee"]},
        "sex": {"kind": "category", "column": "sex"},
    }
    base = {
        "file": csv.name,
        "unit": "person_id",
        "dimensions": dims,
        "measures": {"income": {"column": "income", "lower": 0, "upper": 1_000_000, "granularity": 10}},
    }
    cfg = {
        "audience": audience,
        "database": database,
        "issuer_public_key": keys["issuer_pub"].name,
        "signing_key": keys["node_key"].name,
        "audit_log": "audit.jsonl",
        "max_token_minutes": 60,
        "max_body_bytes": max_body,
        "datasets": {
            "displaced": {**base, "policy": {"threshold": threshold}},
            **{name: {**base, "file": _copy(folder, csv, name), "policy": {"threshold": threshold}} for name in copies},
            "displaced_dp": {
                **base,
                "queries": ["count", "sum", "mean"],
                "dp": {
                    "enabled": True,
                    "epsilon_per_query": 0.5,
                    "analyst_budget": dp_budget[0],
                    "dataset_budget": dp_budget[1],
                },
            },
        },
    }
    path = folder / "service.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def node_config(folder: Path, datasets: dict, audience: str = "node-test") -> dict:
    """A service config over the keys of `make_keys(folder)`, a DuckDB store and an audit log in
    `folder`, serving `datasets`."""
    return {
        "audience": audience,
        "database": f"duckdb:///{folder / 'state.duckdb'}",
        "issuer_public_key": "issuer.pub",
        "signing_key": "node.key",
        "audit_log": "audit.jsonl",
        "datasets": datasets,
    }


def _copy(folder: Path, csv: Path, name: str) -> str:
    """The records of `csv` as other units (person ids prefixed with `name`)."""
    out = folder / f"people_{name}.csv"
    if not out.exists():
        pl.read_csv(csv).with_columns((pl.lit(name + "-") + pl.col("person_id")).alias("person_id")).write_csv(out)
    return out.name


def token(
    folder: Path,
    subject: str = "alice",
    *,
    datasets=("*",),
    queries=None,
    dimensions=("*",),
    measures=("*",),
    actions=("query", "catalogue", "budget"),
    minutes: float = 30,
    audience: str = "node-test",
    **kw,
) -> str:
    from safemicro.service.tokens import issue_token, load_private_key

    key = load_private_key(folder / "issuer.key")
    grants = [
        {
            "dataset": d,
            "queries": list(queries or ["count", "sum", "mean", "quantile", "crosstab"]),
            "dimensions": list(dimensions),
            "measures": list(measures),
            "actions": list(actions),
        }
        for d in datasets
    ]
    return issue_token(key, audience=audience, subject=subject, grants=grants, minutes=minutes, **kw)


def forge_unsigned(claims: dict) -> str:
    """An `alg: none` token."""

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


# ----- the server


class Server:
    """`safemicro serve CONFIG` in a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, config: Path, *extra: str) -> None:
        self.config = config
        self.extra = list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = config.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 40) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "safemicro.cli",
                "serve",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.extra,
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.config.parent,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout}s: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


def post_query(url: str, tok: str, body: dict, client: httpx.Client | None = None) -> httpx.Response:
    c = client or httpx
    return c.post(url + "/v1/query", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=60)
