"""The uplink's side of router.sock, with a scripted router (services/router/datalink.py).

A real hub and a real uplink; the test plays the router on ``run_dir/router.sock``
so it sees the exact lines. Messages cross in the leaf link's own form under
``ACC <acc>`` both ways (leafnode/proto/_datalink.py). Requests from a hub
client go through both directions at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import nats
import pytest

from tests.conftest import until_responding, wait_until
from tests.support import UplinkProcess
from tests.uplink.conftest import remote_config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.uplink.conftest import HubStarter

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]


class ScriptedRouter:
    """Serves router.sock: hello, PONGs, and ``ok`` to every request it gets."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.writer: asyncio.StreamWriter | None = None
        self.closed = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        hello = {"server_id": "S", "server_name": "s", "accounts": ["$G"]}
        writer.write(b"INFO %b\r\n" % json.dumps(hello).encode())
        writer.write(b"ACC $G\r\n")  # the messages we send belong to $G
        try:
            await self._read(reader, writer)
        except asyncio.IncompleteReadError:
            pass  # the uplink went away
        finally:
            writer.close()
            self.closed = True

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := (await reader.readuntil(b"\r\n"))[:-2].rstrip():
            self.lines.append(line)
            parts = line.split()
            if parts[0] == b"PING":
                writer.write(b"PONG\r\n")
            elif parts[0] == b"LMSG":
                await reader.readexactly(int(parts[-1]) + 2)
                self._answer(parts)

    def _answer(self, parts: list[bytes]) -> None:
        assert self.writer is not None
        subject, reply = parts[1], parts[2]  # LMSG <subject> <reply> <size>
        self.writer.write(b"LMSG %b 2\r\nok\r\n" % reply)
        assert subject == b"svc"

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)


async def test_requests_cross_in_the_leaf_form_under_acc(
    hub_factory: HubStarter, tmp_path: Path
) -> None:
    hub = hub_factory()
    config = tmp_path / "leaf.conf"
    config.write_text(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    router = ScriptedRouter()
    server = await asyncio.start_unix_server(router.serve, str(run_dir / "router.sock"))
    uplink = UplinkProcess(config, run_dir, workdir=tmp_path / "uplink")
    hub_nc = await nats.connect(hub.url)
    try:
        uplink.wait_ready()
        # Local interest, as the router would announce it.
        await wait_until(lambda: router.writer is not None, timeout=15, what="uplink attached")
        router.send(b"LS+ $G svc\r\n")
        await until_responding(hub_nc, "svc", timeout=15)
        assert router.lines[0] == b"PING"  # no INFO: nothing to negotiate
        requests = [line for line in router.lines if line.startswith(b"LMSG")]
        assert requests
        assert router.lines.index(b"ACC $G") < router.lines.index(requests[0])
        assert all(len(line.split()) == 4 for line in requests)  # LMSG svc <reply> <size>
    finally:
        await hub_nc.close()
        uplink.kill()
        await wait_until(lambda: router.closed or router.writer is None, what="link closed")
        server.close()
