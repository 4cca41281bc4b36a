"""Services forked from one preloaded interpreter, for ``leafnode run``.

Theory of operation
-------------------
Each service is its own process (DESIGN §2), but four Python interpreters
that each import trio, SQLAlchemy or FastAPI from scratch hold four private
copies of the same modules: the site idled at ~145 MB PSS when every
service was ``exec``'d (issue 5 wants 120 MB for all of them). So
``leafnode run`` forks one *fork server* before it starts its event loop,
once the modules the services share are imported (:func:`preload`: with the
modules each names in its ``PRELOAD`` tuple, what it would import only once
running) and frozen out of the cyclic GC, and the fork server forks a
service whenever the supervisor asks. The services share those pages
copy-on-write; a page is copied only when a process writes to it.

The fork server can import in two stages: the ``first`` modules, then the
others; it forks a requested service as soon as the stage holding its
module is in (the request waits meanwhile).

Memory
------
Sharing is copy-on-write, and CPython writes to what it touches: reference
counts, the specialised bytecode of every function it runs, and new objects
put into the free slots of pages the parent filled (its obmalloc pools, its
malloc heap). So a page is shared only while *no* process that maps it
writes to it, and every page written after a fork exists twice from then
on. Measured per process (``/proc/PID/smaps_rollup``, ``bench/site_bench``)
this gives three rules, which ``leafnode run`` follows:

* import before the first fork, not after: whatever the fork server
  imported once forked dirtied the supervisor's copy of the pages it
  allocated into (~5 MB private to the supervisor), and whatever it imported
  after forking the router the router's (~3 MB). So the supervisor imports
  the shared modules itself (``leafnode.supervisor.PRELOADED``: the router's
  and the uplink's, i.e. trio and the shared library) before it forks the
  fork server, which then imports nothing;
* preload only what two services use: a library with one user (the store's
  SQLAlchemy, ~23 MB; the api's FastAPI, pydantic and uvicorn, ~28 MB)
  costs the same pages whether preloaded or not, but preloaded its user
  still copies the part it writes, and the fork server and every service
  forked after it map the rest: importing each in its own process saved
  ~20 MB PSS in all, and lets the two import side by side on two cores;
* freeze before forking (``gc.freeze``: a collection writes to every tracked
  object's header).

The fork server is deliberately tiny and single-threaded: no event loop,
no logging handlers of its own, one ``SOCK_SEQPACKET`` socket to the
supervisor (one datagram per message, so no framing) and one pidfd per
service it forked. Forking from it, rather than from the supervisor's
running asyncio loop, gives each service a clean process: no inherited
event loop, signal wakeup fd, listening socket or pidfds.

Messages are JSON objects. Supervisor to fork server: ``{"name", "argv"}``
with the file descriptors the service needs attached (``SCM_RIGHTS``); an
``argv`` item ``"{fdN}"`` (:func:`fd_placeholder`) is replaced by the number
the N-th attached descriptor (from 0) has in the service. Fork server to
supervisor: ``{"pid"}`` (or ``{"error"}``) answering each request in order,
and ``{"exit": pid, "code": c}`` whenever a service exits (``c`` as
``subprocess`` reports it: negative for a signal).

Lifetimes: the fork server dies with the supervisor (``PR_SET_PDEATHSIG`` =
SIGTERM, on which it removes the supervisor's ports file, if any, and exits:
a SIGKILLed ``leafnode run`` leaves no ports file behind for a later
process with its pid, whose harness would read the dead one's ports) and
leaves when its socket closes;
each service gets SIGTERM when the fork server dies, so a SIGKILLed
supervisor still leaves no service behind. The services that hold a port
(``ADOPTED``: the router and the api) are forked twice so that each becomes
the supervisor's child (the supervisor is a child subreaper, and reaps it:
the fork server, which watches its pidfd, reports its exit with no
status), and gets SIGKILL when the supervisor dies, at once rather than
through the fork server's death. All run in their own process groups: a
terminal's Ctrl-C reaches only the supervisor, which stops the services in
order.

Names: a forked service cannot change its command line, so it sets its
process name (``/proc/PID/comm``, what ``top`` and ``ps -e`` show) to
``leafnode-<service>``; the fork server is ``leafnode-fork``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from typing import TYPE_CHECKING, Final

from leafnode.entrypoints import SERVICE_MAINS, service_main, service_module

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["ForkServer", "ForkServerError", "fd_placeholder", "preload", "process_name"]

PR_SET_PDEATHSIG: Final = 1
# How long the fork server, told its supervisor died, waits for it to be
# gone before it removes the ports file (its threads end one by one).
SUPERVISOR_EXIT_WAIT_MS: Final = 2000
# The supervisor's last message: it closes the socket next, alive (the end of
# the socket without it means that the supervisor died).
STOP: Final = b'{"stop": true}'
PR_SET_NAME: Final = 15
MAX_MESSAGE: Final = 65536
MAX_FDS: Final = 4
# Services forked as the supervisor's own children (reparented to it, a child
# subreaper) and killed (SIGKILL) the moment it dies: those that hold a port,
# so that a SIGKILL of `leafnode run` closes them at once, as it does for
# nats-server. nats.js's suite kills the pid it started, expects the client
# connection gone (through the fork server, the router would have answered
# PINGs for a few more milliseconds) and restarts a server on the same ports
# (the api, stopping on SIGTERM, held the monitoring port 40 ms or more).
ADOPTED: Final = frozenset({"router", "api"})
PR_SET_CHILD_SUBREAPER: Final = 36


class ForkServerError(Exception):
    """The fork server could not start a service, or is gone."""


def fd_placeholder(index: int) -> str:
    """The ``argv`` item the fork server replaces with attached descriptor ``index``'s number."""
    return f"{{fd{index}}}"


