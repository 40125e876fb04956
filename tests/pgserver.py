"""A real, throw-away PostgreSQL server for tests and benchmarks.

Debian's server binaries (``apt-get install postgresql``; ``.ci/run`` installs them) on a
temporary data directory and a free loopback port, with password authentication, so the
engine connects exactly as it would to a lab's database. PostgreSQL refuses to run as root:
as root the server runs as the ``postgres`` system user that the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD, DATABASE = "esmnas", "s3cret-pw", "esm_nas"


def find_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").is_file() and Path(candidate, "postgres").is_file():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
        self.dir = Path(tempfile.mkdtemp(prefix="esm-nas-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def env(self) -> dict[str, str]:
        """Environment for libpq tools (pg_dump, psql) talking to this server."""
        return {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": USER,
                "PGPASSWORD": PASSWORD, "PGDATABASE": DATABASE}

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, text=True,
                       cwd=self.dir)

    def start(self) -> PostgresServer:
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_user:
            shutil.chown(self.dir, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                  f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                  "-E", "UTF8", "--no-locale", "--no-sync")
        self._launch()
        self.create_database(DATABASE)
        return self

    def _launch(self) -> None:
        self.process = subprocess.Popen(
            [*self._as_user, str(self.bindir / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.dir), "-F",
             "-c", "max_connections=200", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "server.log", "ab"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start:\n" + self.log()) from None
                time.sleep(0.1)

    def outage(self, seconds: float) -> None:
        """Stop the server (every connection drops), wait, start it again on the same data."""
        self._shutdown()
        time.sleep(seconds)
        self._launch()

    def _shutdown(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: clients are disconnected at once)."""
        pidfile = self.data / "postmaster.pid"
        if self.process is None or self.process.poll() is not None:
            return
        if pidfile.exists():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
        else:
            self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def create_database(self, name: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self._run(str(self.bindir / "createdb"), "-h", str(self.dir), "-p",
                          str(self.port), "-U", USER, name)
                return
            except subprocess.CalledProcessError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"createdb failed: {exc.stderr}") from None
                time.sleep(0.2)  # still starting up

    def drop_database(self, name: str) -> None:
        """Gone, as after a disk failure (open connections are cut: ``--force``)."""
        self._run(str(self.bindir / "dropdb"), "--force", "-h", str(self.dir), "-p",
                  str(self.port), "-U", USER, name)

    def url_for(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + database

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self._shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)
