"""Sans-IO parts of services/router/imports.py: subject mapping, headers, one-use replies."""

from __future__ import annotations

import time

import pytest

from leafnode.config import AccountSettings, ImportSettings
from services.router import imports
from services.router.routing import Account, Subscription, route_local


class Client:
    """A routing.Delivery that records what it is sent."""

    echo = True
    verbose = False
    buffer_batch = 0
    no_responders = True

    def __init__(self) -> None:
        self.got: list[tuple[bytes, bytes | None, bytes]] = []

    def send_ok(self) -> None:
        pass

    def send_error(self, text: str) -> None:
        pass

    def send_pong(self) -> None:
        pass

    def send_msg(
        self, subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, data: bytes
    ) -> None:
        self.got.append((subject, reply, data))

    def auto_unsubscribed(self, sub: Subscription) -> None:
        pass


def test_mapper_moves_wildcard_tokens() -> None:
    assert imports._mapper(b"a.>", b"a.>") is None
    literal = imports._mapper(b"x", b"q")
    assert literal is not None
    assert literal(b"x") == b"q"
    mapped = imports._mapper(b"x.*.y.>", b"q.*.>")
    assert mapped is not None
    assert mapped(b"x.1.y.2.3") == b"q.1.2.3"


def test_add_header_with_and_without_headers() -> None:
    line = b"K: v\r\n"
    assert imports._add_header(0, b"hi", line) == (18, b"NATS/1.0\r\nK: v\r\n\r\nhi")
    hdr = b"NATS/1.0\r\nA: b\r\n\r\n"
    n, data = imports._add_header(len(hdr), hdr + b"hi", line)
    assert data == b"NATS/1.0\r\nA: b\r\nK: v\r\n\r\nhi"
    assert n == len(data) - 2


def _setup() -> tuple[Account, Account, Client, Client]:
    s, a = Account("S"), Account("A")
    imp = ImportSettings("service", "S", "q", "x")
    installed = imports.install(
        {"S": s, "A": a}, [AccountSettings("A", imports=(imp,))], lambda: None
    )
    assert len(installed) == 1
    server, requester = Client(), Client()
    s.sublist.insert(Subscription(server, b"q", None, b"1"))
    a.sublist.insert(Subscription(requester, b"inbox", None, b"1"))
    return s, a, server, requester


def test_reply_is_one_use() -> None:
    s, a, server, requester = _setup()
    assert route_local(requester, a, b"x", b"inbox", 0, b"req") == 1
    [(subject, reply, _)] = server.got
    assert subject == b"q"
    assert reply is not None
    assert reply.startswith(b"_R_.")
    assert route_local(server, s, reply, None, 0, b"one") == 1
    assert route_local(server, s, reply, None, 0, b"two") == 0
    assert [(subj, data[-3:]) for subj, _, data in requester.got] == [(b"inbox", b"one")]
    assert s.sublist.count() == 1


def test_unanswered_replies_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    s, a, server, requester = _setup()
    route_local(requester, a, b"x", b"inbox", 0, b"req")
    assert s.sublist.count() == 2
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + imports.RESPONSE_TTL_S + 1)
    route_local(requester, a, b"x", b"inbox", 0, b"req")
    # The first one-use reply is gone; only the new one remains.
    assert s.sublist.count() == 2
    assert len({reply for _, reply, _ in server.got}) == 2


def test_uninstall_removes_hooks_and_pending_replies() -> None:
    s, a = Account("S"), Account("A")
    settings = [
        AccountSettings(
            "A",
            imports=(
                ImportSettings("service", "S", "q", "x"),
                ImportSettings("stream", "S", "s", "p.s", "p"),
            ),
        )
    ]
    installed = imports.install({"S": s, "A": a}, settings, lambda: None)
    requester = Client()
    s.sublist.insert(Subscription(Client(), b"q", None, b"1"))
    route_local(requester, a, b"x", b"inbox", 0, b"req")
    # S: the subscriber, the stream hook, the pending reply; A: the service hook.
    assert (s.sublist.count(), a.sublist.count()) == (3, 1)
    imports.uninstall(installed)
    assert (s.sublist.count(), a.sublist.count()) == (1, 0)
