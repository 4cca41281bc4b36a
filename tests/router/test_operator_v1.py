"""Legacy v1 operator, account and user JWTs: accepted as nats-server accepts them (issue 12.4).

leafnode refused a user JWT with the v1 header ``{"typ":"jwt","alg":"ed25519"}``
(nats.py's ``resolver_preload.conf``) and a v1 operator JWT at start-up
(nats.js's ``auth - creds``, ``jwt`` tests). The same config and credentials
run against each installed nats-server, and both reach the same verdicts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.router.test_operator_mode import LIMITED_PUB, LIMITED_SUB, _Creds, _verdict
from tests.support._jwt import JwtAccount, JwtOperator

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import HubFactory, RouterFactory

pytestmark = pytest.mark.asyncio

REFUSED = "refused: nats: 'Authorization Violation'"
PUB_DENIED = 'nats: permissions violation for publish to "forbidden"'
SUB_DENIED = 'nats: permissions violation for subscription to "not.allowed"'


@pytest.mark.parametrize("operator_version", [1, 2])
async def test_v1_jwts_same_verdicts_as_nats_server(
    router_factory: RouterFactory,
    nats_server_factory: HubFactory,
    hub_binary: str,
    tmp_path: Path,
    operator_version: int,
) -> None:
    creds = _Creds(tmp_path)
    now = int(time.time())
    op = JwtOperator(version=operator_version)
    v1 = op.account("V1", version=1)
    v2 = op.account("V2", version=2)
    key = v1.add_signing_key()
    revoked = v1.user("revoked")
    v1.revoke(revoked.public_key)
    users = {
        "v1 user of a v1 account": v1.user(),
        "v1 user via a signing key": v1.user(signing_key=key),
        "v1 limited user": v1.user(pub=LIMITED_PUB, sub=LIMITED_SUB),
        "v1 user of a v2 account": v2.user(version=1),
        "v2 user of a v1 account": v1.user(version=2),
        "v1 expired": v1.user(expires=now - 5),
        "v1 revoked": revoked,
        "v1 account not preloaded": JwtAccount(op, "stray", version=1).user(),
    }
    files = {name: creds(user) for name, user in users.items()}
    config = op.config()
    router = router_factory(config)
    server = nats_server_factory(config, binary=hub_binary)
    ours = {name: await _verdict(router.url, path) for name, path in files.items()}
    theirs = {name: await _verdict(server.url, path) for name, path in files.items()}
    assert ours == theirs
    assert ours == {
        "v1 user of a v1 account": "accepted",
        "v1 user via a signing key": "accepted",
        "v1 limited user": f"accepted; {PUB_DENIED}; {SUB_DENIED}",
        "v1 user of a v2 account": "accepted",
        "v2 user of a v1 account": "accepted",
        "v1 expired": REFUSED,
        "v1 revoked": REFUSED,
        "v1 account not preloaded": REFUSED,
    }
