"""A throw-away PostgreSQL server on 127.0.0.1 for tests, benchmarks and trying cluster mode.

Uses the system's PostgreSQL binaries (Debian's ``postgresql`` package). ``initdb`` refuses to
run as root, so as root the server runs as the ``postgres`` user in a fresh temporary folder
that user owns.

    with TempPostgres() as pg:
        url = pg.url("charwatch")   # postgresql+psycopg://postgres@127.0.0.1:PORT/charwatch
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SEARCH = ("/usr/lib/postgresql/*/bin",)


def find_bin(name: str) -> str | None:
    """A PostgreSQL binary: on PATH, else the newest under /usr/lib/postgresql/*/bin."""
    if found := shutil.which(name):
        return found
    for pattern in SEARCH:
        hits = sorted(glob.glob(os.path.join(pattern, name)), reverse=True)
        if hits:
            return hits[0]
    return None


def available() -> bool:
    """True when ``initdb`` and ``pg_ctl`` are installed."""
    return bool(find_bin("initdb") and find_bin("pg_ctl"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """Start a fresh cluster (trust auth, fsync off) and stop and remove it at the end."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.port = 0
        self._as: list[str] = []

    def _run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *cmd], capture_output=True, text=True, check=True, timeout=120
        )

    def start(self) -> TempPostgres:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="charwatch-pg-"))
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        data = self.dir / "db"
        self._run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(pg_ctl, "-D", str(data), "-w", "-l", str(self.dir / "log"), "-o", opts, "start")
        return self

    def create_database(self, name: str) -> str:
        """Create a database (if new) and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.url("postgres", driver=False), autocommit=True) as con:
            exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str = "postgres", *, driver: bool = True) -> str:
        scheme = "postgresql+psycopg" if driver else "postgresql"
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.dir is None:
            return
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl:
            subprocess.run(
                [*self._as, pg_ctl, "-D", str(self.dir / "db"), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
