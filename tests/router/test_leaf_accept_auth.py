"""Who may connect to the leaf port, and where it binds (issue 15 point 2).

Real nats-server leafs dial ``leafnode router``: each auth method accepted
(the link binds, messages cross into the right account) and refused (the
real leaf logs nats-server's ``Authorization Violation``). Permissions and
the loop check are driven with a raw leaf connection, whose bytes we choose.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bcrypt
import nats
import nkeys
import pytest

from tests.conftest import RouterFactory
from tests.rawclient import RawClient
from tests.router.test_leaf_accept import DEADLINE_S, Tier, _publish_until, _sub
from tests.support import (
    NatsServerProcess,
    OperatorKeys,
    hub_binaries,
    make_tls_files,
    wait_for_log,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.asyncio

BINARIES = hub_binaries()
LATEST = BINARIES.get("latest")
needs_latest = pytest.mark.skipif(LATEST is None, reason="needs nats-server 2.11+ (venv)")


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> str:
    return BINARIES[request.param]


@pytest.fixture
def leafs() -> Iterator[list[NatsServerProcess]]:
    started: list[NatsServerProcess] = []
    yield started
    for leaf in started:
        leaf.kill()


def _refused(tier: Tier, leaf: NatsServerProcess) -> None:
    wait_for_log(leaf, "Authorization Violation", timeout=DEADLINE_S)
    name = leaf.workdir.name
    assert f'leaf "{name}"' not in tier.router.log_text()


async def _crosses(tier: Tier, leaf: NatsServerProcess, *, user: str = "", pw: str = "") -> None:
    """A leaf client's publish reaches a router client (of the account ``user`` logs into)."""
    here = await nats.connect(tier.router.url, user=user or None, password=pw or None)
    there = await nats.connect(leaf.url)
    try:
        got: list[bytes] = []
        await _sub(here, "up.x", got)
        await _publish_until(there, "up.x", got, what="a message from the leaf")
    finally:
        await here.close()
        await there.close()


async def test_user_password(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        accept="authorization { user: leafu, password: leafp }",
    )
    await _crosses(tier, tier.leaf(binary, creds="leafu:leafp@"))
    _refused(tier, tier.leaf(binary, creds="leafu:wrong@", wait=False))


async def test_bcrypt_password(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    binary = LATEST or next(iter(BINARIES.values()))
    hashed = bcrypt.hashpw(b"leafp", bcrypt.gensalt(rounds=4)).decode()
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        accept=f'authorization {{ user: leafu, password: "{hashed}" }}',
    )
    await _crosses(tier, tier.leaf(binary, creds="leafu:leafp@"))
    _refused(tier, tier.leaf(binary, creds="leafu:nope@", wait=False))


async def test_users_bind_their_accounts(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        top="accounts { A: { users: [ { user: a, password: a } ] } }",
        accept="authorization { users: [ { user: la, password: lp, account: A } ] }",
    )
    leaf = tier.leaf(binary, creds="la:lp@")
    await _crosses(tier, leaf, user="a", pw="a")
    wait_for_log(tier.router, r"Leafnode connection created for account: A", timeout=DEADLINE_S)
    _refused(tier, tier.leaf(binary, creds="nobody:lp@", wait=False))


