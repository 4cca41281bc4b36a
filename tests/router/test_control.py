"""router.ctl: readiness ping and nats-server shaped monitoring data."""

from __future__ import annotations

import socket
import struct
import time

import nats
import pytest

from leafnode.ipc import Frame, FrameDecoder, encode_frame
from tests.conftest import respond_ok, until_responding
from tests.support import RouterProcess, wait_for_log


class ControlClient:
    def __init__(self, router: RouterProcess) -> None:
        path = router.run_dir / "router.ctl"
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "router.ctl never appeared"
            time.sleep(0.02)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.decoder = FrameDecoder()
        self.next_id = 0

    def request(self, type: str, **fields: object) -> Frame:
        self.next_id += 1
        self.sock.sendall(encode_frame(type, self.next_id, fields))
        while (frame := self.decoder.next_frame()) is None:
            data = self.sock.recv(65536)
            assert data, "router.ctl closed"
            self.decoder.feed(data)
        assert frame.id == self.next_id
        return frame

    def view(self, type: str, **query: str) -> dict[str, object]:
        frame = self.request(type, query=query)
        assert frame.type == "ok", frame
        data = frame.fields["data"]
        assert isinstance(data, dict)
        return data


def test_ping_answers_with_identity(router: RouterProcess) -> None:
    ctl = ControlClient(router)
    pong = ctl.request("ping")
    assert pong.type == "pong"
    assert pong.fields["port"] == router.port
    assert str(pong.fields["server_id"]).startswith("N")


@pytest.mark.asyncio
async def test_varz_connz_subsz_reflect_traffic(router: RouterProcess) -> None:
    nc = await nats.connect(router.url, name="watcher")
    await nc.subscribe("mon.>", cb=respond_ok)
    await until_responding(nc, "mon.a")
    ctl = ControlClient(router)
    varz = ctl.view("varz")
    assert varz["port"] == router.port
    assert varz["connections"] == 1
    assert varz["in_msgs"] >= 2  # type: ignore[operator]
    assert varz["max_payload"] == 1024 * 1024
    assert varz["ping_interval"] == 120 * 10**9
    connz = ctl.view("connz", subs="1")
    connections = connz["connections"]
    assert isinstance(connections, list)
    (conn,) = connections
    assert conn["name"] == "watcher"
    assert conn["lang"] == "python3"
    assert "mon.>" in conn["subscriptions_list"]
    detail = ctl.view("connz", subs="detail", cid=str(conn["cid"]))
    subjects = {s["subject"] for s in detail["connections"][0]["subscriptions_list_detail"]}  # type: ignore[index]
    assert "mon.>" in subjects
    subsz = ctl.view("subsz", subs="1", test="mon.x")
    assert subsz["num_subscriptions"] >= 2  # type: ignore[operator]
    assert [s["subject"] for s in subsz["subscriptions_list"]] == ["mon.>"]  # type: ignore[attr-defined]
    accountz = ctl.view("accountz")
    assert accountz["accounts"] == ["$G"]
    await nc.close()


def test_bad_queries_are_refused_with_a_reason(router: RouterProcess) -> None:
    ctl = ControlClient(router)
    for query in ({"sort": "nonsense"}, {"limit": "-3"}, {"offset": "x"}, {"subs": "maybe"}):
        frame = ctl.request("connz", query=query)
        assert frame.type == "error"
        assert frame.fields["code"] == "bad_request"
        assert str(frame.fields["error"]).split(":")[0] in query
    frame = ctl.request("nope")
    assert frame.type == "error"


# A body whose JSON part ("nope") does not parse: the codec raises FrameError.
BAD_FRAME = struct.pack("!II", 8, 4) + b"nope"


def test_a_bad_frame_closes_that_connection_only(router: RouterProcess) -> None:
    ctl = ControlClient(router)
    assert ctl.request("ping").type == "pong"
    ctl.sock.sendall(BAD_FRAME)
    assert ctl.sock.recv(1) == b"", "router.ctl kept a connection that broke the framing"
    wait_for_log(router, r"\[ERR\] router\.ctl: bad frame from a client")
    assert ControlClient(router).request("ping").type == "pong"
