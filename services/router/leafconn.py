"""Accepted leaf connections: the ``leafnodes { listen }`` port (issue 15, DESIGN §9).

Theory of operation
-------------------
``LeafAcceptor`` listens on ``leafnodes.listen`` and runs each accepted
stream as a ``LeafConnection``: the protocol object of one ``leafnode.link``
``Link`` (the shell every connection kind runs on), around the sans-IO
``leafnode.hubconn.HubLeafConnection`` that holds nats-server's hub side of
the handshake and the leaf verbs. This module only acts on its outcomes:

- the first INFO at once (after the TLS handshake with ``handshake_first``,
  before it otherwise), the handshake deadline (``-ERR 'Authentication
  Timeout'``) and a PING ~1 s in, then every ``ping_interval`` (stale after
  ``ping_max``), as a nats-server hub does (leafnode-protocol.md §4.2, §4.8);
- ``Authenticate`` (no ``leafnodes { authorization }``): the router's client
  authentication with connection type ``LEAFNODE`` (users, token, nkeys,
  user JWTs), bcrypt in a thread; the user's permissions bound as what the
  leaf may be sent (subscribe) and may publish (publish), and announced in
  the ``connect_info`` INFO as nats-server's ``import``/``export``;
- ``Established``: the link joins its account's ``AccountLeafs``
  (``leafinterest.py``), which tells it our ``$LDS`` and every key of
  interest right after the ``connect_info`` INFO, as a hub does;
- ``InterestChange`` (``LS+``/``LS-``): the account's leaf table;
- ``LMsg``/``LHMsg``: ``leafroute.route_from_leaf``;
- ``PING``: ``PONG``, held back (``buffering.StoreLink.pong_now``) until every
  buffered message the leaf sent before it is committed: the same barrier a
  local client's flush gets (DESIGN §4), so a leafnode below us, whose drain
  acks its backlog on our PONG, loses nothing when we crash. A nats-server
  leaf only sees a later PONG.

Messages to the leaf go one ``LMSG`` (or ``HMSG``) per message, headers
stripped when its CONNECT lacked ``headers: true`` (§4.6).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from typing import TYPE_CHECKING

import trio

from leafnode import SERVER_VERSION
from leafnode.clientport import peer_address
from leafnode.hubconn import (
    Authenticate,
    Close,
    Established,
    HubLeafConnection,
    PeerErr,
    PongSeen,
    Send,
)
from leafnode.hubside import (
    ERR_AUTH_VIOLATION,
    Accepted,
    HubInfo,
    InterestChange,
    Refused,
)
from leafnode.link import Link
from leafnode.proto import (
    PING,
    PONG,
    LHMsg,
    LMsg,
    encode_err,
    encode_lhmsg,
    encode_lmsg,
    subject_matches,
)

from .auth import Authenticator, AuthError
from .leafinterest import AccountLeafs
from .leafpolicy import (
    CONNECTION_TYPE_LEAFNODE,
    ERR_MAX_ACCOUNT_CONNECTIONS,
    WILDCARD_HOSTS,
    DeferBcrypt,
    leaf_policy,
    leaf_ssl_context,
    permission_lists,
    reachable_host,
)
from .leafroute import route_from_leaf
from .permissions import PermissionChecker

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from leafnode.config import LeafAcceptSettings, Permissions
    from leafnode.hubconn import Outcome

    from .interfaces import LeafServer
    from .leafinterest import Key, LeafSub
    from .routing import Account

__all__ = ["LeafAcceptor", "LeafConnection"]

log = logging.getLogger("leafnode.router")


class LeafConnection:
    """One accepted downstream leaf (module doc); a ``LeafPeer`` of its account."""

    def __init__(
        self, server: LeafServer, acceptor: LeafAcceptor, stream: trio.abc.Stream, cid: int
    ) -> None:
        self.server = server
        self.acceptor = acceptor
        self.stream = stream
        self.cid = cid
        sock = getattr(stream, "socket", None)
        self.host, self.port = peer_address(sock) if sock is not None else ("", 0)
        self.proto = HubLeafConnection(
            acceptor.authorizer,
            acceptor.info,
            client_id=cid,
            lds_for=lambda name: server.account(name).lds,
            max_payload=server.settings.max_payload,
        )
        self.link = Link(stream, server.flusher, leaf_policy(server, acceptor.accept))
        self.link.on_close = self._on_close
        self.outbound = self.link.outbound
        self.account: Account | None = None
        self.accepted: Accepted | None = None
        self.headers = False
        self.tls = False
        self.may_receive: Callable[[bytes], bool] | None = None
        # LeafPeer: the keys it declared, and what we told it.
        self.own: dict[Key, LeafSub] = {}
        self.sent: dict[Key, int] = {}
        self.cluster = b""
        # BufferOrigin: the store batch of our latest buffered message.
        self.buffer_batch = 0
        self.verbose = False
        self.closing = False
        self.close_reason: str | None = None
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.started_at = time.time()
        self.last_activity = self.started_at
        self.rtt_s = 0.0
        # The CONNECT and nonce of a leaf the client authentication bound
        # (checked again on reload), or None.
        self._client_connect: tuple[Mapping[str, object], str] | None = None
        self._ping_at: float | None = None
        self._attach_due = False

    def __str__(self) -> str:
        return f"{self.host}:{self.port} - lid:{self.cid}"

    @property
    def name(self) -> str:
        return self.accepted.name if self.accepted is not None else ""

    # ---------------------------------------------------------------- serving

    async def run(self) -> None:
        """Serve the leaf until its link ends; always leaves its account clean."""
        try:
            if self.acceptor.ssl_context is not None:
                if not await self._start_tls():
                    self.close_reason = "TLS Handshake Error"
                    return
            else:
                self.outbound.write(self.proto.first_info)
            self.close_reason = await self.link.run(self)
        finally:
            self._on_close()
            self.acceptor.leafs.pop(self.cid, None)
            self.outbound.close_raw()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)
            log.info("%s - Leafnode connection closed: %s", self, self.close_reason)

    async def _start_tls(self) -> bool:
        """The leaf port's TLS: INFO in clear text then the handshake, or the handshake first."""
        tls = self.acceptor.accept.tls
        context = self.acceptor.ssl_context
        assert tls is not None
        assert context is not None
        if not tls.handshake_first:
            with trio.move_on_after(tls.timeout_s):
                await self.stream.send_all(self.proto.first_info)
        stream = trio.SSLStream(self.stream, context, server_side=True)
        try:
            with trio.fail_after(tls.timeout_s):
                await stream.do_handshake()
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.error("%s - TLS handshake error: %s", self, exc.__cause__ or exc)
            return False
        self.stream = stream
        self.link.stream = stream
        self.outbound.stream = stream
        self.outbound.close_raw()
        self.tls = True
        if tls.handshake_first:
            self.outbound.write(self.proto.first_info)
        return True

    # ---------------------------------------------------------- LinkProtocol

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        self.last_activity = time.time()
        return self._apply(self.proto.receive(data))

    def send_ping(self) -> None:
        if self._ping_at is None:
            self._ping_at = trio.current_time()
        self.outbound.write(PING)

    def _from_leaf(
        self,
        subject: bytes,
        reply: bytes | None,
        queues: tuple[bytes, ...],
        hdr_len: int,
        data: bytes,
    ) -> None:
        """Count one LMSG/HMSG from the leaf and route it in its bound account."""
        self.in_msgs += 1
        self.in_bytes += len(data)
        if self.account is not None:
            route_from_leaf(self, self.account, subject, reply, queues, hdr_len, data, self.cluster)

    def _apply(self, outcomes: Sequence[Outcome]) -> Awaitable[None] | None:
        for outcome in outcomes:
            kind = type(outcome)
            if kind is LMsg:
                assert isinstance(outcome, LMsg)
                self._from_leaf(outcome.subject, outcome.reply, outcome.queues, 0, outcome.payload)
            elif kind is LHMsg:
                assert isinstance(outcome, LHMsg)
                self._from_leaf(
                    outcome.subject, outcome.reply, outcome.queues, outcome.hdr_len, outcome.data
                )
            elif kind is InterestChange:
                assert isinstance(outcome, InterestChange)
                if self.account is not None and self.account.leafs is not None:
                    leafs = self.account.leafs
                    assert isinstance(leafs, AccountLeafs)
                    leafs.change(
                        self, outcome.subject, outcome.queue, outcome.delta, outcome.weight
                    )
            elif kind is Send:
                assert isinstance(outcome, Send)
                self._send(outcome.data)
            elif kind is PongSeen:
                self.link.pong()
                if self._ping_at is not None:
                    # /leafz's rtt, from our keepalive PING to its PONG.
                    self.rtt_s = trio.current_time() - self._ping_at
                    self._ping_at = None
            elif kind is Established:
                assert isinstance(outcome, Established)
                self._bind(outcome.accepted)
            elif kind is Authenticate:
                assert isinstance(outcome, Authenticate)
                return self._authenticate(outcome)
            elif kind is Close:
                assert isinstance(outcome, Close)
                if outcome.err is not None:
                    self.outbound.write(outcome.err)
                log.error("%s - Leafnode connection refused or closed: %s", self, outcome.reason)
                self.link.close_after_flush(outcome.reason)
                return None
            elif kind is PeerErr:
                assert isinstance(outcome, PeerErr)
                log.error("%s - Leafnode error from the leaf: %s", self, outcome.text)
        return None

    def _send(self, data: bytes) -> None:
        if data == PONG:
            # A flush barrier: PONG once the buffered messages before it are
            # committed (module doc).
            link = self.server.store_link
            if link is not None and not link.pong_now(self):
                return
        self.outbound.write(data)
        if self._attach_due:
            # The connect_info INFO is out: now our $LDS and the interest.
            self._attach_due = False
            assert self.account is not None
            leafs = self.account.leafs
            assert isinstance(leafs, AccountLeafs)
            leafs.attach(self)

    async def _authenticate(self, request: Authenticate) -> None:
        """No leafnode authorization: authenticate as a client (module doc).

        Or a leafnode authorization check that hashes bcrypt (``_DeferBcrypt``).
        """
        options = request.options
        authorizer = self.acceptor.authorizer
        if authorizer.configured and authorizer.is_expensive(options):
            result = await trio.to_thread.run_sync(
                authorizer.check_now, options, request.nonce, limiter=self.server.auth_limiter
            )
            if isinstance(result, Accepted):
                self._apply(self.proto.bind(result.account, result.user))
            else:
                reason = result.reason if isinstance(result, Refused) else "refused"
                self._apply(self.proto.refuse(reason))
            return
        auth = self.acceptor.auth
        check = functools.partial(auth.authenticate, options, request.nonce, client_host=self.host)
        try:
            if auth.is_expensive(options):
                identity = await trio.to_thread.run_sync(check, limiter=self.server.auth_limiter)
            else:
                identity = check()
        except AuthError as exc:
            self._apply(self.proto.refuse(f"authentication error: {exc}"))
            return
        account = identity.account if auth.auth_configured else request.default_account
        if identity.leaf_limit >= 0 and self._bound_in(account) >= identity.leaf_limit:
            # The account JWT's limits.leaf (0 when missing), as nats-server.
            err = encode_err(ERR_MAX_ACCOUNT_CONNECTIONS)
            self._apply(self.proto.refuse("account leaf connection limit", err))
            return
        self._client_connect = (options, request.nonce)
        perms = identity.permissions
        if perms is None:
            self._apply(self.proto.bind(account, identity.user))
            return
        self._apply(self._bind_with(account, identity.user, perms))

    def _bound_in(self, account: str) -> int:
        """Leafs bound to ``account`` now (for the account's leaf limit)."""
        return sum(
            1
            for leaf in self.acceptor.leafs.values()
            if leaf.account is not None and leaf.account.name == account and not leaf.closing
        )

    def recheck(self, auth: Authenticator) -> None:
        """After a reload: a leaf the client authentication bound must still pass it.

        Refused now, or bound to another account, it is closed with
        ``-ERR 'Authorization Violation'`` (its leafnode authorization, when
        it has one, cannot change without a restart).
        """
        if self._client_connect is None or self.account is None or self.closing:
            return
        options, nonce = self._client_connect
        try:
            identity = auth.authenticate(options, nonce, client_host=self.host)
            moved = auth.auth_configured and identity.account != self.account.name
        except AuthError as exc:
            reason = f"authentication error after reload: {exc}"
        else:
            if not moved:
                return
            reason = "bound to another account after reload"
        log.error("%s - Leafnode connection closed: %s", self, reason)
        self.outbound.write(encode_err(ERR_AUTH_VIOLATION))
        self.link.close_after_flush(reason)

    def _bind_with(self, account: str, user: str | None, perms: Permissions) -> list[Outcome]:
        checker = PermissionChecker(perms, clock=trio.current_time)

        def may_receive(subject: bytes) -> bool:
            return checker.can_subscribe(subject, None)

        self.may_receive = may_receive
        return self.proto.bind(
            account,
            user,
            may_receive=may_receive,
            may_send=checker.can_publish,
            imports=permission_lists(perms.subscribe),
            exports=permission_lists(perms.publish),
        )

    def _bind(self, accepted: Accepted) -> None:
        self.accepted = accepted
        self.headers = accepted.headers
        self.cluster = accepted.cluster.encode()
        if accepted.deny_pub:
            # Its remote's deny_imports: never send it these (§4.3).
            deny = tuple(d.encode() for d in accepted.deny_pub)
            allowed = self.may_receive

            def may_receive(subject: bytes) -> bool:
                if any(subject_matches(p, subject) for p in deny):
                    return False
                return allowed is None or allowed(subject)

            self.may_receive = may_receive
        account = self.server.account(accepted.account)
        self.account = account
        if account.leafs is None:
            account.leafs = AccountLeafs(account)
        self.link.established()
        self._attach_due = True
        log.info(
            '%s - Leafnode connection created for account: %s (leaf "%s")',
            self,
            accepted.account,
            accepted.name,
        )

    def _on_close(self) -> None:
        if self.closing:
            return
        self.closing = True
        account = self.account
        if account is not None and isinstance(account.leafs, AccountLeafs):
            account.leafs.detach(self)

    # ------------------------------------------------------------- LeafPeer

    def send_interest(self, line: bytes) -> None:
        if not self.closing:
            self.outbound.write(line)

    def send_lmsg(
        self,
        subject: bytes,
        reply: bytes | None,
        queues: list[bytes],
        hdr_len: int,
        data: bytes,
    ) -> None:
        if self.closing or (self.may_receive is not None and not self.may_receive(subject)):
            return
        if not hdr_len:
            frame = encode_lmsg(subject, reply, queues, data)
        elif self.headers:
            frame = encode_lhmsg(subject, reply, queues, hdr_len, data)
        else:
            # No headers:true in its CONNECT: the payload only, as a hub does (§4.6).
            frame = encode_lmsg(subject, reply, queues, data[hdr_len:])
        self.out_msgs += 1
        self.out_bytes += len(data) - hdr_len
        self.outbound.write(frame)

    # ---------------------------------------------------------- BufferOrigin

    def send_pong(self) -> None:
        if not self.closing:
            self.outbound.write(PONG)

    def send_ok(self) -> None:
        pass

    def send_error(self, text: str) -> None:
        pass


