"""Real PostgreSQL and Redis servers for the backend tests: each on a free loopback port, in a temp dir.

`start_postgres()` runs `initdb` + `pg_ctl start` (as the `postgres` user when we are root, as
PostgreSQL refuses to run as root), trust auth, no fsync: a throwaway cluster that starts in a
second or two. `start_redis()` runs `redis-server` without persistence. Both hand out a fresh
database per test (`fresh_url()`), so tests sharing one server never see each other's rows or keys.

A missing binary skips the test with the reason, so a developer machine without PostgreSQL still
runs the rest; with REFSERVER_REQUIRE_SERVICES=1 (CI) it fails instead, so CI cannot go green by
skipping what it was meant to prove.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import pytest

from mockllm import stop_process

REQUIRE_ENV = "REFSERVER_REQUIRE_SERVICES"
START_TIMEOUT_S = 30.0


def unavailable(reason: str) -> NoReturn:
    """Skip (a developer machine) or fail (CI sets REFSERVER_REQUIRE_SERVICES=1) for lack of a service."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(f"{reason}; install it (Debian: apt-get install postgresql redis-server) to run this test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: Debian's newest /usr/lib/postgresql/N/bin, else on PATH."""

    def version(path: Path) -> int:
        return int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version, reverse=True)
    for initdb in [*debian, *filter(None, [shutil.which("initdb")])]:
        initdb = Path(initdb)
        if (initdb.parent / "pg_ctl").exists() and (initdb.parent / "postgres").exists():
            return initdb.parent
    return None


class Postgres:
    """A running throwaway cluster: `url` (the `postgres` database), `fresh_url()`, `stop()`."""

    def __init__(self, bindir: Path, base: Path, port: int, as_user: list[str]) -> None:
        self.bindir, self.base, self.port, self._as_user = bindir, base, port, as_user
        self.data = base / "data"
        self.url = self.url_of("postgres")
        self._numbers = itertools.count(1)

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` with psql over TCP; its unaligned, tuples-only output."""
        psql = self.bindir / "psql"
        command = [str(psql if psql.exists() else "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()}")
        return done.stdout

    def fresh_url(self) -> str:
        """A new empty database of this cluster, for one test."""
        name = f"test_{os.getpid()}_{next(self._numbers)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url_of(name)

    def stop(self) -> None:
        # immediate: the data is thrown away, so there is nothing to write back.
        subprocess.run(
            [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=30,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start on a free port (retried if another process takes the port first)."""
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL is not installed (no initdb/pg_ctl/postgres in /usr/lib/postgresql/*/bin or PATH)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="refserver-pg-"))  # in /tmp: the postgres user can reach it
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            unavailable("running as root, and there is no `postgres` user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(base)
            unavailable("running as root, and there is no `runuser` to run PostgreSQL as the postgres user")
        as_user = [runuser, "-u", "postgres", "--"]
        os.chown(base, account.pw_uid, account.pw_gid)
    data, log = base / "data", base / "postgres.log"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    done = subprocess.run([*as_user, *initdb, "--no-locale", "--no-sync"], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
    for _attempt in range(3):
        port = free_port()
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w"]
        done = subprocess.run(
            [*as_user, *pg_ctl, "-t", str(int(START_TIMEOUT_S)), "start"], capture_output=True, text=True
        )
        if done.returncode == 0:
            return Postgres(bindir, base, port, as_user)
    output = f"{done.stdout}\n{done.stderr}\n{_tail(log)}"
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start:\n{output}")


# ---------------------------------------------------------------------------------------------- Redis


class Redis:
    """A running redis-server: `url` (database 0), `fresh_url()` (databases 1..15), `stop()`."""

    DATABASES = 16  # redis-server's default

    def __init__(self, process: subprocess.Popen[bytes], base: Path, port: int) -> None:
        self.process, self.base, self.port = process, base, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._numbers = itertools.count(1)

    def command(self, *args: str, db: int = 0) -> bytes:
        """One command in database `db` over a plain socket (RESP); its one-line reply, e.g. b"+OK".

        A socket rather than redis-py, so that fixtures need no event loop."""
        parts = ["SELECT", str(db)], list(args)
        payload = b"".join(
            f"*{len(part)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in part)
            for part in parts
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload)
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        first, _, second = reply.partition(b"\r\n")
        if first.startswith(b"-") or second.startswith(b"-"):
            raise RuntimeError(f"redis {args}: {reply!r}")
        return second.rstrip(b"\r\n")

    def fresh_url(self) -> str:
        """An emptied database of its own, for one test (rate-limit keys are the same in every test)."""
        db = next(self._numbers)
        if db >= self.DATABASES:
            raise RuntimeError(f"more than {self.DATABASES - 1} fresh Redis databases asked for in one session")
        self.command("FLUSHDB", db=db)
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.base, ignore_errors=True)


def start_redis() -> Redis:
    """redis-server on a free loopback port, no RDB/AOF files; waits for PING."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        unavailable("redis-server is not installed")
    base = Path(tempfile.mkdtemp(prefix="refserver-redis-"))
    log = base / "redis.log"
    for _attempt in range(3):
        port = free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(base), "--logfile", str(log), "--daemonize", "no"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        redis = Redis(process, base, port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                if redis.command("PING") == b"+PONG":
                    return redis
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait()
    output = _tail(log)
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"redis-server did not start:\n{output}")
