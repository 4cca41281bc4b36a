"""Fixtures for the store: real ``leafnode store`` processes on SQLite and PostgreSQL.

Every store test that takes ``store_factory`` runs twice: on a SQLite file in
the test's temp dir and on a fresh database of a throwaway PostgreSQL cluster
(``tests.support.PgCluster``: ``initdb``/``pg_ctl`` as the ``postgres`` user
when we are root), started once per session on a free port with its Unix
socket dir in its own temp dir.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leafnode.config import Settings, StoreSettings
from leafnode.ipc import STORE_SOCKET, FrameDecoder, encode_frame
from tests.support import PgCluster as PgCluster  # re-exported for test modules


def leaf_conf(url: str, *, sync: str = "full", buffers: dict[str, str] | None = None) -> str:
    """A leafnode config with a store and one remote per ``buffers`` entry."""
    remotes = ",\n".join(
        f'    {{ name: "{name}", url: "nats-leaf://127.0.0.1:7422", buffer {{ {block} }} }}'
        for name, block in (buffers or {}).items()
    )
    return (
        f'store {{ url: "{url}", sync: {sync} }}\nleafnodes {{\n  remotes = [\n{remotes}\n  ]\n}}\n'
    )


class StoreProcess:
    """``leafnode store`` as a child process, its socket in ``workdir/run``."""

    def __init__(self, workdir: Path, config: str, *, extra_args: tuple[str, ...] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.conf = workdir / "leaf.conf"
        self.conf.write_text(config)
        self.run_dir = workdir / "run"
        self.socket_path = self.run_dir / STORE_SOCKET
        self.log_path = workdir / "store.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill()/stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "leafnode",
                "store",
                "-c",
                str(self.conf),
                "--run-dir",
                str(self.run_dir),
                "--housekeeping-interval",
                "0.05",
                *extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until the socket answers a ping (the readiness rule, DESIGN §2)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"store exited with {self.proc.returncode}:\n{self.log_text()}")
            if ping(self.socket_path):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"store not ready after {timeout}s:\n{self.log_text()}")
            time.sleep(0.02)

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self._log.close()


def ping(path: Path) -> bool:
    """One synchronous ping over the socket: True when a pong came back."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(path))
            sock.sendall(encode_frame("ping", 1))
            decoder = FrameDecoder()
            while True:
                data = sock.recv(65536)
                if not data:
                    return False
                decoder.feed(data)
                frame = decoder.next_frame()
                if frame is not None:
                    return frame.type == "pong"
    except OSError:
        return False


class StoreFactory:
    """Start stores on this test's database; everything is killed afterwards."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.started: list[StoreProcess] = []

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def config(self, *, sync: str = "full", buffers: dict[str, str] | None = None) -> str:
        return leaf_conf(self.url, sync=sync, buffers=buffers)

    def migrate(self) -> None:
        from services.store.migrate import upgrade

        upgrade(Settings(store=StoreSettings(url=self.url)))

    def start(
        self,
        *,
        sync: str = "full",
        buffers: dict[str, str] | None = None,
        wait: bool = True,
        workdir: Path | None = None,
    ) -> StoreProcess:
        proc = StoreProcess(
            workdir or self.tmp_path / "store", self.config(sync=sync, buffers=buffers)
        )
        self.started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.kill()


@pytest.fixture
def store_factory(store_url: str, tmp_path: Path) -> Iterator[StoreFactory]:
    """Start ``leafnode store`` on ``store_url`` (PostgreSQL is migrated first)."""
    factory = StoreFactory(store_url, tmp_path)
    if factory.is_postgres:
        factory.migrate()
    yield factory
    factory.close()
