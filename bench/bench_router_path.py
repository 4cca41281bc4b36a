"""In-process micro-benchmark of the router's hot path: parse, route, format.

No network and no load generator: a real ``Server`` with two real
``ClientConnection`` objects. The publisher's real read loop (its ``Link``'s) reads 64 KiB
chunks of PUBs from an in-memory stream; the subscriber's direct-send socket
is a sink that takes every byte. It isolates the Python cost per message, so
changes to the hot path can be compared run to run (the end-to-end figures,
against nats-server, come from ``router_bench``).

Run: ``.venv/bin/python -m bench.bench_router_path``
"""

from __future__ import annotations

import time

import trio

from leafnode.config import BufferSettings, LeafnodeSettings, RemoteSettings, Settings
from leafnode.proto import Connect, Sub, encode_acc, encode_lmsg
from services.router.buffering import _columns, _encode_batch
from services.router.client_conn import ClientConnection
from services.router.datalink import DataLink
from services.router.server import Server

CHUNK = 64 * 1024


class _ChunkStream(trio.abc.Stream):
    """Returns the given chunks, then EOF; swallows writes."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        return None

    async def wait_send_all_might_not_block(self) -> None:
        return None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return next(self._chunks, b"")

    async def aclose(self) -> None:
        return None


class _Sink:
    """Stands in for a socket that accepts everything at once."""

    def __init__(self) -> None:
        self.bytes = 0

    def send(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def _chunks(n: int, size: int) -> tuple[list[bytes], int]:
    """``n`` PUBs cut into reads of ``CHUNK`` bytes, as a socket returns them:
    a read may end in the middle of a PUB (the parser's payload state)."""
    one = b"PUB bench.x %d\r\n%b\r\n" % (size, b"x" * size)
    data = one * n
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)], n


async def _run(n: int, size: int) -> float:
    server = Server(Settings())
    chunks, total = _chunks(n, size)
    pub = ClientConnection(server, _ChunkStream(chunks), 1, "127.0.0.1", 1)
    sub = ClientConnection(server, _ChunkStream([]), 2, "127.0.0.1", 2)
    sink = _Sink()
    sub.outbound.raw = sink  # type: ignore[assignment]
    for conn in (pub, sub):
        await conn._on_connect(Connect({"verbose": False, "pedantic": False}))
    sub._dispatch(Sub(b"bench.x", None, b"1"))
    start = time.perf_counter()
    await pub.link._read_loop(pub)
    elapsed = time.perf_counter() - start
    assert sub.out_msgs == total, (sub.out_msgs, total)
    return total / elapsed


async def _run_to_hub(n: int, size: int) -> float:
    """Local publisher, no local subscriber, the hub wants the subject (leaf form)."""
    server = Server(Settings())
    chunks, total = _chunks(n, size)
    link = DataLink(server, _ChunkStream([]))
    sink = _Sink()
    link.outbound.raw = sink  # type: ignore[assignment]
    link._attach()
    server.datalink = link
    server.default_account.hub.add(b"bench.x", None, None)
    pub = ClientConnection(server, _ChunkStream(chunks), 1, "127.0.0.1", 1)
    await pub._on_connect(Connect({"verbose": False, "pedantic": False}))
    start = time.perf_counter()
    await pub.link._read_loop(pub)
    elapsed = time.perf_counter() - start
    assert sink.bytes > total * size, (sink.bytes, total)
    return total / elapsed


async def _run_from_hub(n: int, size: int) -> float:
    """The uplink hands over hub messages (leaf form); one local subscriber."""
    server = Server(Settings())
    one = encode_lmsg(b"bench.x", None, (), b"x" * size)
    per_chunk = CHUNK // len(one)
    count = n // per_chunk
    chunks, total = [encode_acc(b"$G"), *[one * per_chunk] * count], per_chunk * count
    sub = ClientConnection(server, _ChunkStream([]), 2, "127.0.0.1", 2)
    sink = _Sink()
    sub.outbound.raw = sink  # type: ignore[assignment]
    await sub._on_connect(Connect({"verbose": False, "pedantic": False}))
    sub._dispatch(Sub(b"bench.x", None, b"1"))
    # Not a socket stream: the link reads through receive_some, and what it
    # writes (the hello, interest) stays queued.
    link = DataLink(server, _ChunkStream(chunks))
    link._attach()
    start = time.perf_counter()
    await link.link._read_loop(link)
    elapsed = time.perf_counter() - start
    assert sub.out_msgs == total, (sub.out_msgs, total)
    return total / elapsed


async def _run_buffered(n: int, size: int) -> float:
    """Local publisher on a buffered subject, no subscriber, no hub: the store link.

    What the router does per buffered PUB up to the bytes of the ``append``
    frame: parse, route, ``StoreLink.append``, and the batch's encoding,
    once per 64 KiB read (the send loop's batch when the store keeps up).
    No store: the frame is built and dropped, and the batch counted as committed.
    """
    remote = RemoteSettings(
        name="hub", urls=("nats://127.0.0.1:1",), buffer=BufferSettings(subjects=("bench.>",))
    )
    server = Server(Settings(leafnodes=LeafnodeSettings(remotes=(remote,))))
    link = server.store_link
    assert link is not None
    store = link
    chunks, total = _chunks(n, size)
    frames = 0

    class _Batching(_ChunkStream):
        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            nonlocal frames
            if store.pending:
                batch, store.pending = store.pending, []
                cols = _columns(batch)
                frames += len(_encode_batch(1, cols))
                store._committed(store.batch_no, batch, cols, ())
                store.batch_no += 1
            return await super().receive_some(max_bytes)

    pub = ClientConnection(server, _Batching(chunks), 1, "127.0.0.1", 1)
    await pub._on_connect(Connect({"verbose": False, "pedantic": False}))
    start = time.perf_counter()
    await pub.link._read_loop(pub)
    elapsed = time.perf_counter() - start
    assert frames > total * size, (frames, total)
    return total / elapsed


def main() -> None:
    scenarios = (
        ("local 1:1", _run),
        ("to hub", _run_to_hub),
        ("from hub", _run_from_hub),
        ("buffered", _run_buffered),
    )
    for name, scenario in scenarios:
        for size in (16, 1024):
            rates = [trio.run(scenario, 300_000, size) for _ in range(3)]
            print(f"{name:10s} {size:5d} B: {max(rates) / 1e3:8.1f} k msgs/s (best of 3)")


if __name__ == "__main__":
    main()
