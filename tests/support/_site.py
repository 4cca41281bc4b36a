"""Test support for the control plane and ``leafnode run``: real processes, real sockets.

``SiteProcess`` runs the whole site under ``leafnode run``; ``ApiProcess`` runs
the api beside a ``RouterProcess`` (and ``ServiceProcess`` stores) sharing its
run directory, as docker-compose runs them. Readiness is always what the
services define it as: a socket that answers ``ping``, an HTTP port that
answers a request, a ports file written once the site is ready.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from leafnode.ipc import FrameDecoder, encode_frame
from leafnode.procfs import processes

from ._procs import _Process, free_port

__all__ = [
    "ApiProcess",
    "SiteProcess",
    "http_get",
    "pid_alive",
    "ping_socket",
    "wait_for_socket",
]


def ping_socket(path: Path, timeout: float = 2.0) -> bool:
    """One ``ping`` over a service socket: True when a ``pong`` came back."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(encode_frame("ping", 1))
            decoder = FrameDecoder()
            while data := sock.recv(65536):
                decoder.feed(data)
                frame = decoder.next_frame()
                if frame is not None:
                    return frame.type == "pong"
    except OSError:
        pass
    return False


def wait_for_socket(path: Path, proc: _Process, *, timeout: float = 20.0) -> None:
    """Block until ``path`` answers ``ping``; fail early when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while not ping_socket(path):
        if proc.proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.proc.returncode}:\n{proc.log_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not answer ping in {timeout}s:\n{proc.log_text()}")
        time.sleep(0.02)


def http_get(port: int, path: str, *, token: str | None = None) -> tuple[int, bytes]:
    """``GET http://127.0.0.1:port/path``: status and body (no exception on 4xx/5xx)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def site_processes(supervisor: int) -> dict[str, int]:
    """Name -> pid of the live processes under a ``leafnode run`` supervisor.

    The fork server (``fork``) is the supervisor's child and the services are
    its children; each names itself ``leafnode-<name>`` in ``/proc/PID/comm``.
    """
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for proc in processes():
        parents[proc.pid] = proc.ppid
        names[proc.pid] = proc.comm
    found: dict[str, int] = {}
    for pid, comm in names.items():
        if not comm.startswith("leafnode-") or not pid_alive(pid):
            continue
        ancestor = parents.get(pid, 0)
        for _ in range(2):  # the fork server, then a service
            if ancestor == supervisor:
                found[comm.removeprefix("leafnode-")] = pid
                break
            ancestor = parents.get(ancestor, 0)
    return found


def _leafnode(*args: str) -> list[str]:
    return [sys.executable, "-m", "leafnode", *args]


class ApiProcess(_Process):
    """``leafnode api`` on a free port of 127.0.0.1, attached to ``run_dir``."""

    def __init__(
        self,
        config_path: Path,
        run_dir: Path,
        *,
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="leafnode-api-"))
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = _leafnode(
            "api", "-c", str(config_path), "--run-dir", str(run_dir), "-m", str(port), *extra_args
        )
        super().__init__(argv, workdir, port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until the port answers HTTP (any status)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                http_get(self.port, "/healthz")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"api exited with {self.proc.returncode}:\n{self.log_text()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"api not answering:\n{self.log_text()}") from None
                time.sleep(0.02)


class SiteProcess(_Process):
    """``leafnode run`` with ``-p -1 -m -1`` and a ports file in its temp dir.

    ``wait_ready`` waits for the ports file (written once the site is ready)
    and reads both URLs from it; ``port`` and ``http_port`` are then known.
    """

    def __init__(
        self,
        config: str = "",
        *,
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = ("-p", "-1", "-m", "-1"),
        env: dict[str, str] | None = None,
    ) -> None:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="leafnode-site-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "leaf.conf"
        self.config_path.write_text(config)
        self.run_dir = workdir / "run"
        self.ports_dir = workdir / "ports"
        self.http_port = 0
        argv = _leafnode(
            "run",
            "-c",
            str(self.config_path),
            "-a",
            "127.0.0.1",
            "--run-dir",
            str(self.run_dir),
            "--ports_file_dir",
            str(self.ports_dir),
            *extra_args,
        )
        super().__init__(argv, workdir, 0, env)

    @property
    def ports_file(self) -> Path:
        return self.ports_dir / f"nats-server_{self.proc.pid}.ports"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        # The supervisor's own line (the router logs one too, before the
        # supervisor has written the ports file).
        ready = re.compile(rf"^\[{self.proc.pid}\] .*Server is ready$", re.MULTILINE)
        while not ready.search(self.log_text()):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"leafnode run exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"leafnode run not ready:\n{self.log_text()}")
            time.sleep(0.02)
        ports = json.loads(self.ports_file.read_text())
        self.port = int(ports["nats"][0].rsplit(":", 1)[1])
        if "monitoring" in ports:
            self.http_port = int(ports["monitoring"][0].rsplit(":", 1)[1])

    def children(self) -> dict[str, int]:
        """Service name -> pid of the site's live services (not the fork server)."""
        found = site_processes(self.proc.pid)
        found.pop("fork", None)
        return found

    def signal(self, signum: int = signal.SIGTERM) -> None:
        os.kill(self.proc.pid, signum)
