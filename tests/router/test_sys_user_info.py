"""``$SYS.REQ.USER.INFO``: each client learns who it is connected as, as nats-server answers.

The same config and credentials go to a real nats-server and to the router;
the ``data`` of both answers must be equal (the ``server`` block names each
server, so only its shape is compared).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import nats
import pytest

from tests.support._jwt import JwtOperator

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import HubFactory, RouterFactory

pytestmark = pytest.mark.asyncio

SUBJECT = "$SYS.REQ.USER.INFO"
USERS = """authorization {
  users: [
    {user: app, password: a, permissions: {
      publish: {allow: ["x.>", "$SYS.REQ.USER.INFO"], deny: ["x.y"]},
      subscribe: ["_INBOX.>", "z"],
      allow_responses: true
    }}
    {user: plain, password: p}
    {user: mute, password: m, permissions: {publish: ["x.>"]}}
  ]
}
"""


async def _ask(url: str, **options: object) -> dict[str, Any]:
    nc = await nats.connect(url, allow_reconnect=False, **options)
    try:
        answer = await nc.request(SUBJECT, b"", timeout=5)
    finally:
        await nc.close()
    body = json.loads(answer.data)
    assert isinstance(body, dict)
    return body


def _ordered(data: object) -> object:
    """Permission lists sorted: nats-server lists them in its trie's (map) order."""
    if isinstance(data, dict):
        return {key: _ordered(value) for key, value in data.items()}
    if isinstance(data, list):
        return sorted(data)
    return data


async def _both(
    config: str, router_factory: RouterFactory, nats_server_factory: HubFactory, **options: object
) -> tuple[dict[str, Any], dict[str, Any]]:
    router = router_factory(config)
    server = nats_server_factory(config)
    return await _ask(router.url, **options), await _ask(server.url, **options)


async def test_user_info_for_configured_users_as_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    router = router_factory(USERS)
    server = nats_server_factory(USERS)
    for user, password in (("app", "a"), ("plain", "p")):
        ours = await _ask(router.url, user=user, password=password)
        theirs = await _ask(server.url, user=user, password=password)
        assert _ordered(ours["data"]) == _ordered(theirs["data"]), user
        assert set(ours["server"]) <= set(theirs["server"])
        assert ours["server"]["ver"] == theirs["server"]["ver"]
    assert ours["data"] == {"user": "plain", "account": "$G", "account_name": "$G"}
    # No publish permission for the subject: refused as any other publish.
    for url in (router.url, server.url):
        nc = await nats.connect(url, user="mute", password="m", allow_reconnect=False)
        try:
            with pytest.raises(nats.errors.TimeoutError):
                await nc.request(SUBJECT, b"", timeout=1)
        finally:
            await nc.close()


async def test_user_info_without_auth_as_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory
) -> None:
    ours, theirs = await _both("", router_factory, nats_server_factory)
    assert ours["data"] == theirs["data"] == {"user": "", "account": "$G", "account_name": "$G"}


async def test_user_info_for_a_jwt_user_as_nats_server(
    router_factory: RouterFactory, nats_server_factory: HubFactory, tmp_path: Path
) -> None:
    op = JwtOperator()
    acc = op.account("Sales")
    user = acc.user("alice", pub={"allow": ["$SYS.REQ.USER.INFO"]}, expires=int(time.time()) + 3600)
    creds = str(user.write_creds(tmp_path / "alice.creds"))
    ours, theirs = await _both(
        op.config(), router_factory, nats_server_factory, user_credentials=creds
    )
    expires_ours = ours["data"].pop("expires")
    expires_theirs = theirs["data"].pop("expires")
    # Whole seconds until exp, read a moment apart.
    assert abs(expires_ours - expires_theirs) <= 2 * 10**9
    assert ours["data"] == theirs["data"]
    assert ours["data"]["user"] == user.public_key
    assert ours["data"]["user_name"] == "alice"
