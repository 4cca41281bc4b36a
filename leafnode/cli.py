"""The ``leafnode`` command (DESIGN §5): one argparse subcommand per function.

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in
``build_parser``; ``main`` returns its exit status. Flags shared with
nats-server keep its spelling (``-c/--config``); as nats-server, ``-v`` and
``--signal``/``-sl`` (``leafnode.signalcmd``) work at the top level and
after ``run``.

Nothing heavy is imported at module level: ``leafnode run`` binds its client
and monitoring ports (``leafnode.clientport``) before it imports the supervisor, so that a
client connecting right after exec waits in the backlog, not refused.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from leafnode import version_line
from leafnode.entrypoints import service_main

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# The services of leafnode.entrypoints, as ``leafnode --help`` lists them.
SERVICES = {
    "router": "the local NATS server (client port, accounts, routing)",
    "uplink": "the hub connections (leafnode protocol, auth, reconnect)",
    "store": "the durable buffer (the only process that opens the database)",
    "api": "the control plane (monitoring, config, buffer, replay over HTTP)",
    "migrate": "upgrade the store's database schema (alembic upgrade head)",
}

__all__ = ["build_parser", "main"]


def _cmd_check(args: argparse.Namespace) -> int:
    """``leafnode check -c FILE``: validate a config file, as ``nats-server -t``.

    Prints ``configuration file FILE test is successful`` and returns 0, or
    prints ``FILE:LINE:COL: reason`` to stderr and returns 1. Warnings about
    ignored options go to stderr either way.
    """
    from leafnode.config import ConfigError, load

    try:
        settings = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"configuration file {args.config} test is successful")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``leafnode`` argument parser with every subcommand."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="leafnode", description="A NATS leaf node that buffers hub-bound traffic."
    )
    parser.add_argument("-v", "--version", action="version", version=version_line())
    parser.add_argument(
        "-sl",
        "--signal",
        metavar="CMD[=PID]",
        help="send stop|quit|term|reopen|reload|ldm to a running leafnode run",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser("check", help="validate a config file and exit")
    check.add_argument("-c", "--config", required=True, metavar="FILE", help="config file")
    check.set_defaults(func=_cmd_check)
    commands.add_parser("run", help="run the leaf node", add_help=False)
    for name, summary in SERVICES.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``leafnode`` command line; returns the process exit status."""
    arglist = list(sys.argv[1:] if argv is None else argv)
    if arglist[:1] in (["-v"], ["--version"]):
        print(version_line())
        return 0
    command = arglist[1:] if arglist[:1] == ["run"] else arglist
    if any(arg in ("--signal", "-sl") or arg.startswith("--signal=") for arg in command):
        from leafnode.signalcmd import signal_main

        return signal_main(command)
    if arglist and arglist[0] == "run":
        # The ports first, before anything heavy is imported: clients that
        # connect now wait in the backlog (leafnode.clientport). Monitoring
        # before the client port: who found the client port finds both.
        from leafnode.clientport import bind_early, bind_early_monitor

        early_monitor = bind_early_monitor(arglist[1:])
        early = bind_early(arglist[1:])
        # The supervisor lives in the shared library: its fork server imports
        # the services by name (leafnode.entrypoints), never statically.
        from leafnode.supervisor import main as run_main

        return run_main(arglist[1:], early=early, early_monitor=early_monitor)
    if arglist and arglist[0] in SERVICES:
        return service_main(arglist[0])(arglist[1:])
    args = build_parser().parse_args(arglist)
    status: int = args.func(args)
    return status
