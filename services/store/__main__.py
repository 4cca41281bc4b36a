"""``leafnode store``: the durable buffer, the only process that opens the database.

Start-up order: read the config, open the engine, bring the schema to head
(SQLite) or verify it (PostgreSQL, see ``migrate.py``), load the counters, and
only then bind ``run_dir/store.sock``: a client that can connect can append.

Signals, as nats-server: SIGINT/SIGTERM stop; SIGHUP re-reads the config
file, as the ``reload`` request on ``store.sock`` does (``leafnode run``'s
supervisor sends that one): new buffer limits apply to the next appends and
housekeeping, a new ``buffer { takeover_after }`` to the next lease tick.
``store { url, sync }`` changes need a restart: a reload with one is
refused as a whole (``leafnode.config.restart_needed``).

The node's name, which names its backlog on a shared PostgreSQL store
(``leases.py``), is ``server_name`` (or ``-n``), else the host name.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import socket
import sys
from pathlib import Path

import trio
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from leafnode.config import (
    ConfigError,
    Settings,
    StoreSettings,
    load,
    refusal,
    restart_needed,
)
from leafnode.flags import SHARED_RUN_DIR, add_leaf_flags, apply_leaf_flags
from leafnode.ipc import STORE_SOCKET
from leafnode.redact import redact_url
from leafnode.runtime import reapply_logging, setup_logging, write_pid_file

from .engine import create_store_engine
from .health import database_name, describe
from .migrate import SchemaError, ensure_schema
from .server import HOUSEKEEPING_INTERVAL_S, StoreServer
from .service import StoreService

log = logging.getLogger("leafnode.store")


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leafnode store", description="Run the durable buffer.")
    parser.add_argument("-c", "--config", help="configuration file")
    parser.add_argument("--store", dest="store_url", help="database URL (overrides store.url)")
    parser.add_argument("--run-dir", dest="run_dir", help="directory for the service sockets")
    parser.add_argument("-D", "--debug", action="store_true", help="enable debug log lines")
    parser.add_argument("-V", "--trace", action="store_true", help="enable trace log lines")
    parser.add_argument("-DV", dest="debug_trace", action="store_true", help="debug and trace")
    parser.add_argument("-l", "--log", dest="log_file", help="log file")
    parser.add_argument("-P", "--pid", dest="pid_file", help="pid file")
    parser.add_argument("-n", "--name", dest="name", help="server name (names this node)")
    parser.add_argument(
        "--housekeeping-interval",
        type=float,
        default=HOUSEKEEPING_INTERVAL_S,
        help=argparse.SUPPRESS,  # tests shorten it; max_age/retain checks run this often
    )
    add_leaf_flags(parser)  # --buffer decides what the store keeps limits for
    return parser


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Command-line flags override the file, as with nats-server."""
    store = settings.store
    if args.store_url:
        store = dataclasses.replace(store, url=args.store_url)
    log_settings = dataclasses.replace(
        settings.log,
        debug=settings.log.debug or args.debug or args.debug_trace,
        trace=settings.log.trace or args.trace or args.debug_trace,
        log_file=args.log_file or settings.log.log_file,
        pid_file=args.pid_file or settings.log.pid_file,
    )
    router = settings.router
    if args.name:
        router = dataclasses.replace(router, server_name=args.name)
    settings = dataclasses.replace(
        settings,
        router=router,
        store=store,
        log=log_settings,
        run_dir=args.run_dir or settings.run_dir or SHARED_RUN_DIR,
    )
    return apply_leaf_flags(settings, args)


