"""leafnode.hubside against real nats-server leafs and hubs, 2.15 and 2.9.10 (issue 15 point 2).

A raw TCP listener in the test plays the hub: a real nats-server whose
remote points at it dials in, gets ``encode_first_info``, and its CONNECT is
parsed with ``leafnode.proto`` and checked by ``LeafAuthorizer``. Accepted,
the ``connect_info`` INFO goes back and the real leaf must go on to send its
``LS+ $LDS.`` line (it does only after a connect_info INFO it understood,
§4.2 step 6), which ``DownstreamInterest`` takes as new interest. Refused,
the real leaf must log the ``-ERR`` we sent. And a real hub's first INFO
must be byte-for-byte what ``encode_first_info`` makes of its own fields
(``compression`` aside: we only speak plain text).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import nkeys
import pytest

from leafnode.config import LeafAcceptSettings
from leafnode.hubconn import Close, Established, HubLeafConnection, PongSeen, Send
from leafnode.hubside import (
    Accepted,
    DownstreamInterest,
    HubInfo,
    InterestChange,
    LeafAuthorizer,
    Refused,
    encode_connect_info,
    encode_first_info,
    new_lds_subject,
    new_nonce,
)
from leafnode.proto import PING, Connect, Kind, LSub, Parser
from tests.support import HubProcess, NatsServerProcess, hub_binaries
from tests.support._uplink import wait_for_log

BINARIES = hub_binaries()
DEADLINE_S = 30.0

pytestmark = pytest.mark.e2e


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> str:
    return BINARIES[request.param]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.settimeout(DEADLINE_S)
    try:
        yield sock
    finally:
        sock.close()


class _Conn:
    """The accepted leaf connection, read event by event through leafnode.proto."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = Parser(Kind.LEAF)
        sock.settimeout(1.0)

    def next_event(self, deadline: float) -> object:
        while True:
            event = self.parser.next_event()
            if event is not None:
                return event
            if time.monotonic() > deadline:
                raise AssertionError("no protocol line from the leaf before the deadline")
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError("the leaf closed the connection")
            self.parser.feed(data)


def _hub_info(port: int) -> HubInfo:
    return HubInfo.for_listener(
        LeafAcceptSettings(host="127.0.0.1"),
        port=port,
        server_id="NTESTHUBSIDE",
        server_name="leafnode-hub",
        version="2.15.1",
        go="python3",
        max_payload=1048576,
    )


def _leaf(binary: str, port: int, workdir: Path, remote: str) -> NatsServerProcess:
    config = (
        f"server_name: real-leaf\nleafnodes {{ remotes: [ {{ {remote.format(port=port)} }} ] }}\n"
    )
    leaf = NatsServerProcess(config, binary=binary, workdir=workdir)
    leaf.wait_ready()
    return leaf


def _handshake(
    listener: socket.socket, auth: LeafAuthorizer
) -> tuple[_Conn, Accepted | Refused, dict[str, object], str]:
    sock, _ = listener.accept()
    conn = _Conn(sock)
    port = listener.getsockname()[1]
    nonce = new_nonce()
    sock.sendall(encode_first_info(_hub_info(port), client_id=7, nonce=nonce))
    deadline = time.monotonic() + DEADLINE_S
    event = conn.next_event(deadline)
    assert isinstance(event, Connect), event
    result = auth.check(event.options, nonce)
    assert isinstance(result, Accepted | Refused), result
    return conn, result, event.options, nonce


def _expect_lds(conn: _Conn, result: Accepted) -> None:
    port = conn.sock.getsockname()[1]
    info = encode_connect_info(_hub_info(port), client_id=7, account=result.account)
    conn.sock.sendall(info)
    interest = DownstreamInterest(result.account, new_lds_subject())
    deadline = time.monotonic() + DEADLINE_S
    while True:
        event = conn.next_event(deadline)
        if isinstance(event, LSub):
            change = interest.lsub(event.subject, event.queue, event.weight)
            assert isinstance(change, InterestChange), change
            if event.subject.startswith(b"$LDS."):
                return


def test_user_password_leaf_is_accepted(
    binary: str, listener: socket.socket, tmp_path: Path
) -> None:
    auth = LeafAuthorizer(LeafAcceptSettings(user="leafu", password="leafp"))
    port = listener.getsockname()[1]
    leaf = _leaf(binary, port, tmp_path, 'url: "nats-leaf://leafu:leafp@127.0.0.1:{port}"')
    try:
        conn, result, options, _ = _handshake(listener, auth)
        assert isinstance(result, Accepted), result
        assert result.account == "$G"
        assert result.name == "real-leaf"
        assert result.headers is True
        assert options["user"] == "leafu"
        assert "lang" not in options
        _expect_lds(conn, result)
        conn.sock.close()
    finally:
        leaf.kill()


