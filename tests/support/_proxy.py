"""A TCP proxy whose link can be broken on demand: the network faults of tests/faults.

Theory of operation
-------------------
``FaultProxy`` listens on a free port of 127.0.0.1 and relays every accepted
connection to ``target`` byte for byte, each direction in its own pump task.
The asyncio loop runs in a daemon thread, so blocking tests and the chaos
bench drive it with plain method calls; each call returns once the fault is
in place.

An *outage* begins with ``fault(kind)`` and ends with ``heal()``:

* ``close``: every relayed connection is closed with a FIN on both sides;
  connections made during the outage are accepted and closed at once.
* ``reset``: the same with an RST (``SO_LINGER`` 0, then close), so the peer's
  next read or write fails with ``ECONNRESET``.
* ``blackhole``: nothing is forwarded any more and nothing is closed: no FIN,
  no RST, as when a router on the path drops every packet. The pumps stop
  reading, so the kernel buffers fill and the peer's writes block, as they
  would. New connections are accepted and held. On ``heal`` the held bytes
  flow again in order (a partition shorter than TCP's retransmission
  timeout), and a peer that gave up meanwhile sees its own close arrive.
* ``refuse``: relayed connections are closed (FIN) and the listening socket
  too, so a connect gets ``ECONNREFUSED`` until ``heal`` listens again on the
  same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import TYPE_CHECKING, Final, Literal

from ._procs import free_port

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["FAULT_KINDS", "FaultKind", "FaultProxy"]

FaultKind = Literal["close", "reset", "blackhole", "refuse"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("close", "reset", "blackhole", "refuse")
# One read per wake-up; the leafnode data path moves at most 64 KiB at a time too.
CHUNK: Final = 65536
# A call into the proxy's loop that takes longer than this means the loop is stuck.
CALL_TIMEOUT_S: Final = 10.0


class _Link:
    """One relayed connection: the accepted socket and the one dialled to the target."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.target) if w is not None]


def _abort(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Close ``writer``'s socket now: FIN, or RST when ``reset``."""
    transport = writer.transport
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


class FaultProxy:
    """``127.0.0.1:port`` -> ``target_host:target_port``, with faults (see the module doc).

    Args:
        target_port: where connections are relayed to.
        target_host: its host.
        port: where to listen (a free port by default).

    Use as a context manager, or call ``close()``.
    """

    def __init__(
        self, target_port: int, *, target_host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.state: FaultKind | None = None
        self.accepted = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._listen())

    @property
    def url(self) -> str:
        return f"nats-leaf://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Relayed connections open now."""
        return len(self._links)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control (any thread) ---------------------------------------------------

    def fault(self, kind: FaultKind) -> None:
        """Begin an outage of ``kind``; returns once it is in place."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        self._call(self._fault(kind))

    def heal(self) -> None:
        """End the outage: listen (again) and forward."""
        self._call(self._heal())

    def close(self) -> None:
        """Close every connection and the listener, and stop the loop thread."""
        if not self._loop.is_running():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_S)
        self._loop.close()

    def _call(self, coro: Coroutine[object, object, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_S)

    # -- inside the loop --------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(
            self._accepted, "127.0.0.1", self.port, reuse_address=True
        )

    async def _fault(self, kind: FaultKind) -> None:
        self.state = kind
        if kind == "blackhole":
            self._flowing.clear()
            return
        if kind == "refuse" and self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            self._drop(link, reset=kind == "reset")

    async def _heal(self) -> None:
        self.state = None
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            self._drop(link, reset=False)
        # Pumps and connection handlers (a blackhole holds some): end them all,
        # so none is left pending when the loop closes.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _drop(self, link: _Link, *, reset: bool) -> None:
        for task in link.tasks:
            task.cancel()
        for writer in link.writers():
            _abort(writer, reset=reset)
        self._links.discard(link)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        if self.state in ("close", "reset"):
            _abort(writer, reset=self.state == "reset")
            return
        self._links.add(link)
        try:
            await self._flowing.wait()  # a blackhole holds new connections too
            try:
                target_reader, link.target = await asyncio.open_connection(*self.target)
            except OSError:
                _abort(writer, reset=True)  # the target refuses: so do we
                return
            if link not in self._links:  # dropped while dialling
                _abort(link.target, reset=self.state == "reset")
                return
            link.tasks = [
                asyncio.create_task(self._pump(reader, link.target, link)),
                asyncio.create_task(self._pump(target_reader, writer, link)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            if link in self._links:
                self._drop(link, reset=False)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Relay one direction until EOF; then half-close, or close both on an error."""
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()  # read before a blackhole began: held, not lost
                writer.write(data)
                await writer.drain()
            await self._flowing.wait()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            for w in link.writers():
                _abort(w, reset=False)
