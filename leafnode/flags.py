"""nats-server's command-line flags, shared by ``leafnode run`` and ``leafnode router``.

People and scripts that start ``nats-server`` start leafnode the same way:
the flags keep nats-server's spelling and meaning, and override the config
file (DESIGN §5). ``-p -1`` and ``-m -1`` pick free ports, as in nats-server.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from leafnode import version_line
from leafnode.config import (
    BufferSettings,
    ClusterSettings,
    ConfigError,
    Settings,
    TlsSettings,
    UserSettings,
    check_route_url,
    check_store_url,
    load,
    loads,
    tls_files_problem,
)
from leafnode.redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "add_leaf_flags",
    "add_server_flags",
    "apply_cluster_flags",
    "apply_leaf_flags",
    "apply_server_flags",
    "leaf_flag_argv",
    "load_with_flags",
]

#: How flag errors name their source (ConfigError's "{source}: {reason}").
FLAGS_SOURCE = "command line"
#: The run dir of services started one by one when none is configured
#: (``leafnode run`` makes a private one instead: leafnode.supervisor).
SHARED_RUN_DIR = "./run"
#: nats-server's cluster flags (main.go), parsed into ``Settings.cluster``:
#: (flag, destination, help).
_CLUSTER_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--cluster", "cluster", "cluster URL from which members can solicit routes"),
    ("--cluster_listen", "cluster", "same as --cluster"),
    ("--routes", "routes", "routes to solicit and connect (comma separated URLs)"),
    ("--cluster_name", "cluster_name", "cluster name"),
    ("--cluster_advertise", "cluster_advertise", "cluster URL to advertise to other servers"),
)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """Add nats-server's client-side flags (and ours) to ``parser``."""
    server = parser.add_argument_group("server options")
    server.add_argument("-c", "--config", metavar="FILE", help="configuration file")
    server.add_argument(
        "-a",
        "--addr",
        "--net",
        dest="host",
        metavar="HOST",
        help="bind to host address (default: 0.0.0.0)",
    )
    server.add_argument(
        "-p",
        "--port",
        type=int,
        metavar="PORT",
        help="use port for clients (default: 4222; -1 for a random port)",
    )
    server.add_argument(
        "-n",
        "--name",
        "--server_name",
        dest="name",
        metavar="NAME",
        help="server name (default: auto)",
    )
    server.add_argument(
        "-m",
        "--http_port",
        type=int,
        metavar="PORT",
        help="use port for http monitoring (-1 for a random port)",
    )
    server.add_argument("-P", "--pid", dest="pid_file", metavar="FILE", help="file to store PID")
    server.add_argument(
        "--ports_file_dir",
        metavar="DIR",
        help="create a ports file in DIR (nats-server_<pid>.ports)",
    )
    server.add_argument(
        "-t", dest="test_config", action="store_true", help="test configuration and exit"
    )
    server.add_argument(
        "-v",
        "--version",
        action="version",
        version=version_line(),
    )
    logs = parser.add_argument_group("logging options")
    logs.add_argument("-l", "--log", dest="log_file", metavar="FILE", help="log file")
    logs.add_argument("-D", "--debug", action="store_true", help="enable debugging output")
    logs.add_argument("-V", "--trace", action="store_true", help="trace the raw protocol")
    logs.add_argument("-DV", dest="debug_trace", action="store_true", help="debug and trace")
    auth = parser.add_argument_group("authorization options")
    auth.add_argument("--user", metavar="USER", help="user required for connections")
    auth.add_argument(
        "--pass", dest="password", metavar="PASSWORD", help="password required for connections"
    )
    auth.add_argument("--auth", metavar="TOKEN", help="token required for connections")
    tls = parser.add_argument_group("TLS options")
    tls.add_argument("--tls", action="store_true", help="enable TLS, do not verify clients")
    tls.add_argument("--tlscert", metavar="FILE", help="server certificate file")
    tls.add_argument("--tlskey", metavar="FILE", help="private key for server certificate")
    tls.add_argument("--tlsverify", action="store_true", help="enable TLS, verify clients")
    tls.add_argument("--tlscacert", metavar="FILE", help="client certificate CA for verification")
    cluster = parser.add_argument_group("cluster options")
    for flag, dest, text in _CLUSTER_FLAGS:
        cluster.add_argument(flag, dest=dest, metavar="VALUE", help=text)
    cluster.add_argument(
        "--no_advertise",
        action="store_true",
        help="do not advertise known cluster information to clients",
    )
    cluster.add_argument(
        "--connect_retries",
        type=int,
        metavar="NUMBER",
        help="for implicit routes, number of connect retries",
    )
    leaf = add_leaf_flags(parser)
    leaf.add_argument("--run-dir", dest="run_dir", metavar="DIR", help="service socket directory")
    leaf.add_argument("--store", dest="store_url", metavar="URL", help="buffer database URL")


