"""One client connection on the client port (leafnode-protocol.md §2).

A ``ClientConnection`` is the protocol object of a ``leafnode.link.Link``:
the shell reads (each read one batch: parse, dispatch, route, synchronous
except for CONNECT, which may hash a bcrypt password in a thread and so is
finished in an awaitable the shell awaits before reading on), writes, pings
(stale-connection detection), times the authentication, and holds a producer
back while a consumer it fed is behind; ``client_policy`` says how, from the
router's settings.

Closing: a protocol error queues ``-ERR '<text>'`` and lets the writer flush
it before the nursery is cancelled; EOF cancels at once; a slow consumer is cut
off by another connection's routing path, so that path removes the client's
subscriptions first (no further deliveries) and then closes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
import time
from typing import TYPE_CHECKING, Final

import trio

from leafnode.link import Expiry, Keepalive, Link, LinkPolicy, OutboundPolicy
from leafnode.proto import (
    OK,
    PING,
    PONG,
    Connect,
    HPub,
    Kind,
    MsgSink,
    Parser,
    Ping,
    Pong,
    Pub,
    RemoteProtocolError,
    Sub,
    Unsub,
    encode_err,
    encode_event,
    encode_info,
    encode_msg_frame,
    is_valid_literal_subject,
    is_valid_queue,
    is_valid_subject,
)
from leafnode.redact import redact_connect
from leafnode.runtime import TRACE

from . import closed, msgtrace
from .auth import AuthError, with_cookies
from .permissions import (
    PermissionChecker,
    publish_violation_text,
    removed_subscription_text,
    subscribe_violation_text,
)
from .routing import Subscription, route_local, route_pub

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from leafnode.config import RouterSettings
    from leafnode.proto import Event

    from .auth import Authenticator, Identity
    from .interfaces import ClientServer
    from .routing import Account

__all__ = ["ClientConnection"]

log = logging.getLogger("leafnode.router")

# The first byte of a TLS record carrying a handshake (a ClientHello): how an
# allow_non_tls port tells TLS clients from plain ones, as nats-server does.
_TLS_HANDSHAKE_RECORD = 0x16

# nats-server's defaults for a CONNECT that omits them (client.go defaultOpts).
_DEFAULT_VERBOSE = True
_DEFAULT_PEDANTIC = True


# How the shell's timers close a client, with nats-server's -ERR texts.
_STALE: Final = Expiry(closed.STALE_CONNECTION, encode_err("Stale Connection"))
_AUTH_TIMEOUT: Final = Expiry(closed.AUTH_TIMEOUT, encode_err("Authentication Timeout"))


def client_policy(settings: RouterSettings, *, auth: bool, websocket: bool = False) -> LinkPolicy:
    """How the shell serves a client, as nats-server does (client.go).

    Slow consumers are closed past ``max_pending`` or the write deadline;
    a PING every ``ping_interval``, ``-ERR 'Stale Connection'`` after
    ``ping_max`` unanswered; with authentication configured, ``-ERR
    'Authentication Timeout'`` when no CONNECT passed within ``auth_timeout``
    (a websocket client's: the websocket block's, when it sets one).
    """
    auth_timeout_s = settings.auth_timeout_s
    if websocket and settings.websocket is not None:
        auth_timeout_s = settings.websocket.auth_timeout_s or auth_timeout_s
    return LinkPolicy(
        outbound=OutboundPolicy(
            max_pending=settings.max_pending, write_deadline_s=settings.write_deadline_s
        ),
        eof_reason=closed.CLIENT_CLOSED,
        keepalive=Keepalive(
            interval_s=settings.ping_interval_s,
            ping_max=settings.ping_max,
            stale=_STALE,
        ),
        handshake=((auth_timeout_s, _AUTH_TIMEOUT) if auth else None),
        write_error_reason=closed.WRITE_ERROR,
        stalls=True,
    )


class ClientConnection:
    """A NATS client attached to the router."""

    def __init__(
        self,
        server: ClientServer,
        stream: trio.abc.Stream,
        cid: int,
        host: str,
        port: int,
        *,
        websocket: bool = False,
        cookies: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.stream = stream
        # A client of the websocket port: ``stream`` is the framed stream,
        # already upgraded (and TLS'd) by wsclients.py.
        self.websocket = websocket
        # /connz's ``type`` (nats-server's clientTypeString) and whether the
        # connection is TLS: the websocket port's own tls { } for its clients.
        self.conn_type = "websocket" if websocket else "nats"
        # CONNECT fields the upgrade request's cookies supply (auth.with_cookies).
        self._cookies = cookies or {}
        ws_settings = server.settings.websocket
        self.tls = (
            ws_settings is not None and ws_settings.tls is not None
            if websocket
            else server.settings.tls is not None
        )
        self.cid = cid
        self.host = host
        self.port = port
        settings = server.settings
        self.parser = Parser(
            Kind.CLIENT,
            max_control_line=settings.max_control_line,
            max_payload=settings.max_payload,
        )
        self.link = Link(
            stream,
            server.flusher,
            client_policy(settings, auth=self._auth.auth_configured, websocket=websocket),
        )
        self.link.on_close = self._on_close
        self.outbound = self.link.outbound
        self.outbound.on_slow_consumer = self._slow_consumer
        # Formats and queues the messages delivered to us (the routing path).
        self.sink = MsgSink(self.outbound)
        # The sink our subscriptions route to directly; None while each
        # message must go through send_msg (traced with -V).
        self._direct_sink: MsgSink | None = self.sink
        self.account: Account = server.default_account
        self.subs: dict[bytes, Subscription] = {}
        self.perms: PermissionChecker | None = None
        self.connected = False
        # The first PONG is out: from then on the client takes async INFO
        # updates (nats-server's firstPongSent; see cluster_urls_changed).
        self.first_pong_sent = False
        # The connect_urls of the last INFO this client was sent.
        self._sent_urls: object = None
        self.closing = False
        self.verbose = False
        self.pedantic = False
        self.echo = True
        self.headers = False
        self.no_responders = False
        self.name = ""
        self.lang = ""
        self.version = ""
        self.user: str | None = None
        # Who CONNECT authenticated as (None without auth); $SYS.REQ.USER.INFO.
        self.identity: Identity | None = None
        # Number of the store batch holding our latest buffered message.
        self.buffer_batch = 0
        # Any of verbose, pedantic, permissions: PUB takes the checked path.
        self._checks = True
        self.in_msgs = 0
        self.in_bytes = 0
        self.start = trio.current_time()
        self.started_at = time.time()
        self.last_activity = self.started_at
        self.nonce: str | None = None
        self.connect_options: dict[str, object] = {}
        self._tls_first = False
        # Events of a batch that wait behind a CONNECT being authenticated.
        self._rest: list[Event] | None = None
        # The subscriptions it had when it closed, for /connz?state=closed.
        self.closed_subs: tuple[Subscription, ...] = ()
        self._description = ""
        # When the credentials expire and the -ERR text then (see _set_expiry).
        self._expiry: tuple[float, str] | None = None
        self._expiry_wake: trio.CancelScope | None = None

    @property
    def out_msgs(self) -> int:
        """Messages delivered to this client (counted by its ``MsgSink``)."""
        return self.sink.out_msgs

    @property
    def out_bytes(self) -> int:
        """Payload bytes delivered to this client."""
        return self.sink.out_bytes

    @property
    def close_reason(self) -> str | None:
        """Why the connection closed, in nats-server's words (closed.py).

        None while open, and at the end when the server itself stopped.
        """
        return self.link.reason

    @close_reason.setter
    def close_reason(self, reason: str | None) -> None:
        self.link.reason = reason

    # ----------------------------------------------------------------- tasks

    def __str__(self) -> str:
        return f"{self.host}:{self.port} - cid:{self.cid}"

    @property
    def _auth(self) -> Authenticator:
        """The server's authenticator for this client's port (websocket: its own)."""
        return self.server.ws_auth if self.websocket else self.server.auth

    async def run(self) -> None:
        """Serve the connection until it closes; always releases its resources."""
        server = self.server
        try:
            if (
                server.ssl_context is not None
                and not self.websocket
                and not await self._start_tls()
            ):
                self.close_reason = closed.TLS_HANDSHAKE
                return
            if server.trace:
                self.send_msg = self._send_msg_traced  # type: ignore[method-assign]
                self._direct_sink = None
            if server.ssl_context is None or self._tls_first or self.websocket:
                self.send_info()
            await self.link.run(self)
        finally:
            self._drop_subscriptions()
            # No reason of its own: the server stopped and cancelled us.
            reason = self.close_reason or closed.SERVER_SHUTDOWN
            self.close_reason = reason
            server.remove_client(self)
            self.outbound.close_raw()
            with trio.CancelScope(shield=True):
                await self.stream.aclose()
            log.debug("%s - Client connection closed: %s", self.log_label(), reason)

    async def _start_tls(self) -> bool:
        """TLS on the client port: INFO in clear text first, or TLS first.

        nats-server sends INFO (with ``tls_required``) before the handshake,
        unless ``handshake_first`` is set; then the handshake comes first and
        INFO follows inside TLS (leafnode-protocol.md §6).
        """
        server = self.server
        tls = server.settings.tls
        assert tls is not None
        assert server.ssl_context is not None
        self._tls_first = tls.handshake_first
        if not self._tls_first:
            info = self._info_bytes()
            with trio.move_on_after(tls.timeout_s):
                await self.stream.send_all(info)
            if tls.allow_non_tls:
                mode = await self._sniff_tls(tls.timeout_s)
                if mode != "tls":
                    return mode == "plain"
        stream = trio.SSLStream(self.stream, server.ssl_context, server_side=True)
        try:
            with trio.fail_after(tls.timeout_s):
                await stream.do_handshake()
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            cause = exc.__cause__ or exc
            log.error("%s - TLS handshake error: %s", self, cause)
            return False
        self.stream = stream
        self.link.stream = stream
        self.outbound.stream = stream
        self.outbound.close_raw()
        return True

    async def _sniff_tls(self, timeout_s: float) -> str:
        """``allow_non_tls``: "tls", "plain" or "closed", from the client's first byte.

        As nats-server: a TLS ClientHello starts with a handshake record (0x16);
        anything else, or nothing within the TLS timeout, is a plain client.
        The byte is peeked, not read, so either path sees the whole stream.
        """
        stream = self.stream
        if not isinstance(stream, trio.SocketStream):
            return "tls"  # not a TCP socket to peek at: TLS as without allow_non_tls
        first = b"-"
        with trio.move_on_after(timeout_s):
            try:
                first = await stream.socket.recv(1, socket.MSG_PEEK)
            except OSError:
                first = b""
        if not first:
            return "closed"
        return "tls" if first[0] == _TLS_HANDSHAKE_RECORD else "plain"

    def _set_expiry(self, identity: Identity) -> None:
        """Arm (or re-arm, after a reload) the close at JWT expiry, as nats-server.

        The user JWT's ``exp`` closes with ``User Authentication Expired``,
        the account JWT's with ``Account Authentication Expired``, whichever
        comes first. One task per client that has an expiry at all.
        """
        expiry: tuple[float, str] | None = None
        if identity.expires_at is not None:
            expiry = (identity.expires_at, "User Authentication Expired")
        account_at = identity.account_expires_at
        if account_at is not None and (expiry is None or account_at <= expiry[0]):
            expiry = (account_at, "Account Authentication Expired")
        if expiry == self._expiry:
            return
        self._expiry = expiry
        if self._expiry_wake is not None:
            self._expiry_wake.cancel()
        elif expiry is not None and self.link.nursery is not None:
            self.link.nursery.start_soon(self._watch_expiry)

    async def _watch_expiry(self) -> None:
        while self._expiry is not None:
            wall_time, text = self._expiry
            self._expiry_wake = trio.CancelScope()
            with self._expiry_wake:
                await trio.sleep(max(wall_time - time.time(), 0.0))
                log.info("%s - %s", self, text)
                self.close_with_error(text, closed.AUTH_EXPIRED)
                return
        self._expiry_wake = None

    # ------------------------------------------------------------ LinkProtocol

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        """One read: parse, dispatch and route all of it (the shell's batch).

        A client whose buffered messages the store is behind on is not read
        again until it catches up (``StoreLink.hold_back``): back-pressure.
        """
        self.parser.feed(data)
        wait = self._process()
        link = self.server.store_link
        if wait is None and link is not None and self.buffer_batch == link.batch_no:
            return link.hold_back(self)
        return wait

    def send_ping(self) -> None:
        self._proto(PING)

    def _process(self) -> Awaitable[None] | None:
        """Handle what the parser holds; an awaitable when a CONNECT needs a thread."""
        parser = self.parser
        services = self.server.services
        on_pub = self._on_pub
        # Who publishes what this batch routes (sysreq.py's requests).
        services.publisher = self
        now_ns = time.time_ns()
        self.last_activity = now_ns / 1e9
        # Buffered messages of this read are stamped with its time (one clock read).
        store_link = self.server.store_link
        if store_link is not None:
            store_link.read_at_us = now_ns // 1000
        try:
            rest, self._rest = self._rest, None
            # Plain PUBs from a connected client without verbose, pedantic or
            # permissions are routed as the parser reads them (_route_pub):
            # the hot path. Others, and PUBs behind another event, come here.
            trace = self.server.trace
            fast = self.connected and not self._checks and not trace
            while events := rest or parser.drain(self._pub_route() if fast else None):
                rest = None
                trace = self.server.trace
                fast = self.connected and not self._checks and not trace
                account = self.account
                for event in events:
                    if trace:
                        self._trace_in(event)
                    kind = type(event)
                    if kind is Pub and fast:
                        payload = event.payload  # type: ignore[union-attr]
                        reply = event.reply  # type: ignore[union-attr]
                        self.in_msgs += 1
                        self.in_bytes += len(payload)
                        if (
                            not route_local(self, account, event.subject, reply, 0, payload)  # type: ignore[union-attr]
                            and reply is not None
                            and self.no_responders
                        ):
                            self._send_no_responders(event.subject, reply)  # type: ignore[union-attr]
                        continue
                    if kind is Pub and self.connected:
                        on_pub(event.subject, event.reply, 0, event.payload)  # type: ignore[union-attr]
                    elif kind is Connect:
                        # The rest of the batch waits for the CONNECT's verdict.
                        at = next(i for i, e in enumerate(events) if e is event)
                        self._rest = events[at + 1 :]
                        return self._connect(event)  # type: ignore[arg-type]
                    elif not self.connected and self._auth.auth_configured:
                        self.close_with_error("Authorization Violation", closed.AUTH_FAILURE)
                        return None
                    else:
                        self._dispatch(event)
                    if self._stopped():
                        return None
                    fast = self.connected and not self._checks and not trace
                    account = self.account
        except RemoteProtocolError as exc:
            log.error("%s - Client parser ERROR: %s", self, exc)
            if exc.err_text:
                self.close_with_error(exc.err_text, _PARSER_CLOSE_REASONS.get(exc.err_text))
            else:
                # nats-server closes without an -ERR for malformed arguments.
                self.close_now()
            return None
        finally:
            services.publisher = None
            if store_link is not None:
                store_link.read_at_us = 0
            if parser.pubs:
                # The PUBs drain handed to _pub_route's function.
                self.in_msgs += parser.pubs
                self.in_bytes += parser.pub_bytes
                parser.pubs = parser.pub_bytes = 0
        parser.compact()
        return None

    def _pub_route(self) -> Callable[[bytes, bytes | None, int, bytes], object]:
        """``Parser.drain``'s ``on_pub`` for plain PUBs (the parser counts them).

        ``route_pub`` itself, bound to us, our account and our no-responders
        answer: no call of ours in between per message.
        """
        no_responders = self._send_no_responders if self.no_responders else None
        return functools.partial(route_pub, no_responders, self, self.account)

    async def _connect(self, event: Connect) -> None:
        """CONNECT (perhaps authenticated in a thread), then the rest of its batch."""
        await self._on_connect(event)
        if self.closing:
            return
        flusher = self.server.flusher
        flusher.batching = True
        try:
            wait = self._process()
        finally:
            flusher.batching = False
            flusher.flush()
        if wait is not None:
            await wait

    def _stopped(self) -> bool:
        # A method, not an inline attribute test: dispatch may set `closing`.
        return self.closing

    # -------------------------------------------------------------- dispatch

    def _dispatch(self, event: Event) -> None:
        kind = type(event)
        if kind is HPub:
            assert isinstance(event, HPub)
            if not self.headers:
                # nats-server closes such a client without an -ERR (§2).
                log.error("%s - Header support not enabled by client", self)
                self.close_now()
                return
            if event.data.find(msgtrace.TRACE_MARK, 0, event.hdr_len) >= 0:
                self._on_traced_pub(event.subject, event.reply, event.hdr_len, event.data)
                return
            self._on_pub(event.subject, event.reply, event.hdr_len, event.data)
        elif kind is Sub:
            assert isinstance(event, Sub)
            self._on_sub(event)
        elif kind is Unsub:
            assert isinstance(event, Unsub)
            self._on_unsub(event)
        elif kind is Ping:
            link = self.server.store_link
            # flush() is a durability barrier: PONG once our buffered
            # messages are committed (DESIGN §4).
            if link is None or link.pong_now(self):
                self._pong()
        elif kind is Pong:
            self.link.pong()
        elif kind is Pub:
            assert isinstance(event, Pub)
            self._on_pub(event.subject, event.reply, 0, event.payload)

    def _on_pub(self, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> None:
        self.in_msgs += 1
        self.in_bytes += len(data)
        if self._checks and not self._pub_allowed(subject):
            return
        if self.verbose:
            # One answer per PUB: a buffered one is answered by the store link
            # once committed (+OK) or refused (-ERR), and later ones in turn.
            link = self.account.store_link
            if link is None or not link.answers_pub(self, self.account.buffer_rules, subject):
                self._proto(OK)
        delivered = route_local(self, self.account, subject, reply, hdr_len, data)
        if not delivered and reply is not None and self.no_responders:
            self._send_no_responders(subject, reply)

    def _on_traced_pub(
        self, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        """``_on_pub`` for a message with trace headers (msgtrace.py)."""
        trace = msgtrace.begin(self, subject, hdr_len, data)
        if trace is True:
            self._on_pub(subject, reply, hdr_len, data)
            return
        if trace is False:
            return
        self.in_msgs += 1
        self.in_bytes += len(data)
        if not self._checks or self._pub_allowed(subject):
            delivered = msgtrace.route_traced(
                self, self.account, subject, reply, hdr_len, data, trace
            )
            if not delivered and reply is not None and self.no_responders and not trace.only:
                self._send_no_responders(subject, reply)
        trace.send(self)

    def _pub_allowed(self, subject: bytes) -> bool:
        """Pedantic subject check and publish permissions (-ERR, no +OK, when refused)."""
        if self.pedantic and not is_valid_literal_subject(subject):
            self.send_error("Invalid Publish Subject")
            return False
        perms = self.perms
        if (
            perms is not None
            and not perms.can_publish(subject)
            and not perms.can_publish_reply(subject, trio.current_time())
        ):
            log.error("%s - Publish Violation - Subject %r", self, subject.decode(errors="replace"))
            self.send_error(publish_violation_text(subject))
            return False
        return True

    def _send_no_responders(self, subject: bytes, reply: bytes) -> None:
        for sub in self.account.sublist.match(reply).psubs:
            if sub.client is self:
                # 2.15 form: the status line plus Nats-Subject (leafnode-protocol.md §2).
                hdr = b"NATS/1.0 503\r\nNats-Subject: " + subject + b"\r\n\r\n"
                self.send_msg(reply, sub.sid, None, len(hdr), hdr)
                return

    def _on_sub(self, event: Sub) -> None:
        subject, queue, sid = event.subject, event.queue, event.sid
        if not is_valid_subject(subject) or (queue is not None and not is_valid_queue(queue)):
            self.send_error("Invalid Subject")
            return
        deliver_filter = None
        if self.perms is not None:
            if not self.perms.can_subscribe(subject, queue):
                log.error(
                    "%s - Subscription Violation - Subject %r",
                    self,
                    subject.decode(errors="replace"),
                )
                self.send_error(subscribe_violation_text(subject, queue))
                return
            deliver_filter = self.perms.deliver_filter(subject, queue)
        limit = self.server.settings.max_subscriptions
        if limit and len(self.subs) >= limit:
            self.send_error("Maximum Subscriptions Exceeded")
            return
        if sid in self.subs:
            # nats-server ignores a SUB that reuses a live sid.
            if self.verbose:
                self._proto(OK)
            return
        sub = Subscription(self, subject, queue, sid, deliver_filter, self._direct_sink)
        self.subs[sid] = sub
        self.account.add_subscription(sub)
        if self.verbose:
            self._proto(OK)

    def _on_unsub(self, event: Unsub) -> None:
        sub = self.subs.get(event.sid)
        if sub is not None:
            if event.max_msgs and event.max_msgs > sub.delivered:
                sub.max_msgs = event.max_msgs
            else:
                del self.subs[event.sid]
                self.account.remove_subscription(sub)
        if self.verbose:
            self._proto(OK)

    def auto_unsubscribed(self, sub: Subscription) -> None:
        """A subscription reached its UNSUB max: remove it."""
        if self.subs.get(sub.sid) is sub:
            del self.subs[sub.sid]
            self.account.remove_subscription(sub)

    async def _on_connect(self, event: Connect) -> None:
        options = with_cookies(event.options, self._cookies)
        server = self.server
        self.connect_options = options
        if not self.connected:
            auth = self._auth
            try:
                if auth.is_expensive(options):
                    # Outside any batch (the shell flushed it): other tasks run
                    # while bcrypt hashes.
                    identity = await trio.to_thread.run_sync(
                        functools.partial(
                            auth.authenticate, options, self.nonce, client_host=self.host
                        ),
                        limiter=server.auth_limiter,
                    )
                else:
                    identity = auth.authenticate(options, self.nonce, client_host=self.host)
            except AuthError as exc:
                log.error(
                    '%s - "%s" - authentication error: %s', self, self._client_desc(options), exc
                )
                self.close_with_error("Authorization Violation", closed.AUTH_FAILURE)
                return
            self.account = server.account(identity.account)
            self.user = identity.user
            self.identity = identity
            self._set_expiry(identity)
            if identity.permissions is not None:
                self._set_perms(PermissionChecker(identity.permissions, clock=trio.current_time))
        self.verbose = _flag(options, "verbose", _DEFAULT_VERBOSE)
        self.pedantic = _flag(options, "pedantic", _DEFAULT_PEDANTIC)
        self.echo = _flag(options, "echo", True)
        self.headers = _flag(options, "headers", False)
        self.sink.headers = self.headers
        self.no_responders = _flag(options, "no_responders", False)
        self.name = str(options.get("name", "") or "")
        self.lang = str(options.get("lang", "") or "")
        self.version = str(options.get("version", "") or "")
        if not self.connected:
            self._describe(options)
        protocol = options.get("protocol", 0)
        if not isinstance(protocol, int) or isinstance(protocol, bool) or protocol not in (0, 1):
            self.close_with_error("invalid client protocol", closed.BAD_PROTOCOL)
            return
        if self.no_responders and not self.headers:
            self.close_with_error(
                "no responders requires headers support", closed.NO_RESPONDERS_NEEDS_HEADERS
            )
            return
        self.connected = True
        self._checks = self.verbose or self.pedantic or self.perms is not None
        self.link.established()
        if self.verbose:
            self._proto(OK)

    # --------------------------------------------------------------- output

    def _info_bytes(self, *, update: bool = False) -> bytes:
        server = self.server
        info = dict(server.ws_info_template if self.websocket else server.info_template)
        self._sent_urls = info.get("connect_urls")
        info["client_id"] = self.cid
        info["client_ip"] = self.host
        if self._auth.nonce_required and not update:
            self.nonce = self._auth.new_nonce()
        if self.nonce is not None:
            info["nonce"] = self.nonce
        return encode_info(info)

    def send_info(self, *, update: bool = False) -> None:
        """INFO for this client; ``update`` re-sends it (e.g. lame duck) keeping the nonce."""
        if self._tls_first or self.server.ssl_context is None or update or self.websocket:
            self._proto(self._info_bytes(update=update))

    def _proto(self, data: bytes) -> None:
        """Queue a protocol line (not MSG); traced with -V."""
        if self.server.trace:
            log.log(
                TRACE, "%s - ->> [%s]", self, data.split(b"\r\n", 1)[0].decode(errors="replace")
            )
        self.outbound.write(data)

    def _send_msg_traced(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        shown = data[hdr_len:] if hdr_len and not self.headers else data
        frame = encode_msg_frame(subject, sid, reply, hdr_len if self.headers else 0, shown)
        line = frame.split(b"\r\n", 1)[0].decode(errors="replace")
        log.log(TRACE, "%s - ->> [%s]", self, line)
        ClientConnection.send_msg(self, subject, sid, reply, hdr_len, data)

    def _trace_in(self, event: Event) -> None:
        if isinstance(event, Connect):  # never a password or token in the log
            event = Connect(redact_connect(event.options))
        wire = encode_event(event)
        line, _, rest = wire.partition(b"\r\n")
        log.log(TRACE, "%s - <<- [%s]", self, line.decode(errors="replace"))
        if rest:
            log.log(TRACE, "%s - <<- MSG_PAYLOAD: [%r]", self, rest[:-2])

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        """Queue one MSG/HMSG for this client (``MsgSink.msg``; the routing
        path calls the sink directly, through ``Subscription.sink``)."""
        self.sink.msg(subject, sid, reply, hdr_len, data)

    def _allow_reply(self, reply: bytes) -> None:
        """``MsgSink.on_reply`` while the permissions allow responses."""
        perms = self.perms
        if perms is not None:
            perms.allow_reply(reply, trio.current_time())

    def _set_perms(self, perms: PermissionChecker | None) -> None:
        self.perms = perms
        self.sink.on_reply = (
            self._allow_reply if perms is not None and perms.tracks_replies else None
        )

    def send_pong(self) -> None:
        """A PONG deferred until the store committed (buffering.StoreLink)."""
        if not self.closing:
            self._pong()

    def _pong(self) -> None:
        """PONG; after the first one, the INFO update the client missed, if any.

        As nats-server: async INFO goes only to clients whose first PONG is
        out (a client reads the line after its CONNECT and PING as the PONG:
        nats-py stays "connecting" for good if an INFO comes first), and the
        first PING's PONG is followed by an INFO when the cluster's
        ``connect_urls`` changed since the client's INFO.
        """
        self._proto(PONG)
        if self.first_pong_sent:
            return
        self.first_pong_sent = True
        if self.takes_info_updates() and (
            self.server.info_template.get("connect_urls") != self._sent_urls
        ):
            self.send_info(update=True)

    def takes_info_updates(self, *, websocket_too: bool = False) -> bool:
        """Whether async INFO updates go to this client (nats-server's rules).

        Cluster ``connect_urls`` updates skip websocket clients; the lame duck
        INFO (``websocket_too``) goes to them as well. Either way only to a
        client past its first PONG that speaks protocol 1.
        """
        proto = self.connect_options.get("protocol", 0)
        return (
            self.connected
            and self.first_pong_sent
            and (websocket_too or not self.websocket)
            and isinstance(proto, int)
            and proto >= 1
        )

    def send_ok(self) -> None:
        """A verbose PUB's +OK deferred until the store committed it (buffering.StoreLink)."""
        if not self.closing:
            self._proto(OK)

    def send_error(self, text: str) -> None:
        """``-ERR '<text>'`` that keeps the connection open."""
        self._proto(encode_err(text))

    def reconfigure(self) -> None:
        """After a reload: the new ping interval, ping_max and auth timeout apply.

        The outbound keeps the limits it started with (nats-server's
        connections keep theirs too); the shell reads its keepalive policy at
        every tick.
        """
        policy = client_policy(
            self.server.settings, auth=self._auth.auth_configured, websocket=self.websocket
        )
        self.link.policy = dataclasses.replace(policy, outbound=self.link.policy.outbound)

    def recheck_auth(self) -> None:
        """After a reload: close this client if its credentials no longer pass."""
        if not self.connected:
            return
        auth = self._auth
        named = auth.named_account(self.connect_options)
        if named is None or (named and named != self.account.name):
            # A user or nkey gone or moved to another account: nats-server
            # closes such a client without an -ERR, as "Client Closed".
            log.info("%s - closed on reload: user removed or moved to another account", self)
            self.close_now(closed.CLIENT_CLOSED)
            return
        try:
            identity = auth.authenticate(self.connect_options, self.nonce, client_host=self.host)
        except AuthError as exc:
            log.info("%s - closed on reload: %s", self, exc)
            self.close_with_error("Authorization Violation", closed.AUTH_FAILURE)
            return
        if identity.account != self.account.name:
            log.info("%s - closed on reload: account changed", self)
            # nats-server closes a client that moved accounts as "Client Closed".
            self.close_with_error("Authorization Violation", closed.CLIENT_CLOSED)
            return
        self.user = identity.user
        self.identity = identity
        self._set_expiry(identity)
        self._set_perms(
            PermissionChecker(identity.permissions, clock=trio.current_time)
            if identity.permissions is not None
            else None
        )
        self._checks = self.verbose or self.pedantic or self.perms is not None
        self._recheck_subscriptions()

    def _recheck_subscriptions(self) -> None:
        """Drop the subscriptions the new permissions refuse, as nats-server does.

        Each one removed gets ``-ERR 'Permissions Violation for Subscription
        to "<subject>" (sid "<sid>")'``; the client stays connected. The ones
        kept get the new permissions' deny filter for deliveries.
        """
        perms = self.perms
        for sid, sub in list(self.subs.items()):
            if perms is None:
                sub.deliver_filter = None
            elif perms.can_subscribe(sub.subject, sub.queue):
                sub.deliver_filter = perms.deliver_filter(sub.subject, sub.queue)
            else:
                del self.subs[sid]
                self.account.remove_subscription(sub)
                log.info(
                    "%s - Removed sub %r (sid %r) - not authorized",
                    self,
                    sub.subject.decode(errors="replace"),
                    sid.decode(errors="replace"),
                )
                self.send_error(removed_subscription_text(sub.subject, sub.queue, sid))

    def close_with_error(self, text: str, reason: str | None = None) -> None:
        """``-ERR '<text>'``, then close once it is written.

        ``reason`` is nats-server's close reason (closed.py), for the log and
        ``/connz?state=closed``; by default a protocol violation.
        """
        if self.closing:
            return
        self._proto(encode_err(text))
        self.link.close_after_flush(reason or closed.PROTOCOL_VIOLATION)

    def close_now(self, reason: str = closed.PROTOCOL_VIOLATION) -> None:
        """Close without a word to the client; ``reason`` as in ``close_with_error``."""
        self.link.close(reason)

    def _on_close(self) -> None:
        """The link starts closing: no more reads, no more deliveries."""
        self.closing = True
        self._drop_subscriptions()

    def _slow_consumer(self, reason: str) -> None:
        if self.closing:
            self.outbound.discard()
            return
        log.info("%s - Slow Consumer Detected: %s", self, reason)
        self.server.slow_consumers += 1
        self.outbound.discard()
        self.close_with_error(
            "Slow Consumer",
            closed.SLOW_CONSUMER_PENDING
            if reason == "pending bytes"
            else closed.SLOW_CONSUMER_WRITE_DEADLINE,
        )

    def _drop_subscriptions(self) -> None:
        if self.subs:
            self.closed_subs = tuple(self.subs.values())
            account = self.account
            for sub in self.subs.values():
                account.remove_subscription(sub)
            self.subs.clear()

    def log_label(self) -> str:
        """``host:port - cid:N``, plus what CONNECT told (see ``_describe``)."""
        return f"{self}{self._description}" if self._description else str(self)

    def _describe(self, options: dict[str, object]) -> None:
        """nats-server's quoted client description and ``"account/user:name"``.

        Set once the credentials pass, as nats-server does (client.go
        processConnect); the user label names the kind of credential and
        never carries a secret (a token is just ``token``).
        """
        desc = ":".join(
            part
            for part in (f"v{self.version}" if self.version else "", self.lang, self.name)
            if part
        )
        if options.get("nkey"):
            user = f"nkey:{options['nkey']}"
        elif options.get("user"):
            user = f"user:{options['user']}"
        elif options.get("jwt"):
            user = f"jwt:{self.user}"
        elif options.get("auth_token"):
            user = "token"
        else:
            user = ""
        if user:
            user = f"{self.account.name}/{user}"
        self._description = "".join(f' - "{part}"' for part in (desc, user) if part)

    def _client_desc(self, options: dict[str, object]) -> str:
        return f"v{options.get('version', '')}:{options.get('lang', '')}:{options.get('name', '')}"


# The close reason of a parser error by its -ERR text (the parser's
# ERR_MAX_PAYLOAD, ERR_MAX_CONTROL_LINE); any other is a protocol violation.
_PARSER_CLOSE_REASONS: Final = {
    "Maximum Payload Violation": closed.MAX_PAYLOAD,
    "maximum control line exceeded": closed.MAX_CONTROL_LINE,
}


def _flag(options: dict[str, object], key: str, default: bool) -> bool:
    value = options.get(key, default)
    return value if isinstance(value, bool) else default
