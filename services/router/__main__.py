"""``leafnode router``: the local NATS server process.

Signals, as nats-server: SIGINT/SIGTERM stop; SIGHUP reloads the config file;
SIGUSR2 enters lame-duck mode (stop accepting, tell clients with ``ldm``,
close them over the lame-duck duration, exit).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import resource
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from leafnode import SERVER_VERSION, __version__
from leafnode.config import ConfigError, load, refusal, restart_needed
from leafnode.flags import apply_server_flags, load_with_flags
from leafnode.ipc.trio import serve_unix_socket
from leafnode.runtime import reapply_logging, setup_logging, write_pid_file

from .auth import Authenticator
from .control import CONTROL_SOCKET, ControlHandler
from .server import Server, build_ssl_context

if TYPE_CHECKING:
    import argparse

    from leafnode.config import Settings

# Imported with this module by `leafnode run` before it forks its fork
# server, so the pages are shared (leafnode.forkserver.preload): what this
# service imports only once it runs.
PRELOAD = ("encodings.idna",)

log = logging.getLogger("leafnode.router")

# Where the client port's listening socket goes (see _high_fd), the
# websocket port's just below: the fd table grows to this size, 8 KiB.
HIGH_FD = 1024


def ports_file_path(directory: str) -> Path:
    # nats-server names it <executable>_<pid>.ports; tools look for this name.
    return Path(directory) / f"nats-server_{os.getpid()}.ports"


async def serve(
    settings: Settings,
    args: argparse.Namespace,
    *,
    listen_socket: socket.socket | None = None,
    websocket_socket: socket.socket | None = None,
) -> None:
    server = Server(settings)
    supervised = listen_socket is not None
    ports_file = (
        ports_file_path(settings.ports_file_dir)
        if settings.ports_file_dir and not supervised
        else None
    )
    # Signals are caught from before the first port listens: a SIGTERM sent
    # as soon as the client port answers stops the server cleanly (it waits
    # in the receiver until the loop below reads it).
    with trio.open_signal_receiver(
        signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2
    ) as signals:
        async with trio.open_nursery() as nursery:
            # The control socket first: once the client port accepts, router.ctl
            # answers too (readiness as DESIGN §2 defines it).
            control = ControlHandler(server, lambda check: _reload(server, args, check=check))
            await nursery.start(serve_unix_socket, Path(settings.run_dir) / CONTROL_SOCKET, control)
            await nursery.start(
                functools.partial(
                    server.serve,
                    listen_socket=listen_socket,
                    websocket_socket=websocket_socket,
                    ports_file=ports_file,
                )
            )
            async for signum in signals:
                if signum == signal.SIGHUP:
                    _reload(server, args)
                    continue
                if signum == signal.SIGUSR2:
                    log.info("Entering lame duck mode, stop accepting new clients")
                    nursery.start_soon(server.lame_duck, nursery.cancel_scope)
                    continue
                log.info("Trapped %s signal", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("Server Exiting..")


def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as Go (so nats-server) does.

    Each client costs the router two descriptors; a distribution's default
    soft limit (1024) would refuse clients long before the machine must.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("Could not raise the open files limit from %d: %s", soft, exc)


def _reload(server: Server, args: argparse.Namespace, *, check: bool = False) -> str | None:
    """Re-read the config file; returns the error text, or None when applied.

    With ``check`` only validate: the error it would refuse with, or None.
    """
    if not args.config:
        if not check:
            log.info("Reloaded: no configuration file to re-read")
        return None
    try:
        settings = apply_server_flags(load(args.config), args)
    except ConfigError as exc:
        log.error("Failed to reload server configuration: %s", exc)
        return str(exc)
    refused = restart_needed(server.full_settings, settings)
    if refused:  # as nats-server: nothing applied
        for refused_change in refused:
            log.error("Failed to reload server configuration: %s", refused_change)
        return refusal(refused)
    try:  # what server.reload builds, built first: a bad file changes nothing
        build_ssl_context(settings.router)
        Authenticator(settings.router)
        Authenticator.for_websocket(settings.router)
    except (OSError, ssl.SSLError, ValueError) as exc:
        log.error("Failed to reload server configuration: %s", exc)
        return str(exc)
    if check:
        return None
    reapply_logging(server.full_settings.log, settings.log)
    server.reload(settings)
    log.info("Reloaded server configuration")
    return None


def _pop_fd(argv: list[str], flag: str) -> int | None:
    """Remove the internal ``flag N`` (``--listen-fd`` ...) from ``argv``; N (-1: malformed)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            del argv[i : i + 2]
            return int(value) if value.isdigit() else -1
    return None


def _high_fd(fd: int, below: int = 0) -> int:
    """Move ``fd`` above the descriptors client sockets will get; returns its number now.

    When the router is killed, Linux closes its descriptors in ascending
    order but releases the sockets last-closed-first, so the client port's
    listening socket, placed above every client socket, is released before
    any of them: a client that saw its connection end and reconnects is
    refused, as after nats-server was killed (nats.js's suite does exactly
    that). Client sockets take the lowest free numbers, so this holds up to
    about ``HIGH_FD`` connections. ``below``: how many slots under the top
    to aim at (the websocket port's socket goes right under the client
    port's, which takes the top one).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(soft if soft != resource.RLIM_INFINITY else HIGH_FD, HIGH_FD) - 1 - below
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, target)
    except OSError:
        return fd
    os.close(fd)
    return high


def main(argv: list[str] | None = None) -> int:
    arglist = list(sys.argv[1:] if argv is None else argv)
    # Internal flags for `leafnode run`. --listen-fd N: serve the client port
    # socket the supervisor bound (it keeps the port while a router restarts);
    # --websocket-fd N: the same for the `websocket { }` port.
    listen_fd = _pop_fd(arglist, "--listen-fd")
    websocket_fd = _pop_fd(arglist, "--websocket-fd")
    for flag, fd in (("--listen-fd", listen_fd), ("--websocket-fd", websocket_fd)):
        if fd == -1:
            print(f"leafnode router: {flag} needs a file descriptor number", file=sys.stderr)
            return 2
    listen_socket = socket.socket(fileno=_high_fd(listen_fd)) if listen_fd is not None else None
    websocket_socket = (
        socket.socket(fileno=_high_fd(websocket_fd, below=1)) if websocket_fd is not None else None
    )
    supervised = listen_socket is not None
    loaded = load_with_flags("leafnode router", arglist)
    if isinstance(loaded, int):
        return loaded
    settings, args = loaded
    log_settings = settings.log
    setup_logging(
        debug=log_settings.debug,
        trace=log_settings.trace,
        logtime=log_settings.logtime,
        log_file=log_settings.log_file,
    )
    for warning in settings.warnings:
        log.warning("%s", warning)
    # Under `leafnode run` the supervisor owns the pid file, the ports file
    # and the "Server is ready" line.
    if log_settings.pid_file and not supervised:
        write_pid_file(log_settings.pid_file)
    raise_nofile_limit()
    log.info("Starting leafnode router")
    log.info("  Version:  %s (nats-server protocol %s)", __version__, SERVER_VERSION)
    if args.config:
        log.info("  Using configuration file: %s", args.config)
    try:
        trio.run(
            functools.partial(
                serve,
                settings,
                args,
                listen_socket=listen_socket,
                websocket_socket=websocket_socket,
            )
        )
    except OSError as exc:
        log.error("Error listening: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
