"""One accepted leaf connection, sans-IO (leafnode.hubconn): leafnode-protocol.md §4.2-§4.9."""

from __future__ import annotations

import json

import pytest

from leafnode.config import LeafAcceptSettings
from leafnode.hubconn import (
    Authenticate,
    Close,
    Established,
    HubLeafConnection,
    Outcome,
    PeerErr,
    PongSeen,
    Send,
)
from leafnode.hubside import HubInfo, InterestChange, LeafAuthorizer, loop_error
from leafnode.proto import PONG, LMsg, encode_connect, encode_lmsg, encode_lsub

LDS = b"$LDS.ourownloopdetectionid"
INFO = HubInfo(
    server_id="N",
    server_name="hub",
    version="2.15.1",
    go="python3",
    host="127.0.0.1",
    port=7422,
    max_payload=1024,
    leafnode_urls=("127.0.0.1:7422",),
)
VIOLATION = b"-ERR 'Authorization Violation'\r\n"
CONNECT = encode_connect({"name": "down", "user": "u", "pass": "p", "headers": True})


def _conn(accept: LeafAcceptSettings | None = None) -> HubLeafConnection:
    accept = accept or LeafAcceptSettings(user="u", password="p", account="SITE")
    return HubLeafConnection(
        LeafAuthorizer(accept), INFO, client_id=4, lds_for=lambda _acc: LDS, max_payload=1024
    )


def _close(out: list[Outcome]) -> Close:
    assert out, "no outcome"
    last = out[-1]
    assert isinstance(last, Close), out
    return last


class TestHandshake:
    def test_first_info_carries_the_nonce_and_client_id(self) -> None:
        conn = _conn()
        fields = json.loads(conn.first_info[5:-3])
        assert fields["nonce"] == conn.nonce
        assert fields["client_id"] == 4

    def test_connect_binds_then_everything_in_the_same_read(self) -> None:
        conn = _conn()
        data = (
            CONNECT
            + encode_lsub(b"a.>")
            + encode_lsub(b"q", b"g", 2)
            + encode_lmsg(b"x", None, (), b"hi")
            + b"PING\r\nPONG\r\n-ERR 'oops'\r\n"
        )
        out = conn.receive(data)
        assert isinstance(out[0], Established)
        assert out[0].accepted.account == "SITE"
        assert isinstance(out[1], Send)
        connect_info = json.loads(out[1].data[5:-3])
        assert connect_info["connect_info"] is True
        assert connect_info["remote_account"] == "SITE"
        assert out[2:] == [
            InterestChange(b"a.>", None, 1, 1),
            InterestChange(b"q", b"g", 2, 2),
            LMsg(b"x", None, (), b"hi"),
            Send(PONG),
            PongSeen(),
            PeerErr("oops"),
        ]

    @pytest.mark.parametrize(
        "first", [b"PING\r\n", encode_lsub(b"a"), b'INFO {"compression":"off"}\r\n']
    )
    def test_anything_before_connect_is_a_violation(self, first: bytes) -> None:
        out = _conn().receive(first + CONNECT)
        assert len(out) == 1
        assert _close(out).err == VIOLATION

    def test_wrong_password_is_refused_and_nothing_after_it_counts(self) -> None:
        conn = _conn()
        bad = encode_connect({"name": "down", "user": "u", "pass": "nope"})
        out = conn.receive(bad + encode_lsub(b"a"))
        assert out == [Close(VIOLATION, "user/password mismatch")]
        assert conn.receive(encode_lsub(b"b")) == []

    def test_a_second_connect_is_a_violation(self) -> None:
        out = _conn().receive(CONNECT + CONNECT)
        assert _close(out).err == VIOLATION


class TestClientAuthentication:
    def test_authenticate_then_bind_releases_the_held_lines(self) -> None:
        conn = _conn(LeafAcceptSettings())
        out = conn.receive(CONNECT + encode_lsub(b"held"))
        assert len(out) == 1
        ask = out[0]
        assert isinstance(ask, Authenticate)
        assert (ask.nonce, ask.default_account) == (conn.nonce, "$G")
        assert ask.options["user"] == "u"
        # Nothing is processed while the router authenticates.
        assert conn.receive(encode_lsub(b"later")) == []
        bound = conn.bind("APP", "u", imports={"allow": ["a.>"]})
        assert isinstance(bound[0], Established)
        assert bound[0].accepted.account == "APP"
        assert isinstance(bound[1], Send)
        assert json.loads(bound[1].data[5:-3])["import"] == {"allow": ["a.>"]}
        assert bound[2:] == [
            InterestChange(b"held", None, 1, 1),
            InterestChange(b"later", None, 1, 1),
        ]

    def test_refuse(self) -> None:
        conn = _conn(LeafAcceptSettings())
        conn.receive(CONNECT)
        assert conn.refuse("bad token") == [Close(VIOLATION, "bad token")]


class TestBound:
    def test_own_lds_closes_with_the_loop_error(self) -> None:
        out = _conn().receive(CONNECT + encode_lsub(LDS) + encode_lsub(b"after"))
        assert _close(out).err == loop_error("SITE")

    def test_publish_outside_permissions_closes(self) -> None:
        conn = _conn(LeafAcceptSettings())
        conn.receive(CONNECT)
        out = conn.bind("$G", "u", may_send=lambda s: s.startswith(b"ok."))
        assert out[2:] == []
        ok = conn.receive(encode_lmsg(b"ok.1", None, (), b"x"))
        assert ok == [LMsg(b"ok.1", None, (), b"x")]
        out = conn.receive(encode_lmsg(b"no.1", None, (), b"x"))
        assert _close(out).err == b"-ERR 'Permissions Violation for Publish to \"no.1\"'\r\n"

    def test_queue_without_weight_closes_without_err(self) -> None:
        out = _conn().receive(CONNECT + b"LS+ subj queue\r\n")
        assert _close(out).err is None

    def test_unknown_verb(self) -> None:
        out = _conn().receive(CONNECT + b"BOGUS x\r\n")
        assert _close(out).err == b"-ERR 'Unknown Protocol Operation'\r\n"
