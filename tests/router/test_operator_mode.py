"""Operator mode on the client port: real nats-py clients with generated ``.creds`` files.

The last test runs the same config and the same credentials against each
installed nats-server and checks that both servers reach the same verdicts.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import (
    HubFactory,
    RouterFactory,
    respond_ok,
    until_responding,
    wait_until,
)
from tests.rawclient import RawClient
from tests.support._jwt import JwtAccount, JwtOperator, JwtUser

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

pytestmark = pytest.mark.asyncio

MsgList = list[tuple[str, bytes]]

# A user that may publish and subscribe under ok.> (and its inboxes) only.
LIMITED_PUB = {"allow": ["ok.>", "_INBOX.>"], "deny": ["ok.secret"]}
LIMITED_SUB = {"allow": ["ok.>", "_INBOX.>"]}


def _collector(into: MsgList) -> Callable[[Msg], Awaitable[None]]:
    async def cb(msg: Msg) -> None:
        into.append((msg.subject, msg.data))

    return cb


class _Creds:
    """Writes each user's ``.creds`` file once, under the test's tmp dir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def __call__(self, user: JwtUser) -> str:
        self.count += 1
        return str(user.write_creds(self.directory / f"user{self.count}.creds"))


@pytest.fixture
def creds(tmp_path: Path) -> _Creds:
    return _Creds(tmp_path)


async def _settle(nc: NATS) -> None:
    """Return once the server has processed everything sent so far.

    nats-py writes a flush's PING straight to the socket, ahead of commands
    still queued, so one flush may come back before them. The second PING
    follows them on the wire; the server answers in order, and nats-py runs
    ``error_cb`` for a -ERR before it reads the PONG behind it.
    """
    await nc.flush()
    await nc.flush()


