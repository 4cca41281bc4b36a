"""``uplink.ctl``: the request types and field names the api relies on (control.py)."""

from __future__ import annotations

import signal
import socket
import struct
from typing import TYPE_CHECKING

import pytest

from tests.buffer.conftest import poll
from tests.ipcclient import request_once
from tests.support import wait_for_log

if TYPE_CHECKING:
    from tests.buffer.conftest import BufferSite, Sites

pytestmark = [pytest.mark.e2e]

REMOTE_FIELDS = {
    "name",
    "account",
    "urls",
    "url",
    "connected",
    "ready",
    "since",
    "since_us",
    "reconnects",
    "last_error",
    "server_id",
    "server_name",
    "hub_account",
    "rtt",
    "rtt_s",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "subscriptions",
    "dropped",
    "live_buffered",
    "buffer",
    "held",
}
BUFFER_FIELDS = {
    "subjects",
    "backlog",
    "node",
    "state",
    "draining",
    "paused",
    "store_connected",
    "store_error",
    "waiting_for_interest",
    "sent",
    "sent_bytes",
    "acked",
    "rate_msgs_s",
    "rate_bytes_s",
    "remaining",
    "remaining_bytes",
    "eta_s",
    "replay",
    "dropped",
}
LEAF_FIELDS = {
    "id",
    "name",
    "is_spoke",
    "account",
    "ip",
    "port",
    "rtt",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "subscriptions",
    "subscriptions_list",
    "compression",
}


def error_of(site: BufferSite, kind: str, **fields: object) -> tuple[str, str]:
    frame = request_once(site.run_dir / "uplink.ctl", kind, (), **fields)
    assert frame.type == "error", frame
    return str(frame.fields["code"]), str(frame.fields["error"])


def names(site: BufferSite) -> list[str]:
    remotes = site.ctl("status")["remotes"]
    assert isinstance(remotes, list)
    return [str(r["name"]) for r in remotes]


def test_ping_status_and_leafz_fields(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    site.wait_ready_link()
    pong = site.ctl("ping")
    assert pong["remotes"] == 1
    assert isinstance(pong["server_id"], str)
    status = site.status()
    assert set(status) == REMOTE_FIELDS
    assert status["name"] == "central"
    assert status["account"] == "$G"
    assert status["urls"] == [hub.leaf_url]
    assert status["url"] == hub.leaf_url
    assert status["connected"] is True
    assert status["ready"] is True
    assert isinstance(status["since"], str)
    assert status["since"].endswith("Z")
    assert status["reconnects"] == 0
    assert status["last_error"] is None
    buffer = status["buffer"]
    assert isinstance(buffer, dict)
    assert set(buffer) == BUFFER_FIELDS
    assert buffer["subjects"] == ["tele.>"]
    assert buffer["paused"] is False
    hub_id = hub.proc.monitor("varz")["server_id"]
    assert status["server_id"] == hub_id
    data = site.ctl("leafz", query={"subs": "1"})["data"]
    assert isinstance(data, dict)
    assert set(data) == {"server_id", "now", "leafnodes", "leafs"}
    assert data["leafnodes"] == 1
    (leaf,) = data["leafs"]
    assert set(leaf) == LEAF_FIELDS
    assert leaf["is_spoke"] is True
    assert leaf["account"] == "$G"
    assert (leaf["ip"], leaf["port"]) == ("127.0.0.1", hub.proc.leaf_port)
    assert any(s.startswith("$LDS.") for s in leaf["subscriptions_list"])
    plain = site.ctl("leafz", query={})["data"]
    assert isinstance(plain, dict)
    assert "subscriptions_list" not in plain["leafs"][0]


def test_link_down_is_reported(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    site.wait_ready_link()
    hub.stop()
    status = poll(site.status, lambda s: s["connected"] is False, timeout=15, what="link down")
    assert status["since"] is None
    assert status["url"] is None
    assert status["server_id"] is None
    assert isinstance(status["last_error"], str)
    assert status["last_error"]
    buffer = status["buffer"]
    assert isinstance(buffer, dict)
    assert buffer["state"] == "no_link"
    hub.start()
    status = poll(site.status, lambda s: s["ready"] is True, timeout=15, what="link back")
    assert status["reconnects"] == 1


def test_bad_requests_are_refused(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    assert error_of(site, "frobnicate")[0] == "unknown_type"
    assert error_of(site, "replay", action="rewind")[0] == "bad_request"
    assert error_of(site, "replay", remote="nowhere")[0] == "bad_request"
    assert error_of(site, "redrive")[0] == "bad_request"
    assert error_of(site, "status", remote=5)[0] == "bad_request"
    assert error_of(site, "leafz", query={"subs": "maybe"}) == (
        "bad_request",
        "subs: expected 1, true, 0 or false, got 'maybe'",
    )


def test_a_bad_frame_closes_that_connection_only(sites: Sites) -> None:
    site = sites.site(sites.hub())
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(site.run_dir / "uplink.ctl"))
        # A body whose JSON part ("nope") does not parse.
        sock.sendall(struct.pack("!II", 8, 4) + b"nope")
        assert sock.recv(1) == b"", "uplink.ctl kept a connection that broke the framing"
    wait_for_log(site.uplink, r"\[ERR\] uplink\.ctl: bad frame from a client")
    assert error_of(site, "frobnicate")[0] == "unknown_type"


def test_reload_adds_changes_and_removes_remotes(sites: Sites) -> None:
    hub = sites.hub()
    site = sites.site(hub)
    site.wait_ready_link()
    # Another hub: two links of one account to the same hub would be a loop.
    other = sites.hub()
    second = f'{{ name: second, url: "{other.leaf_url}", buffer {{ subjects: ["other.>"] }} }}'
    site.write_config('subjects: ["tele.>", "more.>"]', extra_remote=second)
    answer = site.ctl("reload")
    assert answer["reloaded"] is True
    changes = answer["changes"]
    assert isinstance(changes, list)
    assert set(changes) == {
        'added remote "second"',
        'applied the new buffer settings of remote "central"',
    }
    assert names(site) == ["central", "second"]
    status = poll(
        lambda: site.ctl("status", remote="second")["remotes"][0],  # type: ignore[index]
        lambda s: s["connected"] is True and s["buffer"]["store_connected"] is True,
        timeout=15,
        what="second remote up, draining its own buffer",
    )
    assert status["buffer"]["subjects"] == ["other.>"]
    status = site.status()
    # The buffer block alone changed: the link stayed up.
    assert status["reconnects"] == 0
    assert status["connected"] is True
    assert site.buffer()["subjects"] == ["tele.>", "more.>"]
    # SIGHUP does the same: back to one remote with the first buffer.
    site.write_config('subjects: ["tele.>"]')
    site.uplink.proc.send_signal(signal.SIGHUP)
    poll(lambda: names(site), lambda n: n == ["central"], timeout=15, what="second removed")
    assert site.buffer()["subjects"] == ["tele.>"]
    site.conf.write_text("leafnodes { remotes: [ { url: 5 } ] }\n")
    refused = site.ctl("reload")
    assert refused["reloaded"] is False
    assert isinstance(refused["error"], str)
    assert names(site) == ["central"]