@needs_latest
async def test_nkey(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    assert LATEST is not None
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(seed).public_key.decode()
    other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    tier = Tier(router_factory, leafs, tmp_path, accept=f"authorization {{ nkey: {public} }}")
    await _crosses(tier, tier.leaf(LATEST, f"nkey: {seed.decode()}"))
    _refused(tier, tier.leaf(LATEST, f"nkey: {other}", wait=False))


@needs_latest
async def test_token_through_the_top_level_authorization(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    assert LATEST is not None
    tier = Tier(router_factory, leafs, tmp_path, top="authorization { token: t0ken }")
    leaf = tier.leaf(LATEST, creds="t0ken@")
    here = await nats.connect(tier.router.url, token="t0ken")
    there = await nats.connect(leaf.url)
    try:
        got: list[bytes] = []
        await _sub(here, "up.x", got)
        await _publish_until(there, "up.x", got, what="a message from the token leaf")
    finally:
        await here.close()
        await there.close()
    _refused(tier, tier.leaf(LATEST, creds="wrong@", wait=False))


@needs_latest
async def test_operator_mode_user_jwt(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    assert LATEST is not None
    operator = OperatorKeys()
    app = operator.account("APP")
    leaf_creds = tmp_path / "leaf.creds"
    leaf_creds.write_text(operator.user_creds("APP", connection_types=("LEAFNODE",)))
    client_creds = tmp_path / "client.creds"
    client_creds.write_text(operator.user_creds("APP", "client"))
    std_creds = tmp_path / "std.creds"
    std_creds.write_text(operator.user_creds("APP", "std", connection_types=("STANDARD",)))
    tier = Tier(router_factory, leafs, tmp_path, top=operator.hub_config())
    leaf = tier.leaf(LATEST, f'credentials: "{leaf_creds}"')
    wait_for_log(
        tier.router, rf"Leafnode connection created for account: {app.public_key}", timeout=30
    )
    here = await nats.connect(tier.router.url, user_credentials=str(client_creds))
    there = await nats.connect(leaf.url)
    try:
        got: list[bytes] = []
        await _sub(here, "up.x", got)
        await _publish_until(there, "up.x", got, what="a message from the JWT leaf")
    finally:
        await here.close()
        await there.close()
    # A user JWT for STANDARD connections only is refused on the leaf port.
    _refused(tier, tier.leaf(LATEST, f'credentials: "{std_creds}"', wait=False))


async def test_tls_with_client_certificates(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    files = make_tls_files(tmp_path / "tls")
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        accept=(
            f'tls {{ cert_file: "{files.server_cert}", key_file: "{files.server_key}", '
            f'ca_file: "{files.ca_cert}", verify: true }}'
        ),
    )
    good = (
        f'tls {{ ca_file: "{files.ca_cert}", cert_file: "{files.client_cert}", '
        f'key_file: "{files.client_key}" }}'
    )
    await _crosses(tier, tier.leaf(binary, good))
    # No client certificate: the handshake fails and no link is made.
    bad = tier.leaf(binary, f'tls {{ ca_file: "{files.ca_cert}" }}', wait=False)
    wait_for_log(tier.router, "TLS handshake error", timeout=DEADLINE_S)
    assert f'leaf "{bad.workdir.name}"' not in tier.router.log_text()


@needs_latest
async def test_tls_handshake_first(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    assert LATEST is not None
    files = make_tls_files(tmp_path / "tls")
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        accept=(
            f'tls {{ cert_file: "{files.server_cert}", key_file: "{files.server_key}", '
            "handshake_first: true }"
        ),
    )
    await _crosses(
        tier, tier.leaf(LATEST, f'tls {{ ca_file: "{files.ca_cert}", handshake_first: true }}')
    )


def _raw_leaf(port: int, **connect: object) -> tuple[RawClient, dict[str, object]]:
    """A raw leaf: CONNECT, then the connect_info INFO we answer with."""
    raw = RawClient(port)
    options = {"version": "2.15.1", "name": "raw-leaf", "server_id": "NRAWLEAF", "headers": True}
    options.update(connect)
    raw.send(b"CONNECT " + json.dumps(options).encode() + b"\r\n")
    line = raw.read_line(timeout=DEADLINE_S)
    assert line.startswith(b"INFO "), line
    info: dict[str, object] = json.loads(line[5:])
    assert info.get("connect_info") is True
    return raw, info


async def test_permissions_announced_and_enforced(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    tier = Tier(
        router_factory,
        leafs,
        tmp_path,
        top=(
            "authorization { users: [ { user: lu, password: lp, permissions: "
            '{ publish: ["up.>"], subscribe: ["down.>"] } } ] }'
        ),
    )
    raw, info = _raw_leaf(tier.leaf_port, user="lu", **{"pass": "lp"})
    # nats-server's import/export: what the leaf may receive / may send.
    assert info["import"] == {"allow": ["down.>"]}
    assert info["export"] == {"allow": ["up.>"]}
    raw.send(b"LMSG elsewhere.x 2\r\nhi\r\n")
    raw.read_until(b'Permissions Violation for Publish to "elsewhere.x"', timeout=DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    while not raw.closed and time.monotonic() < deadline:
        raw._fill(deadline)
    assert raw.closed


async def test_own_lds_coming_back_is_a_loop(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    tier = Tier(router_factory, leafs, tmp_path)
    raw, _ = _raw_leaf(tier.leaf_port)
    line = raw.read_line(timeout=DEADLINE_S)
    assert line.startswith(b"LS+ $LDS."), line  # our $LDS comes first
    raw.send(line + b"\r\n")
    raw.read_until(
        b"-ERR 'Loop detected for leafnode account=\"$G\". Delaying attempt to reconnect for 30s'",
        timeout=DEADLINE_S,
    )


async def test_loop_through_two_links_is_refused(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    """A real leaf with two remotes to us: each sees the other's $LDS come back."""
    tier = Tier(router_factory, leafs, tmp_path)
    # The same port by another name: nats-server refuses duplicate remote URLs.
    url = f"nats-leaf://localhost:{tier.leaf_port}"
    leaf = tier.leaf(binary, f'}}, {{ url: "{url}"', wait=False)
    found = wait_for_log(leaf, "Loop detected", timeout=DEADLINE_S)
    assert 'account="$G"' in found or "$G" in found


async def test_deny_pub_of_the_leaf_is_honoured(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    """A leaf's CONNECT ``deny_pub`` (its deny_imports): never sent those subjects."""
    tier = Tier(router_factory, leafs, tmp_path)
    raw, _ = _raw_leaf(tier.leaf_port, deny_pub=["secret.>"])
    raw.send(b"LS+ secret.x\r\nLS+ open.x\r\nPING\r\n")
    raw.read_until(b"PONG\r\n", timeout=DEADLINE_S)  # both LS+ were taken
    client = RawClient(tier.router.port)
    client.send(b"CONNECT {}\r\nPUB secret.x 1\r\na\r\nPUB open.x 1\r\nb\r\nPING\r\n")
    client.read_until(b"PONG\r\n", timeout=DEADLINE_S)
    seen = raw.read_until(b"LMSG open.x 1\r\nb\r\n", timeout=DEADLINE_S)
    assert b"secret.x 1" not in seen


async def test_reload_closes_a_leaf_whose_user_is_gone(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path, binary: str
) -> None:
    users = "authorization {{ users: [ {{ user: lu, password: {pw} }} ] }}"
    tier = Tier(router_factory, leafs, tmp_path, top=users.format(pw="lp"))
    leaf = tier.leaf(binary, creds="lu:lp@")
    conf = tier.router.workdir / "leaf.conf"
    conf.write_text(conf.read_text().replace("password: lp", "password: changed"))
    tier.router.proc.send_signal(signal.SIGHUP)
    wait_for_log(tier.router, "authentication error after reload", timeout=DEADLINE_S)
    wait_for_log(leaf, "Authorization Violation", timeout=DEADLINE_S)


async def test_a_leaf_without_headers_gets_the_payload_only(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    """As a hub does for a CONNECT without ``headers: true`` (§4.6)."""
    tier = Tier(router_factory, leafs, tmp_path)
    raw, _ = _raw_leaf(tier.leaf_port, headers=False)
    raw.send(b"LS+ h.x\r\nPING\r\n")
    raw.read_until(b"PONG\r\n", timeout=DEADLINE_S)
    client = RawClient(tier.router.port)
    client.send(b'CONNECT {"headers":true}\r\nHPUB h.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n')
    client.read_until(b"PONG\r\n", timeout=DEADLINE_S)
    raw.read_until(b"LMSG h.x 2\r\nhi\r\n", timeout=DEADLINE_S)


@needs_latest
async def test_operator_mode_account_without_leaf_limit_refuses(
    router_factory: RouterFactory, leafs: list[NatsServerProcess], tmp_path: Path
) -> None:
    """An account JWT whose limits.leaf is 0: -ERR as nats-server (leafnode-protocol.md §4.11)."""
    assert LATEST is not None
    operator = OperatorKeys()
    operator.account("NOLEAF", leaf=0)
    creds = tmp_path / "noleaf.creds"
    creds.write_text(operator.user_creds("NOLEAF", connection_types=("LEAFNODE",)))
    tier = Tier(router_factory, leafs, tmp_path, top=operator.hub_config())
    leaf = tier.leaf(LATEST, f'credentials: "{creds}"', wait=False)
    wait_for_log(leaf, "maximum account active connections exceeded", timeout=DEADLINE_S)
    assert f'leaf "{leaf.workdir.name}"' not in tier.router.log_text()
