"""A downstream leaf's PING after buffered LMSGs: PONG once they are committed (issue 15 point 4).

``leafnode router`` with a buffered subject and a leaf port, and no store
process at first: what a raw leaf sends on the buffered subject waits in the
router's memory (DESIGN §4), so its PONG must wait too; once the store runs
and commits, the PONG comes. A PING with nothing buffered before it is
answered at once. The same barrier a local client's flush gets.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import RouterFactory
from tests.rawclient import RawClient
from tests.support import ServiceProcess, free_port, wait_for_port, wait_for_socket

DEADLINE_S = 30.0
# How long a PONG that must not come yet is looked for (an absence, not a sync).
QUIET_S = 1.0


def _lines(raw: RawClient, timeout: float) -> list[bytes]:
    """Lines read within ``timeout``, our keepalive PINGs left out."""
    lines: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = raw.read_line(timeout=max(deadline - time.monotonic(), 0.01))
        except AssertionError:
            break
        if line != b"PING":
            lines.append(line)
    return lines


def _wait_line(raw: RawClient, wanted: bytes) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if raw.read_line(timeout=DEADLINE_S) == wanted:
            return
    raise AssertionError(f"{wanted!r} not seen")


def test_pong_waits_for_the_commit(router_factory: RouterFactory, tmp_path: Path) -> None:
    leaf_port = free_port()
    config = (
        f'store {{ url: "sqlite:///{tmp_path}/buffer.db" }}\n'
        "leafnodes {\n"
        f"  listen: 127.0.0.1:{leaf_port}\n"
        f'  remotes: [ {{ url: "nats-leaf://127.0.0.1:{free_port()}", '
        'buffer { subjects: ["tel.>"] } } ]\n}\n'
    )
    router = router_factory(config)
    # Ready means the client port accepts; the leaf port opens just after it.
    wait_for_port(leaf_port, timeout=DEADLINE_S)
    raw = RawClient(leaf_port)
    try:
        raw.send(b'CONNECT {"version":"2.15.1","name":"raw","server_id":"NRAW","headers":true}\r\n')
        # The buffered subject is our interest: the store wants it.
        _wait_line(raw, b"LS+ tel.>")
        raw.send(b"PING\r\n")
        _wait_line(raw, b"PONG")  # nothing buffered before it: at once
        raw.send(b"LMSG tel.a 2\r\nm1\r\nPING\r\n")
        assert b"PONG" not in _lines(raw, QUIET_S)  # the store is not there
        conf = tmp_path / "store.conf"
        conf.write_text(config)
        store = ServiceProcess("store", conf, router.run_dir, workdir=tmp_path / "store")
        try:
            wait_for_socket(router.run_dir / "store.sock", store)
            _wait_line(raw, b"PONG")
        finally:
            store.kill()
    finally:
        raw.sock.close()