def process_name(service: str) -> str:
    """The ``/proc/PID/comm`` name of a forked ``service`` (at most 15 bytes)."""
    return f"leafnode-{service}"[:15]


def _prctl() -> Callable[..., int]:
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def _set_name(name: str) -> None:
    _prctl()(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class ForkServer:
    """The supervisor's end: spawn services and hear about their exits.

    Create it with :meth:`start` before the event loop runs, then
    :meth:`attach` inside the loop.
    """

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self._pending: asyncio.Future[int] | None = None
        self._lock: asyncio.Lock | None = None
        self._on_exit: Callable[[int, int], None] | None = None
        self._on_lost: Callable[[], None] | None = None
        self.lost = False

    @classmethod
    def start(
        cls,
        modules: Sequence[str],
        close_fds: Sequence[int] = (),
        *,
        first: Sequence[str] = (),
        ports_file: str | None = None,
    ) -> ForkServer:
        """Fork the fork server; it imports ``first``, then ``modules``.

        A service is forked once the stage holding its module is imported
        (one neither names imports its own). ``close_fds`` are the
        supervisor's descriptors the fork server (and so every service) must
        not hold: the listening sockets. ``ports_file`` is the file the
        supervisor writes its ports to, removed if the supervisor dies.
        Call it from the main thread with no event loop running and no other
        thread alive (a fork copies only the calling thread).
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        # The ADOPTED services are reparented to us, not to init.
        _prctl()(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # What the supervisor imported is shared with the fork server and the
        # services: keep the supervisor's own collections off those pages.
        gc.collect()
        gc.freeze()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or both processes would write out the same buffer
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the fork server (tested end to end)
            code = 0
            try:
                ours.close()
                for fd in close_fds:
                    os.close(fd)
                _serve(theirs, [list(first), list(modules)], parent, ports_file)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        ours.setblocking(False)
        return cls(ours, pid)

    def attach(self, on_exit: Callable[[int, int], None], on_lost: Callable[[], None]) -> None:
        """Start listening (inside the running loop).

        Args:
            on_exit: called with (pid, returncode) when a service exits.
            on_lost: called once if the fork server goes away.
        """
        self._on_exit = on_exit
        self._on_lost = on_lost
        self._lock = asyncio.Lock()
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    async def spawn(self, name: str, argv: Sequence[str], fds: Sequence[int] = ()) -> int:
        """Fork service ``name`` with ``argv`` (after ``leafnode <name>``); returns its pid.

        Raises:
            ForkServerError: the fork failed or the fork server is gone.
        """
        assert self._lock is not None, "attach() first"
        async with self._lock:
            if self.lost:
                raise ForkServerError("the fork server is gone")
            self._pending = asyncio.get_running_loop().create_future()
            message = json.dumps({"name": name, "argv": list(argv)}).encode()
            try:
                socket.send_fds(self.sock, [message], list(fds))
            except OSError as exc:
                raise ForkServerError(f"cannot reach the fork server: {exc}") from exc
            return await self._pending

    def _readable(self) -> None:
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lose()
            return
        message = json.loads(data)
        if "exit" in message:
            assert self._on_exit is not None
            pid, code = int(message["exit"]), message["code"]
            if code is None:  # an ADOPTED service: our child, a zombie now
                try:
                    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                except ChildProcessError:
                    code = -signal.SIGKILL
            self._on_exit(pid, int(code))
            return
        pending, self._pending = self._pending, None
        if pending is None or pending.done():
            return
        if "pid" in message:
            pending.set_result(int(message["pid"]))
        else:
            pending.set_exception(ForkServerError(str(message.get("error"))))

    def _lose(self) -> None:
        if self.lost:
            return
        self.lost = True
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(ForkServerError("the fork server is gone"))
        if self._on_lost is not None:
            self._on_lost()

    def close(self) -> None:
        """Say goodbye, close the socket (the fork server exits) and reap it.

        Called once the event loop that ``attach`` registered with has ended.
        """
        with contextlib.suppress(OSError):
            self.sock.setblocking(True)
            self.sock.send(STOP)
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


# -- the fork server process --------------------------------------------------------------


def preload(modules: Sequence[str]) -> None:
    """Import ``modules`` and what each names in ``PRELOAD``, then freeze what is in.

    The fork server runs it for its stages; ``leafnode run``'s supervisor
    for the shared modules, before it forks the fork server.
    """
    for name in modules:
        # A module that fails to import fails again, with its traceback, in
        # the service that needs it.
        with contextlib.suppress(Exception):
            module = importlib.import_module(name)
            # What the service imports only once it runs (a database driver,
            # the web server's protocol classes), named by the service.
            for extra in getattr(module, "PRELOAD", ()):
                importlib.import_module(extra)
    gc.collect()
    gc.freeze()


def _exits(pid: int, within_ms: int) -> bool:
    """True when process ``pid`` is gone or exits within ``within_ms``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(within_ms))
    finally:
        os.close(pidfd)