def reload(
    service: StoreService, running: list[Settings], args: argparse.Namespace, check: bool = False
) -> tuple[str | None, list[str]]:
    """Re-read the config file and apply its buffer limits; ``(error, changes)``.

    Runs in the store's DB thread, between two operations. ``running[0]`` is
    the config in effect, replaced when a reload applies. A file that does
    not load, or that changes a key needing a restart (``store { url, sync }``
    among them), leaves every limit as it was. With ``check`` only validate.
    """
    if not args.config:
        log.info("Reloaded: no configuration file to re-read")
        return None, []
    try:
        settings = apply_flags(load(args.config), args)
    except ConfigError as exc:
        log.error("Failed to reload the configuration: %s", exc)
        return str(exc), []
    refused = restart_needed(running[0], settings)
    if refused:  # as nats-server: nothing applied
        for refused_change in refused:
            log.error("Failed to reload the configuration: %s", refused_change)
        return refusal(refused), []
    if check:
        return None, []
    reapply_logging(running[0].log, settings.log)
    running[0] = settings
    buffers = {r.name: r.buffer for r in settings.leafnodes.remotes if r.buffer is not None}
    changes = service.reload(buffers)
    takeover_after_s = settings.store.takeover_after_s
    if service.leases is not None and service.leases.takeover_after_s != takeover_after_s:
        changes.append(
            f"buffer.takeover_after {service.leases.takeover_after_s:g}s -> {takeover_after_s:g}s"
        )
        service.leases.takeover_after_s = takeover_after_s
    for change in changes:
        log.info("Reloaded: %s", change)
    log.info("Reloaded configuration (%d change(s))", len(changes))
    return None, changes


async def serve(server: StoreServer) -> None:
    # Signals are caught from before the store's socket answers (readiness).
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await server.reload()
                    continue
                log.info("Trapped %s signal", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("Store exiting")


def node_name(settings: Settings) -> str:
    """This node's name: ``server_name``, else the host name (README, "Redundant site")."""
    return settings.router.server_name or socket.gethostname()


def _url_problem(exc: Exception) -> str:
    """Why the engine was not made, without the URL (an ArgumentError quotes it whole)."""
    if isinstance(exc, ArgumentError):
        return "expected sqlite:///PATH or postgresql://USER@HOST/DB"
    if isinstance(exc, ModuleNotFoundError):
        return f"its driver is not installed (no module {exc.name!r})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    try:
        settings = apply_flags(load(args.config) if args.config else Settings(), args)
    except ConfigError as exc:
        print(f"leafnode store: {exc}", file=sys.stderr)
        return 1
    ls = settings.log
    setup_logging(debug=ls.debug, trace=ls.trace, logtime=ls.logtime, log_file=ls.log_file)
    for warning in settings.warnings:
        log.warning("%s", warning)
    # alembic narrates every step at INFO; our own line says what happened.
    logging.getLogger("alembic").setLevel(logging.DEBUG if ls.debug else logging.WARNING)
    if ls.pid_file:
        write_pid_file(ls.pid_file)
    buffers = {r.name: r.buffer for r in settings.leafnodes.remotes if r.buffer is not None}
    log.info("Starting leafnode store")
    try:
        engine = create_store_engine(settings.store)
    except Exception as exc:  # a bad URL or a missing driver: say so, exit 1
        log.error("Bad store url %s: %s", redact_url(settings.store.url), _url_problem(exc))
        return 1
    log.info("  Database: %s (sync %s)", engine.url.render_as_string(), settings.store.sync)
    try:
        done = ensure_schema(settings.store, engine)
        if done == "created":
            log.info("Created the store schema at the current revision")
        elif done == "upgraded":
            log.info("Upgraded the store schema to the current revision")
        service = StoreService(
            engine,
            buffers,
            node=node_name(settings),
            takeover_after_s=settings.store.takeover_after_s,
        )
        service.open()
    except SchemaError as exc:
        log.error("Store schema: %s", exc)
        return 1
    except SQLAlchemyError as exc:
        log.error(
            "Cannot open the store database: %s", describe(exc, database_name(settings.store.url))
        )
        return 1
    log.info("  Leaf id:  %s, last seq %d", service.leaf_id, service.last_seq)
    if service.leases is not None:
        log.info(
            "  Node:     %s, backlog %r (takeover after %gs)",
            service.node,
            service.backlog,
            service.leases.takeover_after_s,
        )
    elif settings.store.takeover_after_s != StoreSettings().takeover_after_s:
        log.warning(
            "buffer.takeover_after is ignored: a SQLite store is this node's alone "
            "(backlog takeover needs a PostgreSQL store shared by the nodes)"
        )
    running = [settings]
    server = StoreServer(
        service,
        Path(settings.run_dir) / STORE_SOCKET,
        housekeeping_interval_s=args.housekeeping_interval,
        reload=lambda check: reload(service, running, args, check),
    )
    try:
        trio.run(serve, server)
    except OSError as exc:
        log.error("Error listening: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