def add_leaf_flags(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--remote``, ``--creds`` and ``--buffer`` (DESIGN §5); every service takes them.

    Returns the argument group, for callers that add more leaf options.
    """
    leaf = parser.add_argument_group("leaf node options")
    leaf.add_argument(
        "--remote",
        dest="remotes",
        action="append",
        default=[],
        metavar="URL",
        help="dial this hub (repeatable: one remote each, in the global account)",
    )
    leaf.add_argument(
        "--creds",
        metavar="FILE",
        help="credentials for the --remote hubs (without --remote: for every remote)",
    )
    leaf.add_argument(
        "--buffer",
        dest="buffer_subjects",
        action="append",
        default=[],
        metavar="SUBJECT",
        help="buffer this subject for the --remote hubs (without --remote: for every remote)",
    )
    return leaf


def leaf_flag_argv(args: argparse.Namespace) -> list[str]:
    """The leaf flags of ``args`` as command-line words, to pass on to a service."""
    words: list[str] = []
    for url in args.remotes:
        words += ["--remote", url]
    if args.creds:
        words += ["--creds", args.creds]
    for subject in args.buffer_subjects:
        words += ["--buffer", subject]
    return words


def apply_leaf_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Add the ``--remote`` hubs, and ``--creds``/``--buffer`` to the remotes they name.

    Each ``--remote URL`` is one remote in the global account, named as a
    remote without ``name`` is (DESIGN §8). ``--creds`` and ``--buffer`` go
    to those remotes, or to every remote of the file when no ``--remote`` is
    given. The flags are checked by the config file's own rules (a bad URL
    or subject, an unreadable creds file).

    Raises:
        ConfigError: a flag is invalid; ``str()`` reads ``command line: reason``.
    """
    if not (args.remotes or args.creds or args.buffer_subjects):
        return settings
    extra = ""
    if args.creds:
        extra += f", credentials: {json.dumps(args.creds)}"
    if args.buffer_subjects:
        extra += f", buffer {{ subjects: {json.dumps(list(args.buffer_subjects))} }}"
    urls = list(args.remotes) or ["nats-leaf://flags.invalid"]  # a carrier for --creds/--buffer
    remotes = ", ".join(f"{{ url: {json.dumps(url)}{extra} }}" for url in urls)
    try:
        parsed = loads(f"leafnodes {{ remotes: [ {remotes} ] }}", source=FLAGS_SOURCE).leafnodes
    except ConfigError as exc:
        # Positions inside the text we made up mean nothing to the user.
        reason = _FLAG_NAMES.sub(_flag_name, exc.reason)
        raise ConfigError(FLAGS_SOURCE, 0, 0, reason) from None
    existing = settings.leafnodes.remotes
    if args.remotes:
        names = {remote.name for remote in existing}
        for remote in parsed.remotes:
            if remote.name in names:
                raise ConfigError(FLAGS_SOURCE, 0, 0, f"duplicate remote name {remote.name!r}")
            names.add(remote.name)
        combined = (*existing, *parsed.remotes)
    else:
        carrier = parsed.remotes[0]
        combined = tuple(
            dataclasses.replace(
                remote,
                credentials=carrier.credentials or remote.credentials,
                nkey=None if carrier.credentials else remote.nkey,
                buffer=_more_subjects(remote.buffer, carrier.buffer),
            )
            for remote in existing
        )
    leafnodes = dataclasses.replace(settings.leafnodes, remotes=combined)
    return dataclasses.replace(settings, leafnodes=leafnodes)


_FLAG_NAMES = re.compile(r"leafnodes\.remotes\[\d+\](\.\w+)*")


def _flag_name(match: re.Match[str]) -> str:
    text = match.group(0)
    if ".credentials" in text:
        return "--creds"
    if ".buffer" in text:
        return "--buffer"
    return "--remote"


def _more_subjects(
    buffer: BufferSettings | None, more: BufferSettings | None
) -> BufferSettings | None:
    if more is None:
        return buffer
    if buffer is None:
        return more
    subjects = (*buffer.subjects, *(s for s in more.subjects if s not in buffer.subjects))
    return dataclasses.replace(buffer, subjects=subjects)


def apply_server_flags(
    settings: Settings, args: argparse.Namespace, *, default_run_dir: str = SHARED_RUN_DIR
) -> Settings:
    """Flags override the file, as with nats-server.

    ``default_run_dir`` is the run dir when neither names one.
    """
    router = settings.router
    changes: dict[str, object] = {}
    if args.host is not None:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    if args.name is not None:
        changes["server_name"] = args.name
    if args.user is not None:
        changes["users"] = (UserSettings(user=args.user, password=args.password),)
    if args.auth is not None:
        changes["token"] = args.auth
    if args.tls or args.tlsverify or args.tlscert or args.tlskey:
        base = router.tls or TlsSettings()
        changes["tls"] = dataclasses.replace(
            base,
            cert_file=args.tlscert or base.cert_file,
            key_file=args.tlskey or base.key_file,
            ca_file=args.tlscacert or base.ca_file,
            verify=base.verify or args.tlsverify,
        )
    if changes:
        router = dataclasses.replace(router, **changes)  # type: ignore[arg-type]
    log = settings.log
    log = dataclasses.replace(
        log,
        debug=log.debug or args.debug or args.debug_trace,
        trace=log.trace or args.trace or args.debug_trace,
        log_file=args.log_file or log.log_file,
        pid_file=args.pid_file or log.pid_file,
    )
    api = settings.api
    if args.http_port is not None:
        api = dataclasses.replace(api, port=args.http_port)
    store = settings.store
    if args.store_url is not None:
        problem = check_store_url(args.store_url)
        if problem is not None:
            raise ConfigError(FLAGS_SOURCE, 0, 0, f"--store: {problem}")
        store = dataclasses.replace(store, url=args.store_url)
    settings = dataclasses.replace(
        settings,
        router=router,
        log=log,
        api=api,
        store=store,
        run_dir=args.run_dir or settings.run_dir or default_run_dir,
        ports_file_dir=args.ports_file_dir or settings.ports_file_dir,
    )
    settings = apply_cluster_flags(settings, args)
    return apply_leaf_flags(settings, args)


def apply_cluster_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """``--cluster``, ``--routes``, ``--cluster_name`` & co. over the ``cluster`` block.

    As nats-server's ``overrideCluster``/``mergeRoutes``: ``--cluster URL``
    sets the route listen address (``:-1`` a free port) and, from the URL's
    ``user:password@``, the routes' authorization, clearing the file's when
    it has none; ``--routes`` replaces the file's routes and needs a route
    port (``--cluster`` or the file's).

    Raises:
        ConfigError: a flag is invalid; ``str()`` reads ``command line: reason``
            and never shows a password.
    """
    given = [
        flag
        for flag, dest in (
            ("--cluster", "cluster"),
            ("--routes", "routes"),
            ("--cluster_name", "cluster_name"),
            ("--cluster_advertise", "cluster_advertise"),
            ("--connect_retries", "connect_retries"),
        )
        if getattr(args, dest, None) is not None
    ]
    if getattr(args, "no_advertise", False):
        given.append("--no_advertise")
    if not given:
        return settings
    cluster = settings.cluster or ClusterSettings()
    if args.cluster is not None:
        cluster = _cluster_listen(cluster, args.cluster)
    if args.routes is not None:
        if cluster.port == 0:
            raise ConfigError(
                FLAGS_SOURCE, 0, 0, "solicited routes require cluster capabilities, e.g. --cluster"
            )
        routes: list[str] = []
        for raw in args.routes.split(","):
            url = raw.strip()
            problem = check_route_url(url)
            if problem is not None:
                raise ConfigError(FLAGS_SOURCE, 0, 0, f"--routes: {problem}")
            if url not in routes:
                routes.append(url)
        cluster = dataclasses.replace(cluster, routes=tuple(routes))
    if args.cluster_name is not None:
        if " " in args.cluster_name:
            raise ConfigError(
                FLAGS_SOURCE, 0, 0, "--cluster_name: cluster name cannot contain spaces"
            )
        cluster = dataclasses.replace(cluster, name=args.cluster_name or None)
    if args.cluster_advertise is not None:
        cluster = dataclasses.replace(cluster, advertise=args.cluster_advertise or None)
    if args.no_advertise:
        cluster = dataclasses.replace(cluster, no_advertise=True)
    if args.connect_retries is not None:
        if args.connect_retries < 0:
            raise ConfigError(FLAGS_SOURCE, 0, 0, "--connect_retries: may not be negative")
        cluster = dataclasses.replace(cluster, connect_retries=args.connect_retries)
    return dataclasses.replace(settings, cluster=cluster)


def _cluster_listen(cluster: ClusterSettings, text: str) -> ClusterSettings:
    """``--cluster nats://[user:password@]host:port`` (port -1: a free one)."""
    shown = redact_url(text)
    random_port = text.endswith(":-1")
    try:
        parts = urlsplit(f"{text[:-3]}:0" if random_port else text)
        port = parts.port
    except ValueError:
        port = None
    if port is None or parts.hostname is None:
        raise ConfigError(
            FLAGS_SOURCE, 0, 0, f"--cluster: expected nats://host:port, got {shown!r}"
        )
    user, password = parts.username, parts.password
    if user is not None and password is None:
        raise ConfigError(FLAGS_SOURCE, 0, 0, "--cluster: expected cluster password to be set")
    return dataclasses.replace(
        cluster,
        host=parts.hostname,
        port=-1 if random_port else port,
        user=user,
        password=password,
    )


def _check_tls_flags(settings: Settings) -> str | None:
    tls = settings.router.tls
    if tls is not None and (not tls.cert_file or not tls.key_file):
        return (
            "TLS needs a certificate and a key "
            "(--tlscert and --tlskey, or tls { cert_file, key_file })"
        )
    if tls is not None and tls.verify and not tls.ca_file:
        return "TLS client verification needs a CA (--tlscacert, or tls { ca_file })"
    if tls is not None:
        problem = tls_files_problem(tls)
        if problem is not None:
            return f"{FLAGS_SOURCE}: --tlscert/--tlskey/--tlscacert: {problem}"
    return None


def load_with_flags(
    prog: str, argv: Sequence[str], *, default_run_dir: str = SHARED_RUN_DIR
) -> tuple[Settings, argparse.Namespace] | int:
    """Parse ``argv``, load the config, apply the flags (``default_run_dir``: as there).

    Returns the settings and the parsed arguments, or an exit status when the
    process should stop now: 0 after ``-t`` on a valid file, 1 on a config
    error (``FILE:LINE:COL: reason`` on stderr). Unknown flags are a usage
    error (argparse exits with status 2).
    """
    parser = argparse.ArgumentParser(prog=prog)
    add_server_flags(parser)
    args = parser.parse_args(list(argv))
    try:
        settings = load(args.config) if args.config else Settings()
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    try:
        settings = apply_server_flags(settings, args, default_run_dir=default_run_dir)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    problem = _check_tls_flags(settings)
    if problem is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 1
    if args.test_config:
        if args.config:
            with open(args.config, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            print(
                f"{prog}: configuration file {args.config} is valid (sha256:{digest})",
                file=sys.stderr,
            )
        for warning in settings.warnings:
            print(f"{prog}: warning: {warning}", file=sys.stderr)
        return 0
    return settings, args
