"""A throwaway PostgreSQL cluster for tests and benchmarks (Debian's ``postgresql``).

``initdb`` in a temp dir, ``pg_ctl start`` on a free port of 127.0.0.1 with its
Unix socket dir in the same temp dir, trust authentication. PostgreSQL refuses
to run as root, so when we are root the binaries run as the ``postgres`` user
(or ``nobody``) through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg

from ._procs import free_port

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = ["PG_USER", "PgCluster", "pg_bin_dir"]

# The superuser initdb creates; the store connects as it (trust auth).
PG_USER: Final = "leafnode"
# Server settings for tests: room for many parallel store connections, and
# small shared memory so that several clusters fit on one small machine.
TEST_SETTINGS: Final[Mapping[str, str]] = {"max_connections": "200", "shared_buffers": "32MB"}
_PG_ROOT: Final = Path("/usr/lib/postgresql")


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` dir (Debian layout), or None."""
    versions: list[tuple[int, Path]] = []
    if _PG_ROOT.is_dir():
        for entry in _PG_ROOT.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "initdb").exists():
                versions.append((int(entry.name), entry / "bin"))
    if versions:
        return max(versions)[1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _runner() -> list[str]:
    """Prefix that runs the PostgreSQL binaries as a non-root user."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise RuntimeError("running as root and no postgres/nobody user to run PostgreSQL as")


class PgCluster:
    """A throwaway PostgreSQL cluster: ``initdb`` in a temp dir, ``pg_ctl`` start/stop.

    ``start()`` creates the cluster on first use and starts the server;
    ``shutdown()`` stops the server but keeps the data (``start()`` again
    restarts it on the same port, e.g. to test "database unreachable");
    ``stop()`` stops it and deletes everything. Usable as a context manager.

    Args:
        bin_dir: where ``initdb``/``pg_ctl`` live (default: ``pg_bin_dir()``).
        base_dir: parent of the cluster's temp dir (default: the system's).
        server_settings: ``-c name=value`` settings of the server (default:
            ``TEST_SETTINGS``; ``{}`` runs PostgreSQL's defaults, as benches do).

    Attributes:
        dir: the cluster's temp dir (data dir, log and Unix socket dir).
        data: the data dir.
        port: the TCP port on 127.0.0.1.
        log_path: the server log.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        base_dir: Path | None = None,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        found = bin_dir or pg_bin_dir()
        if found is None:
            raise FileNotFoundError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.bin_dir = found
        self.dir = Path(tempfile.mkdtemp(prefix="leafnode-pg-", dir=base_dir))
        self.data = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.port = free_port()
        self.running = False
        self._settings = TEST_SETTINGS if server_settings is None else server_settings
        self._runner = _runner()
        if self._runner:
            shutil.chown(self.dir, user=self._runner[2])

    @staticmethod
    def available() -> bool:
        """True when the PostgreSQL server binaries are installed."""
        return pg_bin_dir() is not None

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Create the cluster if needed and start the server; returns once it accepts."""
        if self.running:
            return
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1" + "".join(
            f" -c {name}={value}" for name, value in self._settings.items()
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", opts, "-w", "start"
        )
        self.running = True

    def shutdown(self, mode: str = "immediate") -> None:
        """Stop the server, keeping the data (``mode``: smart, fast or immediate)."""
        if self.running:
            self.running = False
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            self.shutdown()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the ``postgres`` database as the superuser."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random name by default); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{_ident(name)}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_ident(name)}" WITH (FORCE)')

    def log_text(self) -> str:
        """The server log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _run(self, tool: str, *args: str) -> None:
        argv = [*self._runner, str(self.bin_dir / tool), *args]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, check=False)
        if done.returncode != 0:
            out = f"{done.stdout}\n{done.stderr}\n{self.log_text()}"
            raise RuntimeError(f"{tool} failed ({done.returncode}): {out}")


def _ident(name: str) -> str:
    """``name`` as the inside of a quoted SQL identifier."""
    if not name or "\x00" in name:
        raise ValueError(f"bad database name {name!r}")
    return name.replace('"', '""')
