"""A throwaway PostgreSQL cluster (Debian's packages) on a free loopback port, in a temp dir.

The same approach as the tests' `tests/reference_server/services.py` (initdb + pg_ctl, as the
`postgres` user when we are root, trust auth, no fsync), copied rather than imported: bench does
not import tests/, and here a missing PostgreSQL is a "not checked" row, not a pytest skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

START_TIMEOUT_S = 30


class Unavailable(RuntimeError):
    """PostgreSQL cannot be started here (not installed, or no user to run it as)."""


def bindir() -> Path | None:
    """Debian's newest /usr/lib/postgresql/N/bin with initdb, pg_ctl and postgres, else PATH's."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    for initdb in [*found, *(Path(p) for p in filter(None, [shutil.which("initdb")]))]:
        if (initdb.parent / "pg_ctl").exists() and (initdb.parent / "postgres").exists():
            return initdb.parent
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Postgres:
    """A running cluster: `url_of(db)`, `psql(sql, db)`, `stop()`."""

    def __init__(self) -> None:
        self.bin = bindir()
        if self.bin is None:
            raise Unavailable("PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or PATH)")
        self.as_user: list[str] = []
        self.base = Path(tempfile.mkdtemp(prefix="reliability-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.base)
                raise Unavailable("running as root and there is no `postgres` user") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                shutil.rmtree(self.base)
                raise Unavailable("running as root and there is no `runuser`")
            self.as_user = [runuser, "-u", "postgres", "--"]
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self.data = self.base / "data"
        initdb = [
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]
        done = subprocess.run([*self.as_user, *initdb], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
        self.port = _free_port()
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c max_connections=200"
        )
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "pg.log"), "-o", options]
        done = subprocess.run(
            [*self.as_user, *pg_ctl, "-w", "-t", str(START_TIMEOUT_S), "start"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S + 10,
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()[-500:]}")

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """`sql` through psql over TCP; its unaligned, tuples-only output (RuntimeError on failure)."""
        psql = self.bin / "psql" if self.bin else Path("psql")
        command = [
            str(psql if psql.exists() else "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return done.stdout.strip()

    def stop(self) -> None:
        if self.bin is not None and self.data.exists():
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=30,
            )
        shutil.rmtree(self.base, ignore_errors=True)
