"""One accepted leaf connection as a sans-IO protocol object (issue 15, for leafnode.link).

Theory of operation
-------------------
``HubLeafConnection`` is fed what a read returned (``receive``) and answers
with a list of outcomes, in the style of h11's ``Connection``; the shell that
runs it (issue 13's ``leafnode.link``) writes ``Send`` bytes, hands the rest
to the router, and closes on ``Close``. It holds no socket, clock or task:
the auth timeout and the keepalive are the shell's policy (``ERR_AUTH_TIMEOUT``
is the ``-ERR`` its handshake deadline sends).

States, as nats-server's accepting side walks them (leafnode-protocol.md
§4.2-§4.9):

``first_info``
    the INFO to send at once, with this connection's nonce.
awaiting CONNECT
    anything else first (INFO included: we advertise no compression) is
    ``-ERR 'Authorization Violation'`` and a close. CONNECT goes to
    ``LeafAuthorizer.check``: ``Refused`` closes with its ``-ERR``; ``AsClient``
    (no leafnode authorization) comes back as ``Authenticate`` for the router
    to run its client authentication (users, token, nkeys, user JWTs with
    connection type ``LEAFNODE``) and answer with ``bind`` or ``refuse``;
    ``Accepted`` is bound at once.
bound
    ``Established`` (the account and the leaf's identity), then the
    ``connect_info`` INFO is sent; the router then sends its interest as
    ``LS+``. ``LS+``/``LS-`` become ``InterestChange`` (``DownstreamInterest``:
    loop and permission checks), ``LMSG``/``HMSG`` pass through as the
    parser's ``LMsg``/``LHMsg`` (refused with nats-server's publish
    violation when the leaf's user may not publish there), ``PING`` is
    answered, ``PONG`` reported, a leaf's ``-ERR`` only reported.

A parse error closes with the parser's ``-ERR`` text (none where
nats-server closes silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from leafnode.proto import (
    PONG,
    Connect,
    Err,
    Kind,
    LHMsg,
    LMsg,
    LSub,
    LUnsub,
    Parser,
    Ping,
    Pong,
    RemoteProtocolError,
    encode_err,
)

from .hubside import (
    ERR_AUTH_VIOLATION,
    Accepted,
    AsClient,
    DownstreamInterest,
    InterestChange,
    Refused,
    encode_connect_info,
    encode_first_info,
    new_nonce,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .hubside import HubInfo, LeafAuthorizer

__all__ = [
    "Authenticate",
    "Close",
    "Established",
    "HubLeafConnection",
    "Outcome",
    "PeerErr",
    "PongSeen",
    "Send",
]

_VIOLATION: Final = encode_err(ERR_AUTH_VIOLATION)


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes to queue on the connection."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection after writing ``err`` (if any); ``reason`` for the log."""

    err: bytes | None
    reason: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Run the client authentication on this CONNECT (no leafnode authorization).

    Answer with ``HubLeafConnection.bind`` or ``refuse``; ``nonce`` is the
    one our INFO carried (for an nkey or JWT signature).
    """

    options: Mapping[str, object]
    nonce: str
    default_account: str


@dataclass(frozen=True, slots=True)
class Established:
    """The leaf is bound: register it with ``accepted.account``."""

    accepted: Accepted


@dataclass(frozen=True, slots=True)
class PongSeen:
    """The leaf answered a keepalive PING."""


@dataclass(frozen=True, slots=True)
class PeerErr:
    """The leaf sent ``-ERR``: nats-server logs it and keeps the link (§4.4)."""

    text: str


Outcome = (
    Send | Close | Authenticate | Established | InterestChange | LMsg | LHMsg | PongSeen | PeerErr
)


class HubLeafConnection:
    """The accepting side of one leaf link (module doc).

    Args:
        authorizer: the ``leafnodes { authorization }`` checks.
        info: our leafnode INFO fields.
        client_id: this connection's id (nonzero: a real leaf checks it).
        lds_for: our ``$LDS.<id>`` of an account.
        max_payload: the largest LMSG/HMSG accepted.
    """

    def __init__(
        self,
        authorizer: LeafAuthorizer,
        info: HubInfo,
        *,
        client_id: int,
        lds_for: Callable[[str], bytes],
        max_payload: int,
    ) -> None:
        self._authorizer = authorizer
        self._info = info
        self._client_id = client_id
        self._lds_for = lds_for
        self._parser = Parser(Kind.LEAF, max_payload=max_payload)
        self.nonce = new_nonce()
        self.accepted: Accepted | None = None
        self.interest: DownstreamInterest | None = None
        self._may_send: Callable[[bytes], bool] | None = None
        self._pending = False  # a CONNECT is out for authentication
        self._pending_options: Mapping[str, object] = {}
        self._closed = False

    @property
    def first_info(self) -> bytes:
        """The INFO to send the moment the leaf connects."""
        return encode_first_info(self._info, client_id=self._client_id, nonce=self.nonce)

    def receive(self, data: bytes) -> list[Outcome]:
        """What one read from the leaf means, in order; stops at a ``Close``."""
        out: list[Outcome] = []
        if self._closed:
            return out
        parser = self._parser
        try:
            parser.feed(data)
            while not self._pending and (event := parser.next_event()) is not None:
                if self._handle(event, out):
                    break
        except RemoteProtocolError as exc:
            err = encode_err(exc.err_text) if exc.err_text else None
            self._close(out, err, f"protocol error: {exc}")
        parser.compact()
        return out

    def bind(
        self,
        account: str,
        user: str | None,
        *,
        may_receive: Callable[[bytes], bool] | None = None,
        may_send: Callable[[bytes], bool] | None = None,
        imports: Mapping[str, object] | None = None,
        exports: Mapping[str, object] | None = None,
    ) -> list[Outcome]:
        """The router's client authentication bound the leaf (after ``Authenticate``).

        ``may_receive``/``may_send``: the user's permissions as seen from the
        leaf (what it may be sent / may publish); ``imports``/``exports`` the
        same for the connect_info INFO. Events that arrived meanwhile follow.
        """
        options = self._pending_options
        self._pending = False
        accepted = self._authorizer.accepted_as_client(options, account, user)
        out: list[Outcome] = []
        self._establish(accepted, out, may_receive, may_send, imports, exports)
        out.extend(self.receive(b""))
        return out

    def refuse(self, reason: str, err: bytes | None = None) -> list[Outcome]:
        """The router's client authentication refused the leaf.

        ``err``: the ``-ERR`` line to close with (default: Authorization Violation).
        """
        self._pending = False
        out: list[Outcome] = []
        self._close(out, err or _VIOLATION, reason)
        return out

    def _handle(self, event: object, out: list[Outcome]) -> bool:
        """One parsed event; True when the connection closed."""
        if self.accepted is None:
            if not isinstance(event, Connect):
                self._close(out, _VIOLATION, f"{type(event).__name__} before CONNECT")
                return True
            return self._connect(event, out)
        if isinstance(event, LMsg | LHMsg):
            if self._may_send is not None and not self._may_send(event.subject):
                subject = event.subject.decode(errors="replace")
                err = encode_err(f'Permissions Violation for Publish to "{subject}"')
                self._close(out, err, "publish permission violation")
                return True
            out.append(event)
        elif isinstance(event, LSub):
            assert self.interest is not None
            change = self.interest.lsub(event.subject, event.queue, event.weight)
            if isinstance(change, Refused):
                self._close(out, change.err, change.reason)
                return True
            if change is not None:
                out.append(change)
        elif isinstance(event, LUnsub):
            assert self.interest is not None
            gone = self.interest.lunsub(event.subject, event.queue)
            if gone is not None:
                out.append(gone)
        elif isinstance(event, Ping):
            out.append(Send(PONG))
        elif isinstance(event, Pong):
            out.append(PongSeen())
        elif isinstance(event, Err):
            out.append(PeerErr(event.text))
        elif isinstance(event, Connect):
            self._close(out, _VIOLATION, "a second CONNECT")
            return True
        # INFO from a leaf after CONNECT: nothing to do (we offer no compression).
        return False

    def _connect(self, event: Connect, out: list[Outcome]) -> bool:
        result = self._authorizer.check(event.options, self.nonce)
        if isinstance(result, Refused):
            self._close(out, result.err, result.reason)
            return True
        if isinstance(result, AsClient):
            self._pending = True
            self._pending_options = event.options
            out.append(Authenticate(event.options, self.nonce, result.default_account))
            return False
        self._establish(result, out, None, None, None, None)
        return False

    def _establish(
        self,
        accepted: Accepted,
        out: list[Outcome],
        may_receive: Callable[[bytes], bool] | None,
        may_send: Callable[[bytes], bool] | None,
        imports: Mapping[str, object] | None,
        exports: Mapping[str, object] | None,
    ) -> None:
        self.accepted = accepted
        self._may_send = may_send
        self.interest = DownstreamInterest(
            accepted.account, self._lds_for(accepted.account), may_receive
        )
        out.append(Established(accepted))
        info = encode_connect_info(
            self._info,
            client_id=self._client_id,
            account=accepted.account,
            imports=imports,
            exports=exports,
        )
        out.append(Send(info))

    def _close(self, out: list[Outcome], err: bytes | None, reason: str) -> None:
        self._closed = True
        out.append(Close(err, reason))
