"""The uplink's side of router.sock, with a scripted router (services/router/datalink.py).

A real hub and a real uplink; the test plays the router on ``run_dir/router.sock``
so it sees the exact lines. A router whose hello offers ``leaf_msgs`` gets
hub messages in the leaf link's own form under ``ACC <acc>``, and may send its
own that way; any other router keeps the classic form, with the account on
every line. Requests from a hub client go through both directions at once.
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

    def __init__(self, *, leaf_msgs: bool) -> None:
        self.leaf_msgs = leaf_msgs
        self.lines: list[bytes] = []
        self.writer: asyncio.StreamWriter | None = None
        self.closed = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        hello: dict[str, object] = {"server_id": "S", "server_name": "s", "accounts": ["$G"]}
        if self.leaf_msgs:
            hello["leaf_msgs"] = True
        writer.write(b"INFO %b\r\n" % json.dumps(hello).encode())
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
            elif parts[0] == b"INFO" and json.loads(line[5:]).get("leaf_msgs") and self.leaf_msgs:
                writer.write(b"ACC $G\r\n")  # what we send from now on is leaf-form
            elif parts[0] == b"LMSG":
                await reader.readexactly(int(parts[-1]) + 2)
                self._answer(parts)

    def _answer(self, parts: list[bytes]) -> None:
        assert self.writer is not None
        if self.leaf_msgs:
            subject, reply = parts[1], parts[2]  # LMSG <subject> <reply> <size>
            self.writer.write(b"LMSG %b 2\r\nok\r\n" % reply)
        else:
            subject, reply = parts[2], parts[3]  # LMSG <acc> <subject> <reply> <size>
            self.writer.write(b"LMSG $G %b 2\r\nok\r\n" % reply)
        assert subject == b"svc"

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)


@pytest.mark.parametrize("leaf_msgs", [True, False], ids=["leaf-form", "classic"])
async def test_requests_cross_in_the_form_the_router_reads(
    hub_factory: HubStarter, tmp_path: Path, leaf_msgs: bool
) -> None:
    hub = hub_factory()
    config = tmp_path / "leaf.conf"
    config.write_text(remote_config(f'{{ url: "{hub.leaf_url}" }}'))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    router = ScriptedRouter(leaf_msgs=leaf_msgs)
    server = await asyncio.start_unix_server(router.serve, str(run_dir / "router.sock"))
    uplink = UplinkProcess(config, run_dir, workdir=tmp_path / "uplink")
    hub_nc = await nats.connect(hub.url)
    try:
        uplink.wait_ready()
        # Local interest, as the router would announce it.
        await wait_until(lambda: router.writer is not None, timeout=15, what="uplink attached")
        router.send(b"LS+ $G svc\r\n")
        await until_responding(hub_nc, "svc", timeout=15)
        assert router.lines[0] == b'INFO {"leaf_msgs":true}'
        requests = [line for line in router.lines if line.startswith(b"LMSG")]
        assert requests
        if leaf_msgs:
            assert b"ACC $G" in router.lines
            assert all(len(line.split()) == 4 for line in requests)  # LMSG svc <reply> <size>
        else:
            assert b"ACC $G" not in router.lines
            assert all(line.split()[1] == b"$G" for line in requests)
    finally:
        await hub_nc.close()
        uplink.kill()
        await wait_until(lambda: router.closed or router.writer is None, what="link closed")
        server.close()
