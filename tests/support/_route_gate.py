"""A route relay that sees every route connection between two nodes, and can make dials collide.

Theory of operation
-------------------
``RouteGate(target_port)`` listens on a free port of 127.0.0.1 and relays
each accepted connection to the target's route port, in the test's own
asyncio loop. A node that lists the gate's URL in its ``routes`` dials the
target through it, so the gate counts the routes between the two nodes
(``open_links``), knows each one's pool index (from the dialer's INFO,
``route_pool_idx``), can cut one (``cut``) and keeps what the target node
sent (``sent_by_target``).

Collisions: two gates built with the same ``GatePair`` hold the dialer's
INFO (the line that makes the accepting node place the route) of their
first pooled connection (not a dedicated ``$SYS`` one) until the other
gate holds one too, then let both go.
Each node has by then placed the route it dialed itself (a dialer places
its route on the accepting node's INFO, which is not held), so each
receives the other's route for a slot it has filled: the two nodes dialed
each other at the same instant, every time, not by luck of timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

from ._procs import free_port

__all__ = ["GatePair", "RouteGate"]


@dataclass
class GatePair:
    """Two gates whose first dialer INFOs are let go together."""

    held: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self) -> None:
        self.held += 1
        if self.held >= 2:
            self.release.set()
        await self.release.wait()


@dataclass
class _Link:
    client: asyncio.StreamWriter
    target: asyncio.StreamWriter
    pool_idx: int | None = None
    # A route dedicated to one account (2.15's $SYS route), else "".
    account: str = ""
    closed: bool = False
    # What the accepting node sent on it (``RouteGate.sent_by_target``).
    from_target: bytearray = field(default_factory=bytearray)


class RouteGate:
    """127.0.0.1:port -> 127.0.0.1:target_port, route connections counted (module doc)."""

    def __init__(self, target_port: int, pair: GatePair | None = None) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.pair = pair
        self.links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._held_one = False

    @property
    def url(self) -> str:
        return f"nats-route://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def open_links(self) -> list[_Link]:
        return [link for link in self.links if not link.closed]

    def sent_by_target(self) -> list[bytes]:
        """Every line the target node sent on the routes through the gate, in order per route."""
        return [line for link in self.links for line in bytes(link.from_target).split(b"\r\n")]

    def cut(self, pool_idx: int) -> int:
        """Close (FIN both ways) every open link at ``pool_idx``; how many."""
        cut = 0
        for link in self.open_links():
            if link.pool_idx == pool_idx and not link.account:
                link.client.close()
                link.target.close()
                cut += 1
        return cut

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self.links:
            link.client.close()
            link.target.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        link = _Link(writer, t_writer)
        self.links.append(link)
        for coro in (
            self._dialer_side(link, reader, t_writer),
            self._pump(link, t_reader, writer, link.from_target),
        ):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dialer_side(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Dialer -> target: note the INFO's pool index; hold the first pooled one."""
        try:
            while link.pool_idx is None:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"INFO "):
                    info = json.loads(line[5:].strip())
                    link.pool_idx = int(info.get("route_pool_idx", 0))
                    link.account = str(info.get("route_account", ""))
                    if self.pair is not None and not link.account and not self._held_one:
                        self._held_one = True
                        await self.pair.hold()
                writer.write(line)
                await writer.drain()
            await self._pump(link, reader, writer)
        except (OSError, ValueError):
            pass
        finally:
            self._closed(link)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: bytearray | None = None,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if record is not None:
                    record += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._closed(link)

    @staticmethod
    def _closed(link: _Link) -> None:
        if not link.closed:
            link.closed = True
            link.client.close()
            link.target.close()
