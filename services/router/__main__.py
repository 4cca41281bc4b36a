"""``leafnode router``: the local NATS server process."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys

import trio

from leafnode import SERVER_VERSION
from leafnode.config import ConfigError, Settings, UserSettings, load
from leafnode.runtime import setup_logging, write_pid_file

from .server import Server

log = logging.getLogger("leafnode.router")


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnode router", description="Run the local NATS server."
    )
    parser.add_argument("-c", "--config", help="configuration file")
    parser.add_argument("-a", "--addr", "--net", dest="host", help="client listen address")
    parser.add_argument("-p", "--port", type=int, help="client port (-1 for a random port)")
    parser.add_argument("-n", "--name", "--server_name", dest="name", help="server name")
    parser.add_argument("--user", help="user required for connections")
    parser.add_argument("--pass", dest="password", help="password required for connections")
    parser.add_argument("--auth", help="token required for connections")
    parser.add_argument("--run-dir", dest="run_dir", help="directory for the service sockets")
    parser.add_argument("-D", "--debug", action="store_true", help="enable debug log lines")
    parser.add_argument("-V", "--trace", action="store_true", help="enable protocol trace lines")
    parser.add_argument("-DV", dest="debug_trace", action="store_true", help="debug and trace")
    parser.add_argument("-l", "--log", dest="log_file", help="log file")
    parser.add_argument("-P", "--pid", dest="pid_file", help="pid file")
    return parser


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Command-line flags override the file, as with nats-server."""
    router = settings.router
    changes: dict[str, object] = {}
    if args.host is not None:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = 0 if args.port == -1 else args.port
    if args.name is not None:
        changes["server_name"] = args.name
    if args.user is not None:
        changes["users"] = (UserSettings(user=args.user, password=args.password),)
    if args.auth is not None:
        changes["token"] = args.auth
    if changes:
        router = dataclasses.replace(router, **changes)  # type: ignore[arg-type]
    log_settings = settings.log
    if args.debug or args.trace or args.debug_trace or args.log_file or args.pid_file:
        log_settings = dataclasses.replace(
            log_settings,
            debug=log_settings.debug or args.debug or args.debug_trace,
            trace=log_settings.trace or args.trace or args.debug_trace,
            log_file=args.log_file or log_settings.log_file,
            pid_file=args.pid_file or log_settings.pid_file,
        )
    run_dir = args.run_dir or settings.run_dir
    return dataclasses.replace(settings, router=router, log=log_settings, run_dir=run_dir)


async def serve(settings: Settings) -> None:
    server = Server(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("Trapped %s signal", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("Server Exiting..")


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    try:
        settings = load(args.config) if args.config else Settings()
    except ConfigError as exc:
        print(f"leafnode router: {exc}", file=sys.stderr)
        return 1
    settings = apply_flags(settings, args)
    log_settings = settings.log
    setup_logging(
        debug=log_settings.debug,
        trace=log_settings.trace,
        logtime=log_settings.logtime,
        log_file=log_settings.log_file,
    )
    for warning in settings.warnings:
        log.warning("%s", warning)
    if log_settings.pid_file:
        write_pid_file(log_settings.pid_file)
    log.info("Starting leafnode router")
    log.info("  Version:  %s (nats-server protocol %s)", "0.1.0", SERVER_VERSION)
    try:
        trio.run(serve, settings)
    except OSError as exc:
        log.error("Error listening: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
