"""Client authentication, accounts and permissions, through real nats-py clients."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import bcrypt
import nats
import nkeys
import pytest

from tests.conftest import RouterFactory, respond_ok, until_responding, wait_until

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.msg import Msg

pytestmark = pytest.mark.asyncio

MsgList = list[tuple[str, bytes]]


def _collector(into: MsgList) -> Callable[[Msg], Awaitable[None]]:
    async def cb(msg: Msg) -> None:
        into.append((msg.subject, msg.data))

    return cb


async def _refused(url: str, **kwargs: object) -> str:
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    with pytest.raises(Exception) as info:
        await nats.connect(
            url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
            error_cb=error_cb,
            **kwargs,
        )
    return " ".join([str(info.value), *errors])


async def test_user_password(router_factory: RouterFactory) -> None:
    router = router_factory("authorization { user: alice, password: s3cret }")
    nc = await nats.connect(router.url, user="alice", password="s3cret")
    assert nc.is_connected
    await nc.close()
    assert (
        "authorization violation"
        in (await _refused(router.url, user="alice", password="nope")).lower()
    )
    assert "authorization violation" in (await _refused(router.url)).lower()


async def test_bcrypt_password_and_token(router_factory: RouterFactory) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    router = router_factory(f'authorization {{ users: [ {{ user: bob, password: "{hashed}" }} ] }}')
    nc = await nats.connect(router.url, user="bob", password="pw")
    await nc.close()
    assert (
        "authorization violation" in (await _refused(router.url, user="bob", password="px")).lower()
    )

    router = router_factory("authorization { token: t0ken }")
    nc = await nats.connect(router.url, token="t0ken")
    await nc.close()
    assert "authorization violation" in (await _refused(router.url, token="bad")).lower()


async def test_nkey_user(router_factory: RouterFactory) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(seed).public_key.decode()
    router = router_factory(f"authorization {{ users: [ {{ nkey: {public} }} ] }}")
    nc = await nats.connect(router.url, nkeys_seed_str=seed.decode())
    got: MsgList = []
    await nc.subscribe("n", cb=_collector(got))
    await nc.publish("n", b"signed")
    await wait_until(lambda: got == [("n", b"signed")], what="nkey client round trip")
    await nc.close()
    other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    assert "authorization violation" in (await _refused(router.url, nkeys_seed_str=other)).lower()


async def test_accounts_are_isolated(router_factory: RouterFactory) -> None:
    router = router_factory(
        """
        accounts {
          A: { users: [ { user: a1, password: a1 }, { user: a2, password: a2 } ] }
          B: { users: [ { user: b1, password: b1 } ] }
        }
        """
    )
    a1 = await nats.connect(router.url, user="a1", password="a1")
    a2 = await nats.connect(router.url, user="a2", password="a2")
    b1 = await nats.connect(router.url, user="b1", password="b1")
    got_a2: MsgList = []
    got_b1: MsgList = []
    await a2.subscribe("shared", cb=_collector(got_a2))
    await b1.subscribe("shared", cb=_collector(got_b1))
    await b1.subscribe("ready", cb=respond_ok)
    await a2.subscribe("ready", cb=respond_ok)
    await until_responding(b1, "ready")
    await until_responding(a1, "ready")
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


async def test_publish_and_subscribe_permissions(router_factory: RouterFactory) -> None:
    router = router_factory(
        """
        authorization {
          users: [
            { user: limited, password: p,
              permissions: { publish: { allow: ["ok.>", "_INBOX.>"], deny: ["ok.secret"] },
                             subscribe: ["ok.>", "_INBOX.>"] } }
            { user: admin, password: p }
          ]
        }
        """
    )
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    limited = await nats.connect(router.url, user="limited", password="p", error_cb=error_cb)
    admin = await nats.connect(router.url, user="admin", password="p")
    got: MsgList = []
    await admin.subscribe(">", cb=_collector(got))
    await admin.subscribe("ok.ready", cb=respond_ok)
    await until_responding(limited, "ok.ready")  # fails if _INBOX were not allowed
    got.clear()
    await limited.publish("ok.fine", b"1")
    await limited.publish("forbidden", b"2")
    await limited.publish("ok.secret", b"3")
    await limited.subscribe("not.allowed")
    await wait_until(lambda: len(errors) >= 3, what="three permission errors")
    # nats-py lower-cases the server's text; the exact bytes are checked in
    # test_protocol_vs_nats_server.
    assert 'nats: permissions violation for publish to "forbidden"' in errors
    assert 'nats: permissions violation for publish to "ok.secret"' in errors
    assert 'nats: permissions violation for subscription to "not.allowed"' in errors
    await until_responding(limited, "ok.ready")
    assert [s for s, _ in got if s != "ok.ready" and not s.startswith("_INBOX")] == ["ok.fine"]
    assert limited.is_connected
    await limited.close()
    await admin.close()


async def test_no_auth_user(router_factory: RouterFactory) -> None:
    router = router_factory(
        """
        accounts { APP: { users: [ { user: app, password: pw } ] } }
        no_auth_user: app
        """
    )
    anon = await nats.connect(router.url)
    named = await nats.connect(router.url, user="app", password="pw")
    got: MsgList = []
    await named.subscribe("in.app", cb=_collector(got))
    await named.subscribe("ready", cb=respond_ok)
    await until_responding(anon, "ready")
    await anon.publish("in.app", b"anonymous")
    await wait_until(lambda: got == [("in.app", b"anonymous")], what="no_auth_user lands in APP")
    await anon.close()
    await named.close()