async def _connect(url: str, creds_file: str, errors: list[str] | None = None) -> NATS:
    async def error_cb(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    return await nats.connect(
        url,
        user_credentials=creds_file,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=2,
        error_cb=error_cb,
    )


async def _verdict(url: str, creds_file: str) -> str:
    """ "accepted" plus the permission errors of a fixed probe, or why it was refused."""
    errors: list[str] = []
    try:
        nc = await _connect(url, creds_file, errors)
    except Exception as exc:
        return f"refused: {exc}"
    await nc.publish("ok.fine", b"")
    await nc.publish("forbidden", b"")
    await nc.subscribe("not.allowed")
    await _settle(nc)
    await nc.close()
    return "; ".join(["accepted", *errors])


async def test_accepted_into_its_account(router_factory: RouterFactory, creds: _Creds) -> None:
    op = JwtOperator()
    acc = op.account("A")
    router = router_factory(op.config())
    nc = await _connect(router.url, creds(acc.user()))
    info = nc._server_info
    assert info["auth_required"] is True
    assert isinstance(info["nonce"], str)
    assert len(info["nonce"]) == 15
    got: MsgList = []
    await nc.subscribe("greet", cb=_collector(got))
    await nc.publish("greet", b"hello")
    await wait_until(lambda: got == [("greet", b"hello")], what="round trip")
    await nc.close()


async def test_refused_credentials(router_factory: RouterFactory, creds: _Creds) -> None:
    now = int(time.time())
    op = JwtOperator()
    acc = op.account("A")
    revoked = acc.user("revoked")
    acc.revoke(revoked.public_key)
    cases = {
        "account not preloaded": JwtAccount(op, "stray").user(),
        "expired": acc.user(expires=now - 5),
        "not yet valid": acc.user(not_before=now + 3600),
        "revoked": revoked,
        "leafnode only": acc.user(connection_types=("LEAFNODE",)),
        "account from another operator": JwtOperator().account("A").user(),
    }
    router = router_factory(op.config())
    verdicts = {name: await _verdict(router.url, creds(user)) for name, user in cases.items()}
    assert verdicts == dict.fromkeys(cases, "refused: nats: 'Authorization Violation'")
    assert await _verdict(router.url, creds(acc.user())) == "accepted"
    log = router.log_text()
    assert "user JWT expired" in log
    assert f"user {revoked.public_key} is revoked" in log


async def test_permissions_enforced(router_factory: RouterFactory, creds: _Creds) -> None:
    op = JwtOperator()
    acc = op.account("A")
    router = router_factory(op.config())
    errors: list[str] = []
    limited = await _connect(router.url, creds(acc.user(pub=LIMITED_PUB, sub=LIMITED_SUB)), errors)
    admin = await _connect(router.url, creds(acc.user("admin")))
    got: MsgList = []
    await admin.subscribe(">", cb=_collector(got))
    await admin.subscribe("ok.ready", cb=respond_ok)
    await until_responding(limited, "ok.ready")  # fails if _INBOX were not allowed
    got.clear()
    await limited.publish("ok.fine", b"1")
    await limited.publish("forbidden", b"2")
    await limited.publish("ok.secret", b"3")
    await limited.subscribe("not.allowed")
    await _settle(limited)
    assert errors == [
        'nats: permissions violation for publish to "forbidden"',
        'nats: permissions violation for publish to "ok.secret"',
        'nats: permissions violation for subscription to "not.allowed"',
    ]
    await until_responding(limited, "ok.ready")
    assert [s for s, _ in got if s != "ok.ready" and not s.startswith("_INBOX")] == ["ok.fine"]
    await limited.close()
    await admin.close()


async def test_two_accounts_are_isolated(router_factory: RouterFactory, creds: _Creds) -> None:
    op = JwtOperator()
    a, b = op.account("A"), op.account("B")
    router = router_factory(op.config())
    a1 = await _connect(router.url, creds(a.user()))
    a2 = await _connect(router.url, creds(a.user()))
    b1 = await _connect(router.url, creds(b.user()))
    got_a2: MsgList = []
    got_b1: MsgList = []
    await a2.subscribe("shared", cb=_collector(got_a2))
    await b1.subscribe("shared", cb=_collector(got_b1))
    await a2.subscribe("ready", cb=respond_ok)
    await b1.subscribe("ready", cb=respond_ok)
    await until_responding(a1, "ready")
    await until_responding(b1, "ready")
    await a1.publish("shared", b"from A")
    await b1.publish("shared", b"from B")
    await wait_until(lambda: got_a2 == [("shared", b"from A")], what="A's message in A")
    await wait_until(lambda: got_b1 == [("shared", b"from B")], what="B's message in B")
    # A later round trip in each account proves nothing else crossed over.
    await until_responding(a1, "ready")
    await until_responding(b1, "ready")
    assert got_a2 == [("shared", b"from A")]
    assert got_b1 == [("shared", b"from B")]
    for nc in (a1, a2, b1):
        await nc.close()


async def test_same_verdicts_as_nats_server(
    router_factory: RouterFactory,
    nats_server_factory: HubFactory,
    hub_binary: str,
    creds: _Creds,
) -> None:
    now = int(time.time())
    op = JwtOperator(signing_key=True)
    a = op.account("A")
    b = op.account("B", issuer=op.signing_keys[0])
    plain_key = a.add_signing_key()
    scoped_key = a.add_signing_key(scope={"pub": {"allow": ["ok.>"]}})
    revoked = a.user("revoked")
    a.revoke(revoked.public_key)
    users = {
        "plain": a.user(),
        "via operator signing key": b.user(),
        "via account signing key": a.user(signing_key=plain_key),
        "via scoped signing key": a.user(signing_key=scoped_key),
        "limited": a.user(pub=LIMITED_PUB, sub=LIMITED_SUB),
        "standard only": a.user(connection_types=("STANDARD",)),
        "account not preloaded": JwtAccount(op, "stray").user(),
        "expired": a.user(expires=now - 5),
        "revoked": revoked,
        "leafnode only": a.user(connection_types=("LEAFNODE",)),
    }
    files = {name: creds(user) for name, user in users.items()}
    config = op.config()
    router = router_factory(config)
    server = nats_server_factory(config, binary=hub_binary)
    ours = {name: await _verdict(router.url, path) for name, path in files.items()}
    theirs = {name: await _verdict(server.url, path) for name, path in files.items()}
    assert ours == theirs
    refused = "refused: nats: 'Authorization Violation'"
    pub_denied = 'nats: permissions violation for publish to "forbidden"'
    sub_denied = 'nats: permissions violation for subscription to "not.allowed"'
    assert ours == {
        "plain": "accepted",
        "via operator signing key": "accepted",
        "via account signing key": "accepted",
        "via scoped signing key": f"accepted; {pub_denied}",
        "limited": f"accepted; {pub_denied}; {sub_denied}",
        "standard only": "accepted",
        "account not preloaded": refused,
        "expired": refused,
        "revoked": refused,
        "leafnode only": refused,
    }


async def test_client_closed_when_its_jwt_expires(
    router_factory: RouterFactory, creds: _Creds
) -> None:
    op = JwtOperator()
    acc = op.account("A")
    router = router_factory(op.config())
    errors: list[str] = []
    nc = await _connect(router.url, creds(acc.user(expires=int(time.time()) + 2)), errors)
    assert nc.is_connected
    await wait_until(lambda: not nc.is_connected, timeout=10, what="closed at expiry")
    assert "User Authentication Expired" in router.log_text()
    await nc.close()


async def test_clients_closed_when_their_account_jwt_expires_as_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory, creds: _Creds
) -> None:
    op = JwtOperator()
    # Whole seconds, as JWT times are: 3 s out so both servers start in time.
    acc = op.account("A", expires=int(time.time()) + 3)
    user = acc.user()
    config = op.config()
    servers = {"router": router_factory(config), "nats-server": nats_server_factory(config)}
    clients = {name: RawClient(server.port) for name, server in servers.items()}
    try:
        for client in clients.values():
            sig = user.sign(str(client.info["nonce"]))
            connect = {"verbose": False, "jwt": user.jwt, "sig": sig}
            client.send(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            assert client.read_line() == b"PONG"
        # nats-server's first PING (RTT) comes at a time of its choosing: leave PINGs out.
        ends = {
            name: client.read_until_closed(timeout=15).replace(b"PING\r\n", b"")
            for name, client in clients.items()
        }
    finally:
        for client in clients.values():
            client.close()
    assert ends["router"] == ends["nats-server"] == b"-ERR 'Account Authentication Expired'\r\n"
    assert "Account Authentication Expired" in servers["router"].log_text()
    # The account stays expired: a new client is refused.
    with pytest.raises(Exception, match="Authorization Violation"):
        await _connect(servers["router"].url, creds(user))