class LeafAcceptor:
    """The ``leafnodes { listen }`` port and the leafs it accepted."""

    def __init__(self, server: LeafServer, accept: LeafAcceptSettings) -> None:
        self.server = server
        self.accept = accept
        self.leafs: dict[int, LeafConnection] = {}
        self.port = 0
        self.info = HubInfo(
            server_id=server.server_id,
            server_name=server.server_name,
            version=SERVER_VERSION,
            go="",
            host=accept.host,
            port=0,
            max_payload=server.settings.max_payload,
        )
        self.ssl_context: ssl.SSLContext | None = None
        # Cancelled by lame duck mode: no new leafs, the bound ones stay.
        self.accepting = trio.CancelScope()
        self.reconfigure(server, accept)

    def reconfigure(self, server: LeafServer, accept: LeafAcceptSettings) -> None:
        """Build the authorization and TLS of ``accept`` (start-up and reload)."""
        self.accept = accept
        self.authorizer = DeferBcrypt(accept)
        self.auth = Authenticator(server.settings, connection_type=CONNECTION_TYPE_LEAFNODE)
        for leaf in list(self.leafs.values()):
            leaf.recheck(self.auth)
        self.ssl_context = None
        if accept.tls is not None:
            self.ssl_context = leaf_ssl_context(accept.tls)
        if self.port:
            self._build_info()

    def _build_info(self) -> None:
        self.info = HubInfo.for_listener(
            self.accept,
            port=self.port,
            server_id=self.server.server_id,
            server_name=self.server.server_name,
            version=SERVER_VERSION,
            go=f"python{sys.version_info.major}.{sys.version_info.minor}",
            max_payload=self.server.settings.max_payload,
            host=reachable_host(self.accept.host),
        )

    async def serve(
        self,
        handlers: trio.Nursery,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on the leaf port and serve each leaf in ``handlers``; reports the bound port."""
        accept = self.accept
        port = accept.port if accept.port is not None and accept.port > 0 else 0
        host = None if accept.host in WILDCARD_HOSTS else accept.host
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        self._build_info()
        log.info("Listening for leafnode connections on %s:%d", accept.host, self.port)
        if accept.tls is not None:
            log.info("TLS required for leafnode connections")
        task_status.started(self.port)
        with self.accepting:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept_loop, listener, handlers)
        for listener in listeners:
            await listener.aclose()

    async def _accept_loop(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                log.error("Error accepting leafnode connection: %s", exc)
                await trio.sleep(0.1)
                continue
            handlers.start_soon(self._handle, stream)

    async def _handle(self, stream: trio.SocketStream) -> None:
        leaf = LeafConnection(self.server, self, stream, self.server.new_cid())
        self.leafs[leaf.cid] = leaf
        log.debug("%s - Leafnode connection accepted", leaf)
        await leaf.run()