def test_wrong_password_is_refused_and_the_leaf_reads_our_err(
    binary: str, listener: socket.socket, tmp_path: Path
) -> None:
    auth = LeafAuthorizer(LeafAcceptSettings(user="leafu", password="leafp"))
    port = listener.getsockname()[1]
    leaf = _leaf(binary, port, tmp_path, 'url: "nats-leaf://leafu:sntlwrong@127.0.0.1:{port}"')
    try:
        conn, result, _, _ = _handshake(listener, auth)
        assert isinstance(result, Refused), result
        assert "sntlwrong" not in result.reason
        conn.sock.sendall(result.err)
        conn.sock.close()
        wait_for_log(leaf, r"Authorization Violation", timeout=DEADLINE_S)
    finally:
        leaf.kill()


def test_nkey_leaf_signs_our_nonce(binary: str, listener: socket.socket, tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    public = nkeys.from_seed(seed.encode()).public_key.decode()
    creds = tmp_path / "leaf.nk"
    creds.write_text(seed)
    auth = LeafAuthorizer(LeafAcceptSettings(nkey=public))
    port = listener.getsockname()[1]
    remote = f'url: "nats-leaf://127.0.0.1:{{port}}", nkey: "{seed}"'
    try:
        leaf = _leaf(binary, port, tmp_path / "leaf", remote)
    except RuntimeError as exc:
        if 'unknown field "nkey"' not in str(exc):
            raise
        pytest.skip("this nats-server (2.9) has no remote nkey option")
    try:
        conn, result, options, _ = _handshake(listener, auth)
        assert options.get("nkey") == public
        assert isinstance(result, Accepted), result
        _expect_lds(conn, result)
        conn.sock.close()
    finally:
        leaf.kill()


def test_real_hub_first_info_is_what_we_encode(binary: str, tmp_path: Path) -> None:
    hub = HubProcess(leaf_config="  authorization { user: a, password: b }", binary=binary)
    hub.wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", hub.leaf_port), timeout=DEADLINE_S) as sock:
            line = b""
            while not line.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                assert chunk, "the hub closed before its INFO"
                line += chunk
    finally:
        hub.kill()
    fields = json.loads(line[len(b"INFO ") : -3])
    ours = HubInfo(
        server_id=fields["server_id"],
        server_name=fields["server_name"],
        version=fields["version"],
        go=fields["go"],
        host=fields["host"],
        port=fields["port"],
        max_payload=fields["max_payload"],
        proto=fields["proto"],
        git_commit=fields.get("git_commit", ""),
        api_lvl=fields.get("api_lvl", 0),
        leafnode_urls=tuple(fields["leafnode_urls"]),
    )
    theirs = line.replace(b'"compression":"%b",' % fields.get("compression", "").encode(), b"")
    assert encode_first_info(ours, client_id=fields["client_id"], nonce=fields["nonce"]) == theirs


def test_real_leaf_through_the_protocol_object(
    binary: str, listener: socket.socket, tmp_path: Path
) -> None:
    """HubLeafConnection end to end: bytes in, outcomes out, until the leaf's $LDS and a PONG."""
    port = listener.getsockname()[1]
    conn = HubLeafConnection(
        LeafAuthorizer(LeafAcceptSettings(user="leafu", password="leafp")),
        _hub_info(port),
        client_id=9,
        lds_for=lambda _account: new_lds_subject(),
        max_payload=1048576,
    )
    leaf = _leaf(binary, port, tmp_path, 'url: "nats-leaf://leafu:leafp@127.0.0.1:{port}"')
    try:
        sock, _ = listener.accept()
        sock.settimeout(1.0)
        sock.sendall(conn.first_info)
        deadline = time.monotonic() + DEADLINE_S
        seen: list[object] = []
        sent_ping = False
        while not (
            any(isinstance(o, InterestChange) and o.subject.startswith(b"$LDS.") for o in seen)
            and any(isinstance(o, PongSeen) for o in seen)
        ):
            assert time.monotonic() < deadline, seen
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            assert data, f"the leaf closed: {seen}"
            for outcome in conn.receive(data):
                assert not isinstance(outcome, Close), outcome
                if isinstance(outcome, Send):
                    sock.sendall(outcome.data)
                seen.append(outcome)
            if conn.accepted is not None and not sent_ping:
                sock.sendall(PING)
                sent_ping = True
        established = [o for o in seen if isinstance(o, Established)]
        assert established[0].accepted.name == "real-leaf"
        sock.close()
    finally:
        leaf.kill()