def _remove_if_gone(parent: int, ports_file: str | None) -> None:
    """Remove the supervisor's ``ports_file`` if it is gone or going."""
    if ports_file and _exits(parent, SUPERVISOR_EXIT_WAIT_MS):
        with contextlib.suppress(OSError):
            os.unlink(ports_file)


def _on_supervisor_death(me: int, parent: int, ports_file: str | None) -> None:
    """SIGTERM in the fork server: remove the dead supervisor's ports file, and exit."""

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != me:  # a service between its fork and its own handlers
            return
        # Not a SIGTERM someone else sent: the supervisor is gone or going.
        # (The death signal comes when the thread that forked us ends, while
        # the supervisor's other threads may still be ending: getppid() still
        # names it then. Its pidfd becomes readable once it has exited.)
        _remove_if_gone(parent, ports_file)
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)


def _serve(
    sock: socket.socket, stages: list[list[str]], parent: int, ports_file: str | None = None
) -> None:
    """The fork server's loop (runs in the forked process until ``sock`` closes)."""
    _on_supervisor_death(os.getpid(), parent, ports_file)
    _prctl()(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        if ports_file:
            with contextlib.suppress(OSError):
                os.unlink(ports_file)
        return
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_name(process_name("fork"))
    stages = [stage for stage in stages if stage]
    to_import = {name for stage in stages for name in stage}
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    services: dict[int, int] = {}  # pidfd -> pid
    adopted: set[int] = set()  # services reparented to the supervisor
    # A request whose service's module is still to import (the supervisor
    # sends the next one only once this one is answered).
    waiting: tuple[bytes, list[int]] | None = None
    # Once the first stage is in, the next waits for the first request (the
    # supervisor's, for the router), which may come a moment later.
    hold_after_first = len(stages) > 1
    held = False
    while True:
        if waiting is not None and _module_of(waiting[0]) not in to_import:
            request, waiting = waiting, None
            if not _fork_requested(request, sock, services, adopted, parent, poller):
                return
        # Requests and exits first; with none, the next stage's imports.
        events = poller.poll(0 if stages and not held else None)
        if not events and stages:
            stage = stages.pop(0)
            preload(stage)
            to_import.difference_update(stage)
            held, hold_after_first = hold_after_first, False
            continue
        for fd, _ in events:
            if fd != sock.fileno():
                pid = services.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                # An adopted service is the supervisor's child: it reaps it.
                code: int | None = None
                if pid not in adopted:
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                adopted.discard(pid)
                if not _tell(sock, {"exit": pid, "code": code}):
                    return
                continue
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
            if data == STOP:
                return  # the supervisor is done with us
            if not data:  # the supervisor died (the death signal may come later)
                _remove_if_gone(parent, ports_file)
                return
            waiting, held = (data, fds), False


def _module_of(data: bytes) -> str:
    """The module of the service request ``data`` names ("" for none: it fails when served)."""
    with contextlib.suppress(ValueError, AttributeError):
        name = json.loads(data).get("name")
        if isinstance(name, str) and name in SERVICE_MAINS:
            return service_module(name)
    return ""


def _fork_requested(
    request: tuple[bytes, list[int]],
    sock: socket.socket,
    services: dict[int, int],
    adopted: set[int],
    parent: int,
    poller: select.poll,
) -> bool:
    """Fork the service ``request`` names and answer it; False once the supervisor is gone."""
    data, fds = request
    try:
        message = json.loads(data)
        name = message["name"]
        if name in ADOPTED:
            pid = _fork_adopted(name, message["argv"], fds, sock, services, parent)
            adopted.add(pid)
        else:
            pid = _fork_service(name, message["argv"], fds, sock, services)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _tell(sock, {"error": str(exc)})
    finally:
        for received in fds:
            os.close(received)
    pidfd = os.pidfd_open(pid)
    services[pidfd] = pid
    poller.register(pidfd, select.POLLIN)
    return _tell(sock, {"pid": pid})


def _fork_adopted(
    name: str,
    argv: list[str],
    fds: list[int],
    sock: socket.socket,
    services: dict[int, int],
    supervisor: int,
) -> int:
    """Fork service ``name`` as the supervisor's child (see ``ADOPTED``); returns its pid.

    A double fork: the intermediate forks the service, reports its pid over a
    pipe and exits, so the service is reparented to the supervisor (a child
    subreaper). Only then does the service set its death signal, which from
    that moment fires when the supervisor dies.
    """
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # pragma: no cover - the intermediate process
        try:
            os.close(read_end)
            me = os.getpid()  # before the fork: we may be gone when the child asks
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
                _adopted_child(name, argv, fds, sock, services, supervisor, me)
            os.write(write_end, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answer = os.read(read_end, 32)
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)
    if not answer:
        raise OSError(f"could not fork {name}")
    return int(answer)


def _adopted_child(
    name: str,
    argv: list[str],
    fds: list[int],
    sock: socket.socket,
    services: dict[int, int],
    supervisor: int,
    middle: int,
) -> None:  # pragma: no cover - runs in the service
    """In an adopted service: wait to be the supervisor's child, then run as any service."""
    while os.getppid() == middle:  # the intermediate exits right after forking us
        time.sleep(0.0002)
    if os.getppid() != supervisor:  # the supervisor died meanwhile
        os._exit(1)
    _run_service(name, argv, fds, sock, services, parent=supervisor)


def _death_signal(name: str) -> int:
    """What service ``name`` gets when its parent dies.

    The router and the api (``ADOPTED``: their parent is the supervisor) get SIGKILL; the
    others (the fork server's children) get SIGTERM and stop cleanly (the
    store commits what it holds).
    """
    return signal.SIGKILL if name in ADOPTED else signal.SIGTERM


def _tell(sock: socket.socket, message: dict[str, object]) -> bool:
    """Send ``message`` to the supervisor; False once it is gone (we leave then)."""
    try:
        sock.send(json.dumps(message).encode())
    except OSError:
        return False
    return True


def _fork_service(
    name: str, argv: list[str], fds: list[int], sock: socket.socket, services: dict[int, int]
) -> int:
    """Fork service ``name``; returns its pid in the fork server (never returns in the child)."""
    server = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    _run_service(name, argv, fds, sock, services, parent=server)  # pragma: no cover
    return 0  # pragma: no cover - _run_service never returns


def _run_service(
    name: str,
    argv: list[str],
    fds: list[int],
    sock: socket.socket,
    services: dict[int, int],
    *,
    parent: int,
) -> None:  # pragma: no cover - runs in the service
    """Set up the forked process ``name`` and run its main; never returns."""
    numbers = {fd_placeholder(i): str(fd) for i, fd in enumerate(fds)}
    argv = [numbers.get(arg, str(arg)) for arg in argv]
    keep = set(fds)
    code: int = 1
    try:
        sock.close()
        for pidfd in services:
            os.close(pidfd)
        os.setpgid(0, 0)
        _prctl()(PR_SET_PDEATHSIG, _death_signal(name), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        # What a freshly exec'd interpreter starts with.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        if null not in keep:
            os.close(null)
        _set_name(process_name(name))
        code = service_main(name)(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
