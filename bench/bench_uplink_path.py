"""In-process micro-benchmark of the uplink's relay: router -> hub and hub -> router.

No network and no load generator: a real ``Uplink`` built from a config with
one remote, a real ``Session`` on a stand-in stream, and the real
``RouterLink``. Each direction feeds 64 KiB chunks of messages, as the
router or the hub would send them, to the protocol object's
``data_received`` inside a flusher batch (what the shell's read loop does),
and the receiving link's direct-send socket is a sink that takes every byte.
It isolates the uplink's Python cost per message; ``uplink_bench`` measures
the whole path against a nats-server leaf, and ``bench_router_path`` the
router's end of the data link.

Times are CPU time of this process (``time.process_time``), so the figures
hold on a busy machine. Run: ``.venv/bin/python -m bench.bench_uplink_path``
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from leafnode.config import loads
from leafnode.link import Link
from leafnode.proto import Kind, MessageFramer, encode_acc, encode_lmsg, encode_run
from services.uplink.dialer import HubUrl
from services.uplink.framing import LINK_MAX_CONTROL_LINE, LINK_MAX_PAYLOAD
from services.uplink.handshake import HubLink
from services.uplink.routerlink import POLICY, RouterLink
from services.uplink.service import Uplink
from services.uplink.session import Session

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 64 * 1024
CONFIG = """
leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:7422" } ] }
"""


class _NullStream(trio.abc.Stream):
    """A stream nothing is read from; writes vanish."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        return None

    async def wait_send_all_might_not_block(self) -> None:
        return None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return b""

    async def aclose(self) -> None:
        return None


class _Sink:
    """Stands in for a socket that accepts everything at once."""

    def __init__(self) -> None:
        self.bytes = 0

    def send(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)

    def close(self) -> None:
        return None


def _chunks(n: int, size: int, *, acc: bool, runs: bool = False) -> tuple[list[bytes], int]:
    """Chunks of LMSGs (under ``ACC $G`` for the data link; ``runs``: each behind a RUN)."""
    one = encode_lmsg(b"bench.x", None, (), b"x" * size)
    per_chunk = CHUNK // len(one)
    count = n // per_chunk
    chunk = one * per_chunk
    if runs:
        chunk = encode_run(len(chunk), per_chunk, per_chunk * size, len(one)) + chunk
    chunks = [chunk] * count
    if acc:
        chunks[0] = encode_acc(b"$G") + chunks[0]
    return chunks, per_chunk * count


def _setup() -> tuple[Uplink, Session, _Sink, _Sink]:
    uplink = Uplink(loads(CONFIG))
    remote = uplink.remotes[0]
    framer = MessageFramer(
        Kind.LEAF, max_payload=LINK_MAX_PAYLOAD, max_control_line=LINK_MAX_CONTROL_LINE
    )
    hub_link = HubLink(
        HubUrl.parse("nats-leaf://127.0.0.1:7422"),
        _NullStream(),
        framer,
        {"max_payload": 1024 * 1024, "server_name": "hub"},
        {},
    )
    session = Session(remote, hub_link)
    remote.session = session
    to_hub = _Sink()
    session.outbound.raw = to_hub  # type: ignore[assignment]
    router: RouterLink = uplink.router
    router.link = Link(_NullStream(), uplink.flusher, POLICY)
    to_router = _Sink()
    router.link.outbound.raw = to_router  # type: ignore[assignment]
    router.framer = MessageFramer(
        Kind.INTERNAL,
        max_payload=LINK_MAX_PAYLOAD,
        max_control_line=LINK_MAX_CONTROL_LINE,
        accounts=True,
    )
    return uplink, session, to_hub, to_router


def _feed(uplink: Uplink, data_received: Callable[[bytes], object], chunks: list[bytes]) -> float:
    flusher = uplink.flusher
    start = time.process_time()
    for chunk in chunks:
        flusher.batching = True
        data_received(chunk)
        flusher.batching = False
        flusher.flush()
    return time.process_time() - start


def to_hub(n: int, size: int) -> float:
    """Local messages under ACC in RUNs, as the router writes them, relayed to the hub."""
    uplink, _session, sink, _ = _setup()
    chunks, total = _chunks(n, size, acc=True, runs=True)
    elapsed = _feed(uplink, uplink.router.data_received, chunks)
    assert sink.bytes >= total * size, (sink.bytes, total)
    return total / elapsed


def to_hub_by_message(n: int, size: int) -> float:
    """The same without RUN lines: the uplink cuts every message (older routers)."""
    uplink, _session, sink, _ = _setup()
    chunks, total = _chunks(n, size, acc=True)
    elapsed = _feed(uplink, uplink.router.data_received, chunks)
    assert sink.bytes >= total * size, (sink.bytes, total)
    return total / elapsed


def from_hub(n: int, size: int) -> float:
    """Hub messages relayed to the router under the account's ACC line."""
    uplink, session, _, sink = _setup()
    chunks, total = _chunks(n, size, acc=False)
    elapsed = _feed(uplink, session.data_received, chunks)
    assert sink.bytes >= total * size, (sink.bytes, total)
    return total / elapsed


def main() -> None:
    scenarios = (("to hub", to_hub), ("to hub/msg", to_hub_by_message), ("from hub", from_hub))
    for name, scenario in scenarios:
        for size in (16, 1024):
            rates = [scenario(300_000, size) for _ in range(5)]
            print(f"{name:10s} {size:5d} B: {max(rates) / 1e3:8.1f} k msgs/s CPU (best of 5)")


if __name__ == "__main__":
    main()
