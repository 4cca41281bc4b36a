"""The router: client port listener, accounts, and the data-link socket."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket as _stdsocket
import ssl
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import nkeys
import trio

from leafnode import SERVER_VERSION
from leafnode.affinity import data_path_cpu, keep_placement
from leafnode.clientport import BACKLOG, bind_client_port, peer_address
from leafnode.config import DEFAULT_ACCOUNT
from leafnode.hubside import new_lds_subject
from leafnode.link import Flusher
from leafnode.proto import encode_err
from leafnode.runtime import TRACE

from . import closed, imports
from .auth import Authenticator
from .buffering import StoreLink, build_buffer_rules
from .client_conn import ClientConnection
from .cluster import Cluster
from .datalink import DataLink
from .leafconn import LeafAcceptor
from .routing import Account, Subscription
from .sysreq import SystemServices

if TYPE_CHECKING:
    from leafnode.config import RouterSettings, Settings, TlsSettings

    from .interfaces import Client

__all__ = ["Server"]

log = logging.getLogger("leafnode.router")

DATALINK_SOCKET = "router.sock"
# Pauses after a failed accept (EMFILE, ENFILE, ENOBUFS): nats-server's
# ACCEPT_MIN_SLEEP/ACCEPT_MAX_SLEEP, so running out of descriptors costs a
# log line a second at most, and a freed descriptor is used soon.
ACCEPT_MIN_SLEEP_S: Final = 0.01
ACCEPT_MAX_SLEEP_S: Final = 1.0

# INFO's ``api_lvl``: the JetStream API level nats-server 2.15 announces
# (JSApiLevel). Clients read it to pick features; leafnode answers no JetStream
# API, but a client comparing against the server version expects the field.
API_LEVEL: Final = 5


def _new_server_id() -> str:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER)
    public: bytes = nkeys.from_seed(seed).public_key
    return public.decode()


def build_ssl_context(settings: RouterSettings) -> ssl.SSLContext | None:
    """The server-side TLS context for the client port, or None without TLS."""
    return None if settings.tls is None else server_ssl_context(settings.tls)


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server-side TLS context (client port, websocket port)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert tls.cert_file is not None
    assert tls.key_file is not None
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file:
        context.load_verify_locations(tls.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE
    return context


class Server:
    """Everything the router process owns."""

    def __init__(self, settings: Settings) -> None:
        self.full_settings = settings
        self.settings = settings.router
        self.server_id = _new_server_id()
        self.server_name = self.settings.server_name or self.server_id
        self.auth = Authenticator(self.settings)
        # The websocket port's clients: the block's own auth, if any (auth.py).
        self.ws_auth = Authenticator.for_websocket(self.settings)
        # bcrypt hashing runs in threads; bound how many at once.
        self.auth_limiter = trio.CapacityLimiter(2)
        self.ssl_context = build_ssl_context(self.settings)
        self.trace = settings.log.trace
        self.accounts: dict[str, Account] = {}
        self.accounts_by_bytes: dict[bytes, Account] = {}
        self.datalink: DataLink | None = None
        self.store_link: StoreLink | None = None
        # $SYS.REQ.USER.INFO, subscribed in every account (sysreq.py).
        self.services = SystemServices(self)
        self._imports: list[tuple[Account, Subscription]] = []
        # Routes to the other nodes of a cluster (cluster.py), when configured.
        self.cluster = Cluster(self, settings.cluster) if settings.cluster is not None else None
        self.has_remotes = bool(settings.leafnodes.remotes)
        self.port = self.settings.port
        self._add_accounts(settings)
        self._setup_buffering(settings)
        self.default_account = self.accounts[DEFAULT_ACCOUNT]
        self.clients: dict[int, ClientConnection] = {}
        self.flusher = Flusher()
        self.datalink_path = str(Path(settings.run_dir) / DATALINK_SOCKET)
        self.slow_consumers = 0
        self.closed_clients = closed.ClosedClients(self.settings.max_closed_clients)
        self.total_connections = 0
        self.closed_in_msgs = self.closed_in_bytes = 0
        self.closed_out_msgs = self.closed_out_bytes = 0
        self.started_at = time.time()
        self.config_loaded_at = self.started_at
        self.lame_duck_mode = False
        self._next_cid = 0
        self.info_template: dict[str, object] = {}
        self.ws_info_template: dict[str, object] = {}
        self._listen_scope: trio.CancelScope | None = None
        self.listening = trio.Event()
        # The websocket port once it listens (0: none); lame duck cancels its accepting.
        self.websocket_port = 0
        self.websocket_accepting = trio.CancelScope()
        # The leafnodes { listen } port's leafs (leafconn.py, issue 15), if configured.
        accept = settings.leafnodes.accept
        self.leaf_acceptor = LeafAcceptor(self, accept) if accept.port is not None else None

    def _add_accounts(self, settings: Settings) -> None:
        for name in (DEFAULT_ACCOUNT, *self.auth.accounts):
            self.account(name)
        for remote in settings.leafnodes.remotes:
            self.account(remote.account)
        # Service and stream imports (imports.py): re-installed on reload.
        imports.uninstall(self._imports)
        self._imports = imports.install(
            self.accounts, settings.router.accounts, lambda: self.services.publisher
        )

    def _setup_buffering(self, settings: Settings) -> None:
        rules = build_buffer_rules(settings)
        if rules and self.store_link is None:
            self.store_link = StoreLink(settings)
        for account in self.accounts.values():
            account.buffer_rules = rules.get(account.name)
            account.store_link = self.store_link if account.buffer_rules is not None else None
        if self.store_link is not None:
            self.store_link.limits = {
                r.name: r.buffer for r in settings.leafnodes.remotes if r.buffer is not None
            }

    def account(self, name: str) -> Account:
        account = self.accounts.get(name)
        if account is None:
            account = Account(name)
            # One $LDS per account, shared with the uplink through the hello.
            account.lds = new_lds_subject()
            self.accounts[name] = account
            self.accounts_by_bytes[account.name_bytes] = account
            self.services.install(account)
            account.route_sink = self.cluster
            if self.datalink is not None:
                account.hub_sink = self.datalink.hub_sink
        return account

    def _build_info(self) -> None:
        settings = self.settings
        info: dict[str, object] = {
            "server_id": self.server_id,
            "server_name": self.server_name,
            "version": SERVER_VERSION,
            "proto": 1,
            "go": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "host": settings.host,
            "port": self.port,
            "headers": True,
            "max_payload": settings.max_payload,
            "api_lvl": API_LEVEL,
        }
        if self.auth.auth_required:
            info["auth_required"] = True
        if settings.tls is not None:
            # allow_non_tls: TLS is offered, not required (nats-server's tls_available),
            # unless the handshake comes first.
            offered = settings.tls.allow_non_tls and not settings.tls.handshake_first
            info["tls_available" if offered else "tls_required"] = True
            if settings.tls.verify:
                info["tls_verify"] = True
        if self.lame_duck_mode:
            info["ldm"] = True
        if self.cluster is not None and (urls := self.cluster.connect_urls()):
            info["connect_urls"] = urls
        self.info_template = info
        ws = settings.websocket
        if ws is not None:
            # As nats-server's createWSClient/generateClientInfoJSON: the
            # websocket port's host, port and TLS, and auth_required whenever
            # credentials are checked (a no_auth_user does not clear it there).
            ws_info = {
                k: v for k, v in info.items() if not k.startswith("tls_") and k != "connect_urls"
            }
            ws_info.update(host=ws.host, port=self.websocket_port or ws.port)
            ws_info.pop("auth_required", None)
            if self.ws_auth.auth_configured:
                ws_info["auth_required"] = True
            if ws.tls is not None:
                ws_info.update(tls_required=True, tls_available=True)
            self.ws_info_template = ws_info

    def new_cid(self) -> int:
        """The next connection id (clients and accepted leafs share them)."""
        self._next_cid += 1
        return self._next_cid

    def cluster_urls_changed(self) -> None:
        """Peers came or went: clients that take INFO updates get the new ``connect_urls``.

        As nats-server's sendAsyncInfoToClients: connected clients whose
        CONNECT said ``protocol`` 1 or more and that got their first PONG,
        not websocket clients; a client before its first PONG gets the
        update right after it.
        """
        before = self.info_template.get("connect_urls")
        self._build_info()
        if self.info_template.get("connect_urls") == before:
            return
        for client in self.clients.values():
            # Only clients past their first PONG (ClientConnection._pong).
            if client.takes_info_updates():
                client.send_info(update=True)

    def remove_client(self, client: Client) -> None:
        """Forget a closed client; keep its snapshot for ``/connz?state=closed``."""
        if self.clients.pop(client.cid, None) is not None:
            reason = client.close_reason or closed.CLIENT_CLOSED
            self.closed_clients.add(client, reason, time.time())
            # Keep the totals of closed clients for /varz.
            self.closed_in_msgs += client.in_msgs
            self.closed_in_bytes += client.in_bytes
            self.closed_out_msgs += client.out_msgs
            self.closed_out_bytes += client.out_bytes

    def write_ports_file(self, path: Path) -> None:
        """``nats-server_<pid>.ports``: the URLs clients and tools can use."""
        host = self.settings.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        scheme = "tls" if self.settings.tls is not None else "nats"
        ports = {"nats": [f"{scheme}://{host}:{self.port}"]}
        if self.websocket_port:
            ports["websocket"] = [self.websocket_url()]
        if self.leaf_acceptor is not None and self.leaf_acceptor.port:
            ports["leafnodes"] = [f"nats-leaf://{host}:{self.leaf_acceptor.port}"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports))

    def websocket_url(self) -> str:
        """The websocket port's URL as nats-server writes it in its ports file."""
        ws = self.settings.websocket
        assert ws is not None
        host = ws.host if ws.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        scheme = "ws" if ws.tls is None else "wss"
        return f"{scheme}://{host}:{self.websocket_port}"

    # ------------------------------------------------------------ operations

    def reload(self, settings: Settings) -> None:
        """Apply a re-read config: users, permissions, accounts and limits.

        The caller refused any change that needs a restart first
        (``leafnode.config.restart_needed``: the listen address and port
        among them, as nats-server). Connected clients are checked again with
        the credentials they presented; a client no longer allowed, or now
        bound to another account, is closed.
        """
        router = settings.router
        self.full_settings = settings
        self.settings = router
        self.trace = settings.log.trace
        self.auth = Authenticator(router)
        self.ws_auth = Authenticator.for_websocket(router)
        self.ssl_context = build_ssl_context(router) if router.tls else None
        self._add_accounts(settings)
        self._setup_buffering(settings)
        self._build_info()
        self.config_loaded_at = time.time()
        self.closed_clients.resize(router.max_closed_clients)
        if self.leaf_acceptor is not None:
            self.leaf_acceptor.reconfigure(self, settings.leafnodes.accept)
        for client in list(self.clients.values()):
            client.reconfigure()
            client.recheck_auth()
        # Out of any read loop: send the -ERRs (and closes) now.
        self.flusher.flush()

    async def lame_duck(self, stop_scope: trio.CancelScope) -> None:
        """Stop accepting, announce ``ldm``, close clients over the duration, exit."""
        settings = self.settings
        self.lame_duck_mode = True
        if self._listen_scope is not None:
            self._listen_scope.cancel()
        self.websocket_accepting.cancel()
        if self.leaf_acceptor is not None:
            self.leaf_acceptor.accepting.cancel()
        self._build_info()
        for client in list(self.clients.values()):
            # As nats-server: not to a client before its first PONG (it would
            # read the INFO as that PONG), nor to one without async INFO.
            if client.takes_info_updates(websocket_too=True):
                client.send_info(update=True)
        if self.cluster is not None:
            self.cluster.lame_duck()
        self.flusher.flush()
        await trio.sleep(settings.lame_duck_grace_period_s)
        # Spread the closes over what is left of the duration, so clients do
        # not all reconnect elsewhere at the same instant; exit after the last.
        clients = list(self.clients.values())
        if clients:
            spread = max(settings.lame_duck_duration_s - settings.lame_duck_grace_period_s, 0.0)
            pause = spread / len(clients)
            for i, client in enumerate(clients):
                if i:
                    await trio.sleep(pause)
                client.close_now(closed.SERVER_SHUTDOWN)
        log.info("Lame duck mode done; exiting")
        stop_scope.cancel()

    # ------------------------------------------------------------- serving

    async def serve(
        self,
        *,
        listen_socket: _stdsocket.socket | None = None,
        websocket_socket: _stdsocket.socket | None = None,
        ports_file: Path | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind the data-link socket, then the client port, then serve forever.

        With ``listen_socket`` (``leafnode run`` binds the client port before
        it starts anything and passes it, ``--listen-fd``) clients are served
        at once: connections that came before wait in its backlog, and
        buffered messages wait in memory until the store answers (StoreLink).
        Otherwise the port is bound here (``leafnode.clientport``: wildcard
        hosts listen on IPv4 and IPv6, as nats-server). ``websocket_socket``
        is the ``websocket { }`` port's, bound by ``leafnode run`` likewise
        (``--websocket-fd``); without it the port is bound here.
        """
        settings = self.settings
        # Under `leafnode run`, whose supervisor says "Server is ready".
        supervised = listen_socket is not None
        datalink_listener = await self._bind_datalink()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.flusher.run)
                nursery.start_soon(keep_placement, lambda: data_path_cpu(self.full_settings))
                if self.store_link is not None:
                    nursery.start_soon(self.store_link.run)
                await nursery.start(
                    trio.serve_listeners, self._handle_datalink, [datalink_listener]
                )
                task_status.started()
                bound_here = listen_socket is None
                if listen_socket is None:
                    # Start-up, before any client: a blocking bind is fine.
                    # It listens last (below), as nats-server's client accept
                    # loop starts last: a client port that answers means the
                    # route, websocket and leaf ports answer too.
                    listen_socket = bind_client_port(settings.host, settings.port, listen=False)
                self.port = listen_socket.getsockname()[1]
                self._build_info()
                self._listen_scope = trio.CancelScope()
                if self.cluster is not None:
                    await nursery.start(self.cluster.serve)
                # Before the ports file and readiness: tools read the
                # websocket URL from the ports file (nats.js's harness does).
                await self._start_websocket(nursery, websocket_socket)
                if self.leaf_acceptor is not None:
                    await nursery.start(self.leaf_acceptor.serve, nursery)
                if bound_here:
                    listen_socket.listen(BACKLOG)
                listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(listen_socket))]
                await nursery.start(self._serve_clients, listeners, nursery)
                if ports_file is not None:
                    self.write_ports_file(ports_file)
                log.info("Listening for client connections on %s:%d", settings.host, self.port)
                if settings.tls is not None:
                    log.info("TLS required for client connections")
                log.info("Server id is %s", self.server_id)
                log.info("Server name is %s", self.server_name)
                if not supervised:
                    log.info("Server is ready")
                self.listening.set()
        finally:
            if ports_file is not None:
                # Shutdown path, one small file: a blocking unlink is fine.
                with contextlib.suppress(OSError):
                    ports_file.unlink()  # noqa: ASYNC240

    async def _serve_clients(
        self,
        listeners: list[trio.SocketListener],
        handlers: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # Connections run in ``handlers`` (the server's nursery), not here, so
        # lame duck can stop the listeners (this scope) while clients stay.
        assert self._listen_scope is not None
        with self._listen_scope:
            async with trio.open_nursery() as accept_nursery:
                for listener in listeners:
                    accept_nursery.start_soon(self._accept_loop, listener, handlers)
                task_status.started()
        for listener in listeners:
            await listener.aclose()

    async def _accept_loop(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        delay = ACCEPT_MIN_SLEEP_S
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # EMFILE and friends: back off, doubling up to a second, as
                # nats-server does; one log line per pause, not a flood.
                ms = delay * 1000
                log.error("Error accepting client connection: %s, sleeping %d ms", exc, ms)
                await trio.sleep(delay)
                delay = min(delay * 2, ACCEPT_MAX_SLEEP_S)
                continue
            delay = ACCEPT_MIN_SLEEP_S
            handlers.start_soon(self._handle_client, stream)

    async def _bind_datalink(self) -> trio.SocketListener:
        path = self.datalink_path
        # Start-up only, before any client: blocking file-system calls are fine.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket from a killed router
        sock = trio.socket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(16)
        os.chmod(path, 0o660)
        return trio.SocketListener(sock)

    async def _handle_client(self, stream: trio.SocketStream) -> None:
        self._next_cid += 1
        cid = self._next_cid
        host, port = peer_address(stream.socket)
        client = ClientConnection(self, stream, cid, host, port)
        if await self._refused_over_max(client, stream):
            return
        self.clients[cid] = client
        self.total_connections += 1
        log.debug("%s - Client connection created", client)
        if self.trace:
            log.log(TRACE, "%s - tracing the client protocol", client)
        await client.run()

    async def _start_websocket(
        self, nursery: trio.Nursery, sock: _stdsocket.socket | None = None
    ) -> None:
        """The ``websocket { }`` port, when configured (wsclients.py), on ``sock`` if given."""
        ws = self.settings.websocket
        if ws is not None:
            # Imported here: wsproto (with h11) is a third of the router's imports.
            from .wsclients import serve_websocket

            context = server_ssl_context(ws.tls) if ws.tls is not None else None
            self.websocket_port = await nursery.start(
                functools.partial(serve_websocket, self, ws, context, sock=sock)
            )
            self._build_info()  # the websocket INFO names the bound port

    async def _refused_over_max(self, client: ClientConnection, stream: trio.abc.Stream) -> bool:
        """At ``max_connections``: INFO, nats-server's ``-ERR``, close; True if so."""
        max_conn = self.settings.max_connections
        if not max_conn or len(self.clients) < max_conn:
            return False
        log.error("%s - maximum connections exceeded", client)
        client.send_info()
        client.outbound.write(encode_err("maximum connections exceeded"))
        client.outbound.close_after_flush()
        with trio.move_on_after(1):
            await client.outbound.run_writer()
        client.outbound.close_raw()
        await stream.aclose()
        self.closed_clients.add(client, closed.MAX_CONNECTIONS, time.time())
        log.debug("%s - Client connection closed: %s", client, closed.MAX_CONNECTIONS)
        return True

    async def serve_websocket_client(
        self, stream: trio.abc.Stream, host: str, port: int, cookies: dict[str, str]
    ) -> None:
        """Serve a client upgraded on the websocket port, as ``_handle_client`` does.

        ``cookies``: CONNECT fields its upgrade request's cookies supply.
        """
        self._next_cid += 1
        client = ClientConnection(
            self, stream, self._next_cid, host, port, websocket=True, cookies=cookies
        )
        if await self._refused_over_max(client, stream):
            return
        self.clients[client.cid] = client
        self.total_connections += 1
        log.debug("%s - Client connection created (websocket)", client)
        await client.run()

    async def _handle_datalink(self, stream: trio.SocketStream) -> None:
        old = self.datalink
        link = DataLink(self, stream)
        self.datalink = link
        if old is not None:
            old.close()
        await link.run()
