"""Start, wait for and stop servers for benchmarks.

Benchmarks compare a real ``nats-server`` with the leafnode router, both run
as child processes on 127.0.0.1 and a free port. A server is described by an
argv *template*: ``{host}`` and ``{port}`` in any element are replaced when it
starts, so the same helpers run nats-server, the router, or anything else a
benchmark wants to swap in (``--leafnode-cmd`` in ``bench.router_bench``).

Readiness is "the TCP port accepts a connection", not a log line, so the
helpers do not depend on either server's log format. Output goes to a log
file rather than a pipe: a pipe nobody reads fills up and stalls a chatty
server in the middle of a measurement.

Free ports, the readiness wait and the choice of nats-server binary are the
tests' own (``tests.support``), so benches and tests start servers alike.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support import free_port, nats_server_binary, wait_for_port

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "DEFAULT_HOST",
    "RunningServer",
    "ServerStartError",
    "leafnode_router_argv",
    "nats_server_argv",
    "parse_command_template",
    "running_server",
    "start_server",
]

#: Benchmarks only ever listen on loopback (``tests.support.free_port``'s address).
DEFAULT_HOST = "127.0.0.1"

#: How long a server may take to accept connections. The Python router
#: imports trio and friends first, which takes about a second on a busy box.
DEFAULT_READY_TIMEOUT = 20.0

#: Grace period between SIGTERM and SIGKILL when stopping.
STOP_GRACE = 5.0

#: Free-port selection can race with other processes on the machine; a
#: server that dies before accepting is retried on a new port this often.
START_ATTEMPTS = 3


class ServerStartError(RuntimeError):
    """A server process exited or never accepted connections."""


@dataclass
class RunningServer:
    """A server child process that accepted a connection on ``host:port``.

    Attributes:
        name: Label used in messages (``"nats-server"``, ``"leafnode"``).
        host: Listen address.
        port: Listen port.
        argv: The command that was run, placeholders filled in.
        proc: The child process.
        log_path: File receiving the child's stdout and stderr.
    """

    name: str
    host: str
    port: int
    argv: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The ``nats://host:port`` URL clients connect to."""
        return f"nats://{self.host}:{self.port}"

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.proc.poll() is None

    def log_tail(self, max_bytes: int = 2000) -> str:
        """Return the last ``max_bytes`` of the server's output, for error reports."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, *, keep_log: bool = False) -> int | None:
        """Stop the server: SIGTERM, then SIGKILL after :data:`STOP_GRACE` seconds.

        Safe to call more than once.

        Args:
            keep_log: Leave the log file on disk (its path is ``log_path``).

        Returns:
            The process's exit code.
        """
        if not self._stopped:
            self._stopped = True
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if not keep_log:
                self.log_path.unlink(missing_ok=True)
        return self.proc.returncode


def _fill(template: Sequence[str], host: str, port: int) -> list[str]:
    # str.replace, not str.format: a command may legitimately contain braces.
    return [arg.replace("{host}", host).replace("{port}", str(port)) for arg in template]


def start_server(
    name: str,
    template: Sequence[str],
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    env: dict[str, str] | None = None,
) -> RunningServer:
    """Start a server from an argv template and wait until it accepts.

    Args:
        name: Label for messages.
        template: argv with ``{host}``/``{port}`` placeholders.
        ready_timeout: Seconds to wait for the port to accept.
        env: Environment for the child; the parent's when ``None``.

    Returns:
        The running server. The caller must :meth:`RunningServer.stop` it;
        :func:`running_server` does that automatically.

    Raises:
        ServerStartError: The server did not come up after
            :data:`START_ATTEMPTS` attempts; the message holds its log tail.
    """
    host = DEFAULT_HOST
    last_error = ""
    for _ in range(START_ATTEMPTS):
        port = free_port()
        argv = _fill(template, host, port)
        fd, log_name = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        log_path = Path(log_name)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            log_path.unlink(missing_ok=True)
            raise ServerStartError(f"{name}: cannot run {shlex.join(argv)}: {exc}") from exc
        finally:
            os.close(fd)
        server = RunningServer(name, host, port, argv, proc, log_path)
        try:
            wait_for_port(port, host=host, timeout=ready_timeout, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            exited_early = proc.poll() is not None
            last_error = f"{exc}\n--- {name} output ---\n{server.log_tail()}"
            server.stop()
            if exited_early:
                # Maybe a lost port race; try again on a fresh port.
                continue
            break
        return server
    raise ServerStartError(f"{name}: {shlex.join(template)} failed to start: {last_error}")


@contextlib.contextmanager
def running_server(
    name: str,
    template: Sequence[str],
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
) -> Iterator[RunningServer]:
    """Context manager around :func:`start_server` that always stops the server.

    Args:
        name: Label for messages.
        template: argv with ``{host}``/``{port}`` placeholders.
        ready_timeout: Seconds to wait for the port to accept.

    Yields:
        The running server.
    """
    server = start_server(name, template, ready_timeout=ready_timeout)
    try:
        yield server
    finally:
        server.stop()


def nats_server_argv() -> list[str]:
    """Return the argv template for a plain nats-server (no auth, no JetStream)."""
    return [nats_server_binary(), "-a", "{host}", "-p", "{port}"]


def leafnode_router_argv() -> list[str]:
    """Return the argv template for the leafnode router, run by this interpreter."""
    return [sys.executable, "-m", "leafnode", "router", "-a", "{host}", "-p", "{port}"]


def parse_command_template(command: str) -> list[str]:
    """Split a shell-like command line into an argv template.

    Args:
        command: e.g. ``"nats-server -a {host} -p {port}"``.

    Returns:
        The argv, placeholders left in place.

    Raises:
        ValueError: The command is empty or has no ``{port}`` placeholder
            (the server would then listen somewhere we cannot find).
    """
    argv = shlex.split(command)
    if not argv:
        raise ValueError("empty server command")
    if not any("{port}" in arg for arg in argv):
        raise ValueError(f"server command needs a {{port}} placeholder: {command!r}")
    return argv
