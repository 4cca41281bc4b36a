"""``leafnode run``: the four services under one supervisor (DESIGN §2, §5).

Theory of operation
-------------------
The client port is bound before anything else (``leafnode.clientport``:
``leafnode.cli`` binds it from the flags before the heavy imports, or the
supervisor right after reading the config file), so a client that connects
while the site starts waits in the kernel's backlog instead of being refused.
The supervisor keeps that socket for the site's whole life and hands it to
each router it starts (``--listen-fd``). The ``websocket { }`` port likewise:
the supervisor binds it right after reading the config (just before the
client port, when that is bound then: a harness that waits for the client
port finds the websocket port listening too) with the client port's
dual-stack rules, keeps it and passes it as ``--websocket-fd``, so a
WebSocket client that reconnects to a restarted site, or to a site whose
router restarts, waits in the backlog too. The router serves clients as soon as
it runs, holding hub-bound messages of buffered subjects in memory until the
store answers (as during a store outage), and answering a publisher's PING
only once its messages are committed.

The supervisor parses nats-server's flags like every service, forks the
fork server (``leafnode.forkserver``: one interpreter that imports the
services' modules once, so the services share those pages), then has it
fork each service (``leafnode <service> ...``'s ``main`` with the same
arguments). The supervisor imports the modules the services share (the
router's and the uplink's: ``PRELOADED``) before it forks the fork server;
the store and the api import their own libraries once forked, side by side.
All are launched at once, the router first, then the supervisor waits until
every one is *ready* (probing them all at once):

* ``store`` (only when some remote has a ``buffer``): ``store.sock`` answers ``ping``;
* ``router`` (already serving the client port): ``router.ctl`` answers ``ping``;
* ``uplink`` (only when remotes are configured): ``uplink.ctl`` answers ``ping``;
* ``api`` (only when a monitoring port is configured: ``-m``, ``http_port``,
  ``http``, ``api { listen }``, as nats-server binds none otherwise): an HTTP
  request on the port is answered. The supervisor binds that port itself,
  with the client port (from ``-m`` before the heavy imports when no config
  file is given, else right after reading the config, before the client
  port), and passes the socket (``--fd``): ``-m -1`` is known before the api
  starts, an HTTP client that connects during start-up waits in the backlog,
  no other process can take the port while the api imports its web stack,
  and the port stays bound while a crashed api restarts.

Then it writes the pid file and the ports file (``nats-server_<pid>.ports`` with the
``nats``, ``monitoring`` and ``websocket`` URLs, from the sockets it holds) itself,
under its own pid, and logs ``Server is ready``: every service answers.
The ports file is removed at exit, and by the fork server when the
supervisor is SIGKILLed (nats.js's harness kills servers that way, and a
later process with the same pid must not be taken for the dead one).

A child that exits while the site runs is restarted after a back-off that
doubles from 0.25 s to 10 s (reset once it stayed up 10 s); a child that
fails before its first readiness is a start-up error (exit 1), as a bad
config is for nats-server. SIGINT/SIGTERM stop the children in reverse order
(api and uplink, router, store), SIGKILL after 4.5 s in all. SIGHUP (or
``supervisor.ctl`` ``reload``, used by the api) re-reads the file, asks each
running service whether it would apply it (``reload`` with ``check``), then
starts a service the new config needs and reloads the others over their
sockets; a refusal anywhere leaves every service as it was.
SIGUSR2 puts the router in lame-duck mode; when it exits, so does the site.
SIGUSR1 reopens the log file, here and in every service (log rotation).

Services run in their own process groups (a terminal's Ctrl-C reaches only
the supervisor, which stops them in order). The fork server dies with the
supervisor and each service gets SIGTERM when the fork server dies
(``PR_SET_PDEATHSIG``), so a SIGKILLed supervisor leaves no service behind.
The router and the api, which hold the ports, are the exception: the fork
server forks them twice so that they are reparented to the supervisor (a
child subreaper, which reaps them), and they get SIGKILL the moment the
supervisor dies: once ``leafnode run``'s pid is gone, the router answers
nothing more, its clients see their connections close at once and every
port is free again, as when nats-server itself is killed (a harness that
restarts a server on the ports it had finds them free).

The supervisor runs on bare asyncio, not trio: it only waits for children,
signals, timers and a few socket requests. (It does import trio, with the
router's modules, for the fork server and the services to share: shared,
those pages count once for the whole site.)
A service's exit is reported by the fork server, which watches a pidfd
per service (no SIGCHLD handler, no watcher thread).

``supervisor.ctl`` requests (ipc frames): ``ping`` -> ``pong`` {pid, services:
{name: pid}}; ``reload`` -> ``ok`` {reloaded, error?, restart_needed?: [{key,
old, new}], services: {name: {reloaded, error?, started?}}}. A reload that
changes a key needing a restart (``leafnode.config.restart_needed``) is
refused as a whole: no service is touched, the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from leafnode import SERVER_VERSION, __version__
from leafnode.clientport import bind_client_port, take_socket
from leafnode.config import ConfigError, load, refusal, restart_needed
from leafnode.entrypoints import service_module
from leafnode.flags import apply_server_flags, leaf_flag_argv, load_with_flags
from leafnode.forkserver import ForkServer, ForkServerError, fd_placeholder, preload
from leafnode.ipc import STORE_SOCKET, FrameDecoder, FrameError, IpcError, encode_frame
from leafnode.ipc.asyncio import request_once, unix_server
from leafnode.pidlock import lock_file
from leafnode.runtime import reapply_logging, request_log_reopen, setup_logging

if TYPE_CHECKING:
    import argparse
    import socket
    from collections.abc import Sequence

    from leafnode.clientport import EarlyListener
    from leafnode.config import Settings
    from leafnode.ipc import Frame

__all__ = [
    "SUPERVISOR_SOCKET",
    "Supervisor",
    "main",
    "probe",
    "probe_main",
    "reload_order",
    "services_needed",
]

log = logging.getLogger("leafnode.run")

SUPERVISOR_SOCKET: Final = "supervisor.ctl"
SOCKETS: Final = {"store": STORE_SOCKET, "router": "router.ctl", "uplink": "uplink.ctl"}
ORDER: Final = ("store", "router", "uplink", "api")
# The order the services are forked in: the router first, as it serves
# clients (the api's imports must not delay the client port's INFO).
SPAWN_ORDER: Final = ("router", "store", "uplink", "api")
# The services whose modules the supervisor imports before it forks the fork
# server: theirs are the shared library's (trio, leafnode.link, .proto,
# .ipc), which the store uses too. The store's SQLAlchemy and the api's
# FastAPI have one user each: each imports its own once forked, both at
# once on two cores, and nobody holds a copy it dirties (leafnode.forkserver).
PRELOADED: Final = ("router", "uplink")
# Standard-library modules that both the store (SQLAlchemy) and the api
# (FastAPI, pydantic) import and the router and the uplink do not: with both
# of them running, one shared copy instead of two (~1 MB). What each imports
# is checked by tests/unit/test_supervisor_preload.py.
STORE_AND_API_SHARE: Final = (
    "calendar",
    "csv",
    "decimal",
    "email.message",
    "email.utils",
    "importlib.metadata",
    "importlib.resources",
    "numbers",
    "pickle",
    "sysconfig",
    "typing_extensions",
    "uuid",
    "zipfile",
)
# Postgres behind a slow network, a store applying migrations: be patient once.
READY_TIMEOUT_S: Final = 30.0
READY_POLL_S: Final = 0.02
BACKOFF_FIRST_S: Final = 0.25
BACKOFF_MAX_S: Final = 10.0
STABLE_S: Final = 10.0
# Stop budget: everything is gone within 5 s of SIGTERM (issue 5).
STOP_DEADLINE_S: Final = 4.5
PING_TIMEOUT_S: Final = 2.0
# sun_path holds 107 bytes: base + "/leafnode-XXXXXXXX/" + "supervisor.ctl" must fit.
MAX_RUN_DIR_BASE: Final = 107 - len("/leafnode-XXXXXXXX/supervisor.ctl")
# Flags only the supervisor acts on: children get no pid file or ports file.
_SUPERVISOR_FLAGS: Final = ("-P", "--pid", "--ports_file_dir")


def services_needed(settings: Settings) -> tuple[str, ...]:
    """Which services ``leafnode run`` starts for ``settings``, in start order.

    The store only when a remote buffers (no database file for a site that
    buffers nothing, and 30-40 MB less), the uplink only when remotes exist,
    the api only when a monitoring port is configured (nats-server binds
    none by default, and two sites on one host must not fight over 8222).
    """
    remotes = settings.leafnodes.remotes
    wanted = {
        "store": any(r.buffer is not None for r in remotes),
        "router": True,
        "uplink": bool(remotes),
        "api": settings.api.port is not None,
    }
    return tuple(name for name in ORDER if wanted[name])


def reload_order(old: Settings, new: Settings, running: Sequence[str]) -> list[str]:
    """The order to reload the ``running`` services in, going from ``old`` to ``new``.

    The router appends buffered subjects to the store; the uplink drops its
    live copies of them (they reach the hub from the store). Between the two
    reloads the services disagree, so the order decides whether that moment
    loses messages or duplicates them: a subject that becomes buffered must
    be appended (router) before its live copies are dropped (uplink), and a
    subject that stops being buffered must be sent live again (uplink)
    before the appends stop (router). Duplicates are within the buffering
    contract (at-least-once, DESIGN §4); losses are not. When one reload
    both adds and removes buffered subjects, removals win (the uplink goes
    first): a message on an added subject published in that moment is sent
    live once the hub has interest, as before the change, only not stored.
    The store goes first (new limits before new appends), the api last.
    """

    def buffered(settings: Settings) -> set[tuple[str, str]]:
        return {
            (remote.name, subject)
            for remote in settings.leafnodes.remotes
            if remote.buffer is not None
            for subject in remote.buffer.subjects
        }

    middle = ["router", "uplink"]
    if buffered(old) - buffered(new):
        middle.reverse()
    order = ["store", *middle, "api"]
    return [name for name in order if name in running]


def strip_flags(argv: Sequence[str], flags: Sequence[str]) -> list[str]:
    """``argv`` without ``flags`` and their values (``-P X``, ``--pid=X``, ``-PX``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if arg in flags:
            skip = True
            continue
        if name in flags and "=" in arg:
            continue
        if any(f.startswith("-") and not f.startswith("--") and arg.startswith(f) for f in flags):
            continue  # -PFILE
        out.append(arg)
    return out


async def _request(
    path: Path,
    type: str,
    timeout: float = PING_TIMEOUT_S,
    fields: dict[str, object] | None = None,
) -> Frame | None:
    """One ipc request; None when nothing (or nothing sensible) answered."""
    try:
        async with asyncio.timeout(timeout):
            return await request_once(path, type, fields)
    except (OSError, IpcError, TimeoutError):
        return None


async def _http_answers(host: str, port: int) -> bool:
    """True when ``GET /healthz`` on ``host:port`` gets any HTTP status line."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"GET /healthz HTTP/1.0\r\nHost: leafnode\r\n\r\n")
                await writer.drain()
                return (await reader.read(16)).startswith(b"HTTP/1.")
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False


async def probe(name: str, run_dir: Path, api: tuple[str, int] | None = None) -> bool:
    """Is service ``name`` ready? (The readiness rules of the module docstring.)

    Args:
        name: ``store``, ``router``, ``uplink`` or ``api``.
        run_dir: where the service sockets are.
        api: the api's ``(host, port)``; required for ``api``.
    """
    if name == "api":
        assert api is not None
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(api[0], api[0])
        return await _http_answers(host, api[1])
    answer = await _request(run_dir / SOCKETS[name], "ping")
    # A router is ready once all its ports listen (its websocket port too).
    return (
        answer is not None and answer.type == "pong" and answer.fields.get("listening") is not False
    )


class StartupError(Exception):
    """A service did not become ready at start-up."""


@dataclass
class Child:
    """One supervised service."""

    name: str
    pid: int | None = None
    since: float = 0.0
    returncode: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        """Launched and not yet reaped."""
        return self.pid is not None and self.returncode is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the child still runs."""
        if self.running:
            assert self.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


class Supervisor:
    """Runs the site for ``settings`` (see the module docstring).

    Args:
        settings: the loaded settings with the flags applied.
        args: the parsed flags (to re-apply on reload).
        argv: the command line after ``run``, passed on to the router and api.
        forks: the fork server that starts the services.
        client_socket: the client port's listening socket (see the module docstring).
        websocket_socket: the ``websocket { }`` port's, when one is configured.
        api_socket: the monitoring port's, when the api runs (``services_needed``).
    """

    def __init__(
        self,
        settings: Settings,
        args: argparse.Namespace,
        argv: Sequence[str],
        forks: ForkServer,
        client_socket: socket.socket,
        websocket_socket: socket.socket | None = None,
        api_socket: socket.socket | None = None,
    ) -> None:
        self.settings = settings
        self.forks = forks
        self.args = args
        self.argv = list(argv)
        self.run_dir = Path(settings.run_dir)
        self.children: dict[str, Child] = {}
        self.stopping = False
        self.lame_duck = False
        self.exit_code = 0
        self.client_socket = client_socket
        self.client_port: int = client_socket.getsockname()[1]
        self.websocket_socket = websocket_socket
        self.api_socket = api_socket
        self.done = asyncio.Event()
        self.ports_file: Path | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._watchers: list[asyncio.Task[None]] = []

    def is_stopping(self) -> bool:
        """True once a stop began (a method: the flag changes while a task sleeps)."""
        return self.stopping

    # -- children ---------------------------------------------------------------------

    def _argv(self, name: str) -> tuple[list[str], tuple[int, ...]]:
        args = self.args
        if name in ("router", "api"):
            tail = strip_flags(self.argv, _SUPERVISOR_FLAGS)
            tail += ["--run-dir", str(self.run_dir)]  # maybe private: not in argv
        else:  # store and uplink take the config, run dir, logging and leaf flags
            tail = ["-c", args.config] if args.config else []
            tail += ["--run-dir", str(self.run_dir)]
            tail += [flag for flag, on in (("-D", args.debug), ("-V", args.trace)) if on]
            tail += ["-DV"] if args.debug_trace else []
            tail += ["-l", args.log_file] if args.log_file else []
            if name == "store" and args.store_url:
                tail += ["--store", args.store_url]
            if name == "store" and args.name:
                tail += ["--name", args.name]  # names this node's backlog
            tail += leaf_flag_argv(args)
        fds: tuple[int, ...] = ()
        if name == "router":
            fds = (self.client_socket.fileno(),)
            tail += ["--listen-fd", fd_placeholder(0)]
            if self.websocket_socket is not None:
                fds += (self.websocket_socket.fileno(),)
                tail += ["--websocket-fd", fd_placeholder(1)]
        elif name == "api":
            assert self.api_socket is not None
            fds = (self.api_socket.fileno(),)
            tail += ["--fd", fd_placeholder(0)]
        return tail, fds

    async def _spawn(self, child: Child) -> None:
        argv, fds = self._argv(child.name)
        child.returncode = None
        child.exited = asyncio.Event()
        try:
            child.pid = await self.forks.spawn(child.name, argv, fds)
        except ForkServerError as exc:
            raise StartupError(f"cannot start {child.name}: {exc}") from exc
        child.since = time.time()
        log.debug("Started %s (pid %d)", child.name, child.pid)

    def _exited(self, pid: int, returncode: int) -> None:
        """The fork server reports that service ``pid`` exited."""
        for child in self.children.values():
            if child.pid == pid and child.returncode is None:
                child.returncode = returncode
                child.exited.set()

    def _forks_lost(self) -> None:
        """The fork server died: its services die with it (SIGTERM); so does the site."""
        if self.stopping:
            return
        log.error("The fork server exited; stopping")
        self.exit_code = 1
        for child in self.children.values():
            if child.running:
                child.signal(signal.SIGTERM)
                child.returncode = -signal.SIGTERM
                child.exited.set()
        assert self._tasks is not None
        self._tasks.create_task(self.shutdown())

    async def _wait_ready(self, child: Child) -> None:
        api = self.api_socket.getsockname()[:2] if self.api_socket is not None else None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while not child.exited.is_set():
                    if await probe(child.name, self.run_dir, api):
                        await self._after_ready(child)
                        return
                    await asyncio.sleep(READY_POLL_S)
        except TimeoutError:
            raise StartupError(f"{child.name} not ready after {READY_TIMEOUT_S:g}s") from None
        raise StartupError(f"{child.name} exited with status {child.returncode}")

    async def _after_ready(self, child: Child) -> None:
        self._write_pid_file()

    async def _supervise(self, child: Child) -> None:
        """Restart ``child`` (ready once already) whenever it exits."""
        failures = 0
        while True:
            await child.exited.wait()
            if self.stopping:
                return
            if child.name == "router" and self.lame_duck:
                log.info("Router finished lame duck mode; stopping")
                await self.shutdown()
                return
            uptime = time.time() - child.since
            failures = 0 if uptime >= STABLE_S else failures + 1
            delay = min(BACKOFF_FIRST_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)
            log.error(
                "Service %s exited with status %s; restarting in %.2fs",
                child.name,
                child.returncode,
                delay,
            )
            await asyncio.sleep(delay)
            if self.is_stopping():
                return
            try:
                await self._spawn(child)
                await self._wait_ready(child)
            except StartupError as exc:
                log.error("Restarted %s did not become ready: %s", child.name, exc)
                child.signal(signal.SIGKILL)
                continue
            log.info("Service %s restarted (pid %d)", child.name, child.pid)

    async def start(self, names: Sequence[str]) -> None:
        """Start services ``names`` and wait until every one is ready.

        The processes are launched together, the router first (in
        ``SPAWN_ORDER``), and probed together: the router serves clients
        while the store and the api still import their libraries. A
        service that comes up before the one it talks to retries its socket
        (the uplink every 0.1 s), as after any restart.

        Raises:
            StartupError: one exited or did not become ready in time.
        """
        assert self._tasks is not None
        children = [self.children.setdefault(name, Child(name)) for name in names]
        for child in sorted(children, key=lambda c: SPAWN_ORDER.index(c.name)):
            await self._spawn(child)
        # Probed all at once: each probe's wait and round trip no longer adds
        # up (the ready line still waits for every one).
        waits = [asyncio.ensure_future(self._wait_ready(child)) for child in children]
        try:
            await asyncio.gather(*waits)
        finally:
            for wait in waits:
                wait.cancel()
        for child in children:
            self._watchers.append(self._tasks.create_task(self._supervise(child)))

    # -- stop, reload, signals ------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every child in reverse start order, within ``STOP_DEADLINE_S``."""
        if self.stopping:
            await self.done.wait()
            return
        self.stopping = True
        deadline = asyncio.get_running_loop().time() + STOP_DEADLINE_S
        for group in (("api", "uplink"), ("router",), ("store",)):
            running = [c for n in group if (c := self.children.get(n)) and c.running]
            for child in running:
                child.signal(signal.SIGTERM)
            await _wait_exits(running, asyncio.timeout_at(deadline))
        left = [c for c in self.children.values() if c.running]
        for child in left:
            log.warning("Service %s did not stop in time; killing it", child.name)
            child.signal(signal.SIGKILL)
        await _wait_exits(left, asyncio.timeout(1.0))
        self.done.set()

    async def reload(self) -> dict[str, object]:
        """SIGHUP: re-read the file, start what it newly needs, reload the rest.

        Refused as a whole (nothing started, nothing reloaded) when the file
        changes a key that needs a restart; each such key is logged.
        """
        old = self.settings
        if self.args.config:
            try:
                new = apply_server_flags(load(self.args.config), self.args, default_run_dir="")
            except ConfigError as exc:
                log.error("Failed to reload configuration: %s", exc)
                return {"reloaded": False, "error": str(exc), "services": {}}
            if not new.run_dir:  # still none configured: the private one in use
                new = dataclasses.replace(new, run_dir=str(self.run_dir))
            refused = restart_needed(old, new)
            if refused:
                # As nats-server: nothing applied, every service keeps running as it was.
                for change in refused:
                    log.error("Failed to reload configuration: %s", change)
                return {
                    "reloaded": False,
                    "error": refusal(refused),
                    "restart_needed": [change.as_dict() for change in refused],
                    "services": {},
                }
            problem = await self._check_reload()
            if problem is not None:
                log.error("Failed to reload configuration: %s", problem)
                return {"reloaded": False, "error": problem, "services": {}}
            reapply_logging(old.log, new.log)
            self.settings = new
        results: dict[str, dict[str, object]] = {}
        for name in services_needed(self.settings):
            if name not in self.children and not self.stopping:
                try:
                    await self.start([name])
                except StartupError as exc:
                    results[name] = {"reloaded": False, "error": f"could not start: {exc}"}
                    continue
                results[name] = {"reloaded": True, "started": True}
        for name in reload_order(old, self.settings, list(self.children)):
            child = self.children[name]
            if name in results:
                continue
            if name == "api":
                child.signal(signal.SIGHUP)  # the api re-reads its own settings
                results[name] = {"reloaded": True}
                continue
            answer = await _request(self.run_dir / SOCKETS[name], "reload", READY_TIMEOUT_S)
            if answer is None:
                results[name] = {"reloaded": False, "error": f"{name} did not answer"}
            elif answer.type == "error":
                results[name] = {"reloaded": False, "error": str(answer.fields.get("error"))}
            else:
                entry: dict[str, object] = {"reloaded": answer.fields.get("reloaded") is not False}
                if isinstance(answer.fields.get("error"), str):
                    entry["error"] = answer.fields["error"]
                results[name] = entry
        ok = all(entry["reloaded"] for entry in results.values())
        log.info("Reloaded configuration%s", "" if ok else " (not every service applied it)")
        return {"reloaded": ok, "services": results}

    async def _check_reload(self) -> str | None:
        """Ask each running service whether it would apply the file (``reload`` ``check``).

        A file one service refuses (a creds file it cannot read, TLS files
        that do not load) is then applied by none. Returns the first refusal.
        A service that does not answer refuses nothing: the reload reports it.
        """
        for name in ORDER:
            if name not in SOCKETS or name not in self.children:
                continue
            path = self.run_dir / SOCKETS[name]
            answer = await _request(path, "reload", READY_TIMEOUT_S, {"check": True})
            if answer is None:
                continue
            error = answer.fields.get("error")
            if answer.type == "error" or isinstance(error, str):
                return f"{name}: {error}"
        return None

    async def _signals(self, signals: asyncio.Queue[int]) -> None:
        # One signal at a time, in order: a SIGTERM during a reload waits for it.
        while True:
            signum = await signals.get()
            if signum == signal.SIGHUP:
                await self.reload()
            elif signum == signal.SIGUSR2:
                log.info("Entering lame duck mode, stop accepting new clients")
                self.lame_duck = True
                # The router stops accepting; our copies must not keep the ports open.
                self.client_socket.close()
                if self.websocket_socket is not None:
                    self.websocket_socket.close()
                if "router" in self.children:
                    self.children["router"].signal(signal.SIGUSR2)
            else:
                log.info("Trapped %s signal", signal.Signals(signum).name)
                await self.shutdown()

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            try:
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    writer.write(await self._answer(frame))
                    await writer.drain()
            except FrameError as exc:
                log.error("supervisor.ctl: bad frame: %s", exc)
                return
            decoder.compact()

    async def _answer(self, frame: Frame) -> bytes:
        if frame.type == "ping":
            pids = {n: c.pid for n, c in self.children.items() if c.pid is not None}
            return encode_frame("pong", frame.id, {"pid": os.getpid(), "services": pids})
        if frame.type == "reload":
            return encode_frame("ok", frame.id, await self.reload())
        return encode_frame(
            "error", frame.id, {"error": f"unknown request {frame.type!r}", "code": "unknown_type"}
        )

    def _reopen_logs(self) -> None:
        """SIGUSR1: reopen the log file here and in every service (log rotation)."""
        if not self.settings.log.log_file:
            log.info("File log re-open ignored, not a file logger")
            return
        request_log_reopen()
        log.info("File log re-opened")
        for child in self.children.values():
            child.signal(signal.SIGUSR1)

    # -- files ----------------------------------------------------------------------------

    def _write_pid_file(self) -> None:
        # Written again after each child start: a child given `pid_file` by the
        # config file writes its own pid there; the file must name us.
        path = self.settings.log.pid_file
        if path:
            with contextlib.suppress(OSError), open(path, "w", encoding="ascii") as fh:
                fh.write(str(os.getpid()))

    def _websocket_url(self) -> str | None:
        """The websocket port's URL as nats-server writes it in its ports file."""
        ws = self.settings.router.websocket
        if ws is None or self.websocket_socket is None:
            return None
        host = ws.host if ws.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        scheme = "ws" if ws.tls is None else "wss"
        return f"{scheme}://{host}:{self.websocket_socket.getsockname()[1]}"

    def _write_ports_file(self) -> None:
        path = ports_file_path(self.settings)
        if path is None:
            return
        router = self.settings.router
        host = router.host if router.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        scheme = "tls" if router.tls is not None else "nats"
        ports: dict[str, list[str]] = {"nats": [f"{scheme}://{host}:{self.client_port}"]}
        if self.api_socket is not None:
            api_host, api_port = self.api_socket.getsockname()[:2]
            api_host = "127.0.0.1" if api_host in ("0.0.0.0", "::") else api_host
            ports["monitoring"] = [f"http://{api_host}:{api_port}"]
        websocket = self._websocket_url()
        if websocket is not None:
            ports["websocket"] = [websocket]
        path.parent.mkdir(parents=True, exist_ok=True)
        # Renamed into place: a tool polling for the file never reads half of it.
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(json.dumps(ports))
        partial.replace(path)
        self.ports_file = path

    # -- the whole run --------------------------------------------------------------------

    async def run(self) -> int:
        """Start the site, serve until stopped; returns the exit status."""
        loop = asyncio.get_running_loop()
        signals: asyncio.Queue[int] = asyncio.Queue()
        self.forks.attach(self._exited, self._forks_lost)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2):
            loop.add_signal_handler(signum, signals.put_nowait, signum)
        loop.add_signal_handler(signal.SIGUSR1, self._reopen_logs)
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(
                    unix_server(self.run_dir / SUPERVISOR_SOCKET, self._control)
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    answer = await _request(self.run_dir / SUPERVISOR_SOCKET, "ping")
                    pid = answer.fields.get("pid") if answer is not None else None
                    holder = f" (pid {pid})" if isinstance(pid, int) else ""
                    log.error("Another leafnode%s runs with run_dir %s", holder, self.run_dir)
                else:
                    log.error("Cannot create %s: %s", SUPERVISOR_SOCKET, exc)
                return 1
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                handler = tasks.create_task(self._signals(signals))
                await self._run_site()
                # Stopped: end the signal handler and every restart loop.
                for task in (handler, *self._watchers):
                    task.cancel()
        if self.ports_file is not None:
            with contextlib.suppress(OSError):
                self.ports_file.unlink()
        return self.exit_code

    async def _run_site(self) -> None:
        try:
            await self.start(services_needed(self.settings))
        except StartupError as exc:
            if not self.stopping:
                log.error("Startup failed: %s", exc)
                self.exit_code = 1
            await self.shutdown()
        else:
            self._write_ports_file()
            self._write_pid_file()
            log.info("Server is ready")
            await self.done.wait()


async def _wait_exits(children: Sequence[Child], timeout: asyncio.Timeout) -> None:
    """Wait until every one of ``children`` exited, or the ``timeout`` expired."""
    try:
        async with timeout:
            for child in children:
                await child.exited.wait()
    except TimeoutError:
        pass


def ports_file_path(settings: Settings) -> Path | None:
    """Where ``leafnode run`` writes its ports (as nats-server names it), if anywhere."""
    directory = settings.ports_file_dir
    return Path(directory) / f"nats-server_{os.getpid()}.ports" if directory else None


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite://`` store URL; None for another database or memory."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.partition("+")[0] != "sqlite":
        return None
    path = rest.removeprefix("/").partition("?")[0]
    return path if path and path != ":memory:" else None


def _private_run_dir() -> str:
    """A new run directory of this instance alone, under $XDG_RUNTIME_DIR or /tmp.

    /tmp also when the other would make the sockets' paths longer than a
    Unix socket address holds.
    """
    for base in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if base and os.path.isdir(base) and len(base) <= MAX_RUN_DIR_BASE:
            break
    return tempfile.mkdtemp(prefix="leafnode-", dir=base)


def main(
    argv: Sequence[str] | None = None,
    *,
    early: EarlyListener | None = None,
    early_monitor: EarlyListener | None = None,
) -> int:
    """``leafnode run [-c FILE] [nats-server flags]``; returns the exit status.

    Args:
        argv: the flags after ``run``.
        early: the client socket ``leafnode.cli`` bound from the flags, if any.
        early_monitor: the monitoring socket it bound from ``-m``, if any.
    """
    arglist = list(sys.argv[1:] if argv is None else argv)
    # No run_dir configured: a private one (several sites run side by side
    # from one directory, as nats-servers do), not the lone services' ./run.
    loaded = load_with_flags("leafnode run", arglist, default_run_dir="")
    if isinstance(loaded, int):
        return loaded
    settings, args = loaded
    ls = settings.log
    setup_logging(debug=ls.debug, trace=ls.trace, logtime=ls.logtime, log_file=ls.log_file)
    log.info("Starting leafnode")
    log.info("  Version:  %s (nats-server protocol %s)", __version__, SERVER_VERSION)
    if args.config:
        log.info("  Using configuration file: %s", args.config)
    needed = services_needed(settings)
    log.info("  Services: %s", ", ".join(needed))
    router = settings.router
    with contextlib.ExitStack() as cleanup:
        websocket_socket: socket.socket | None = None
        keep: list[int] = []
        if router.websocket is not None:
            ws = router.websocket
            try:
                websocket_socket = bind_client_port(ws.host, ws.port)
            except OSError as exc:
                # nats-server's words (websocket.go).
                log.error("Unable to listen for websocket connections: %s", exc)
                return 1
            cleanup.callback(websocket_socket.close)
            keep.append(websocket_socket.fileno())
        api_socket: socket.socket | None = None
        if "api" in needed:
            api = settings.api
            assert api.port is not None  # services_needed: the api runs when a port is set
            try:
                api_socket = take_socket(early_monitor, api.host, api.port)
            except OSError as exc:
                # nats-server's words (monitor.go).
                log.error(
                    "Can't start monitoring: can't listen to the monitor port %s:%d: %s",
                    api.host,
                    api.port,
                    exc,
                )
                return 1
            cleanup.callback(api_socket.close)
            keep.append(api_socket.fileno())
        try:
            client_socket = take_socket(early, router.host, router.port)
        except OSError as exc:
            log.error("Error listening on port: %s:%d, %s", router.host, router.port, exc)
            return 1
        cleanup.callback(client_socket.close)
        keep.append(client_socket.fileno())
        database = sqlite_path(settings.store.url) if "store" in needed else None
        if database is not None:
            with contextlib.suppress(OSError):  # the store reports a bad path itself
                fd, holder = lock_file(database)
                if holder is not None:
                    log.error("Another leafnode (pid %d) buffers into %s", holder, database)
                    return 1
                assert fd is not None
                cleanup.callback(os.close, fd)
                keep.append(fd)
        if not settings.run_dir:
            private = _private_run_dir()
            cleanup.callback(shutil.rmtree, private, ignore_errors=True)
            settings = dataclasses.replace(settings, run_dir=private)
            log.debug("Private run directory %s", private)
        # The shared modules are imported here, before the fork server is
        # forked (PRELOADED); the store and the api import their own libraries
        # once forked (leafnode.forkserver, "Memory").
        shared = STORE_AND_API_SHARE if {"store", "api"} <= set(needed) else ()
        preload([*(service_module(name) for name in PRELOADED if name in needed), *shared])
        # Forked before the event loop exists. It closes its copies of the
        # client and websocket sockets (only the supervisor and the router
        # hold the ports, so they close when those are gone) and of the
        # database lock.
        ports_file = ports_file_path(settings)
        forks = ForkServer.start(
            (),
            close_fds=keep,
            ports_file=str(ports_file) if ports_file is not None else None,
        )
        cleanup.callback(forks.close)
        supervisor = Supervisor(
            settings, args, arglist, forks, client_socket, websocket_socket, api_socket
        )
        try:
            code = asyncio.run(supervisor.run())
        except KeyboardInterrupt:
            code = 0
    log.info("Server Exiting..")
    return code


def probe_main(argv: Sequence[str]) -> int:
    """``python -m leafnode.supervisor probe SERVICE RUN_DIR|HOST:PORT``: a health check.

    Exit 0 when the service is ready by the rules ``leafnode run`` uses
    (docker-compose's healthchecks run this), 1 when not, 2 on bad usage.
    """
    usage = "usage: python -m leafnode.supervisor probe store|router|uplink RUN_DIR | api HOST:PORT"
    if len(argv) != 3 or argv[0] != "probe" or argv[1] not in ORDER:
        print(usage, file=sys.stderr)
        return 2
    name, target = argv[1], argv[2]
    api: tuple[str, int] | None = None
    if name == "api":
        host, _, port = target.rpartition(":")
        if not port.isdigit():
            print(usage, file=sys.stderr)
            return 2
        api = (host.strip("[]") or "127.0.0.1", int(port))
    return 0 if asyncio.run(probe(name, Path(target), api)) else 1


if __name__ == "__main__":
    sys.exit(probe_main(sys.argv[1:]))
