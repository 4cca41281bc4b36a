"""``leafnode uplink``: the hub connections of this site.

Signals, as nats-server: SIGINT/SIGTERM stop; SIGHUP re-reads the config
file (remotes added, removed or changed; buffer subjects), as the
``reload`` request on ``uplink.ctl`` does. The control socket is bound once
the uplink is built: it answering ``ping`` is the readiness rule (DESIGN §2).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import ssl
import sys
from pathlib import Path

import trio

from leafnode import SERVER_VERSION, __version__
from leafnode.config import ConfigError, Settings, load, refusal, restart_needed
from leafnode.flags import SHARED_RUN_DIR, add_leaf_flags, apply_leaf_flags
from leafnode.ipc import serve_unix_socket
from leafnode.runtime import reapply_logging, setup_logging, write_pid_file

from .auth import CredentialsError, check_credentials
from .control import CONTROL_SOCKET, ControlHandler, ReloadResult
from .dialer import tls_context
from .service import Uplink

# Imported with this module by `leafnode run` before it forks its fork
# server, so the pages are shared (leafnode.forkserver.preload): what this
# service imports only once it runs.
PRELOAD = ("encodings.idna",)

log = logging.getLogger("leafnode.uplink")


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leafnode uplink", description="Run the leafnode connections to the hubs."
    )
    parser.add_argument("-c", "--config", help="configuration file")
    parser.add_argument("--run-dir", dest="run_dir", help="directory for the service sockets")
    parser.add_argument("-D", "--debug", action="store_true", help="enable debug log lines")
    parser.add_argument("-V", "--trace", action="store_true", help="enable protocol trace lines")
    parser.add_argument("-DV", dest="debug_trace", action="store_true", help="debug and trace")
    parser.add_argument("-l", "--log", dest="log_file", help="log file")
    parser.add_argument("-P", "--pid", dest="pid_file", help="pid file")
    add_leaf_flags(parser)
    return parser


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Command-line flags override the file, as with nats-server."""
    log_settings = settings.log
    if args.debug or args.trace or args.debug_trace or args.log_file or args.pid_file:
        log_settings = dataclasses.replace(
            log_settings,
            debug=log_settings.debug or args.debug or args.debug_trace,
            trace=log_settings.trace or args.trace or args.debug_trace,
            log_file=args.log_file or log_settings.log_file,
            pid_file=args.pid_file or log_settings.pid_file,
        )
    run_dir = args.run_dir or settings.run_dir or SHARED_RUN_DIR
    settings = dataclasses.replace(settings, log=log_settings, run_dir=run_dir)
    return apply_leaf_flags(settings, args)


def check_remotes(settings: Settings) -> str | None:
    """Start-up checks the config parser cannot do: creds contents, TLS files.

    Returns the error line to print, or None when every remote is usable.
    """
    for remote in settings.leafnodes.remotes:
        try:
            check_credentials(remote)
        except CredentialsError as exc:
            return f"{exc} (remote {remote.name!r})"
        try:
            tls_context(remote.tls)
        except (OSError, ssl.SSLError) as exc:
            return f"{settings.source}: remote {remote.name!r}: cannot load TLS files: {exc}"
    return None


def reload(uplink: Uplink, args: argparse.Namespace, *, check: bool = False) -> ReloadResult:
    """Re-read the config file and apply it; ``(error, changes)``.

    With ``check`` only validate it (credentials and TLS files included).
    """
    if not args.config:
        return "no configuration file to reload", []
    try:
        settings = apply_flags(load(args.config), args)
    except ConfigError as exc:
        log.error("Failed to reload the configuration: %s", exc)
        return str(exc), []
    refused = restart_needed(uplink.settings, settings)
    if refused:  # as nats-server: nothing applied
        for refused_change in refused:
            log.error("Failed to reload the configuration: %s", refused_change)
        return refusal(refused), []
    error = check_remotes(settings)
    if error is not None:
        log.error("Failed to reload the configuration: %s", error)
        return error, []
    if check:
        return None, []
    old_log = uplink.settings.log
    try:
        changes = uplink.reload(settings)
    except (OSError, ssl.SSLError) as exc:
        log.error("Failed to reload the configuration: %s", exc)
        return str(exc), []
    reapply_logging(old_log, settings.log)
    for change in changes:
        log.info("Reloaded: %s", change)
    log.info("Reloaded configuration (%d change(s))", len(changes))
    return None, changes


async def serve(settings: Settings, args: argparse.Namespace | None = None) -> None:
    uplink = Uplink(settings)
    cli = args if args is not None else build_arg_parser().parse_args([])
    handler = ControlHandler(uplink, lambda check: reload(uplink, cli, check=check))
    # Signals are caught from before the control socket answers (readiness).
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uplink.run)
            await nursery.start(serve_unix_socket, Path(settings.run_dir) / CONTROL_SOCKET, handler)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    reload(uplink, cli)
                    continue
                log.info("Trapped %s signal", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("Uplink exiting..")


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    try:
        settings = apply_flags(load(args.config) if args.config else Settings(), args)
    except ConfigError as exc:
        print(f"leafnode uplink: {exc}", file=sys.stderr)
        return 1
    error = check_remotes(settings)
    if error is not None:
        print(f"leafnode uplink: {error}", file=sys.stderr)
        return 1
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
    log.info("Starting leafnode uplink")
    log.info("  Version:  %s (nats-server protocol %s)", __version__, SERVER_VERSION)
    if not settings.leafnodes.remotes:
        log.warning("No leafnodes remotes configured; nothing to connect to")
    for remote in settings.leafnodes.remotes:
        log.info(
            '  Remote "%s": account %s, %d URL(s)', remote.name, remote.account, len(remote.urls)
        )
    try:
        trio.run(serve, settings, args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
