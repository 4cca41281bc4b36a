"""``leafnode api``: the control plane, FastAPI served by uvicorn (asyncio).

Takes nats-server's flags (``leafnode.flags``); ``-m``/``http_port``/``http``/
``api { listen }`` say where to listen (127.0.0.1:8222 when nothing does;
``-m -1`` picks a free port). ``leafnode run`` binds the port itself and hands
the socket over with the internal ``--fd N`` flag, so the port is known
before the api starts and survives an api restart.

Signals: SIGTERM/SIGINT stop (exit 0); SIGHUP re-reads the config file for
the api's own settings (the token, the remotes it reports), as the other
services do for theirs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING, Final

import uvicorn

from leafnode import __version__
from leafnode.config import ConfigError, load, restart_needed
from leafnode.flags import apply_server_flags, load_with_flags
from leafnode.runtime import reapply_logging, setup_logging, write_pid_file

from .app import create_app

if TYPE_CHECKING:
    import argparse
    from types import FrameType

    from leafnode.config import Settings

    from .deps import ApiState

log = logging.getLogger("leafnode.api")

DEFAULT_PORT: Final = 8222
# In-flight requests get this long after SIGTERM; the supervisor allows 5 s in all.
GRACEFUL_SHUTDOWN_S: Final = 1


def _pop_fd(argv: list[str]) -> int | None:
    """Remove the internal ``--fd N`` from ``argv``; return N."""
    for i, arg in enumerate(argv):
        if arg == "--fd" and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i : i + 2]
            return int(value)
        if arg.startswith("--fd="):
            del argv[i]
            return int(arg.split("=", 1)[1])
    return None


def _listen_socket(settings: Settings, fd: int | None) -> socket.socket:
    if fd is not None:
        return socket.socket(fileno=fd)
    port = settings.api.port
    port = DEFAULT_PORT if port is None else 0 if port == -1 else port
    host = settings.api.host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _reload_own(state: ApiState, args: argparse.Namespace) -> None:
    if not args.config:
        return
    try:
        settings = apply_server_flags(load(args.config), args)
    except ConfigError as exc:
        log.error("Failed to reload the api configuration: %s", exc)
        return
    refused = restart_needed(state.settings, settings)
    if refused:  # as nats-server: nothing applied
        for refused_change in refused:
            log.error("Failed to reload the api configuration: %s", refused_change)
        return
    reapply_logging(state.settings.log, settings.log)
    state.settings = settings
    log.info("Reloaded the api configuration")


def _ignore(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it is done; landing
    # here instead of the default handler lets main() return 0.
    return


async def _serve(server: uvicorn.Server, sock: socket.socket, on_hup: object) -> None:
    loop = asyncio.get_running_loop()
    assert callable(on_hup)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await server.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    arglist = list(sys.argv[1:] if argv is None else argv)
    try:
        fd = _pop_fd(arglist)
    except ValueError:
        print("leafnode api: --fd needs a file descriptor number", file=sys.stderr)
        return 2
    loaded = load_with_flags("leafnode api", arglist)
    if isinstance(loaded, int):
        return loaded
    settings, args = loaded
    ls = settings.log
    setup_logging(debug=ls.debug, trace=ls.trace, logtime=ls.logtime, log_file=ls.log_file)
    for warning in settings.warnings:
        log.warning("%s", warning)
    if ls.pid_file:
        write_pid_file(ls.pid_file)
    # uvicorn narrates its start and stop at INFO; our own lines say what matters.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.DEBUG if ls.debug else logging.WARNING)
    log.info("Starting leafnode api")
    log.info("  Version:  %s", __version__)
    try:
        sock = _listen_socket(settings, fd)
    except OSError as exc:
        log.error("Error listening on monitoring port: %s", exc)
        return 1
    host, port = sock.getsockname()[:2]
    app = create_app(
        settings, reapply=lambda s: apply_server_flags(s, args), listen=(str(host), int(port))
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=ls.trace,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ws="none",
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    state: ApiState = app.state.api
    try:
        asyncio.run(_serve(server, sock, lambda: _reload_own(state, args)))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    log.info("Api exiting..")
    return 0


if __name__ == "__main__":
    sys.exit(main())
