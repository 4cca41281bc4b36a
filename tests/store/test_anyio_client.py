"""The anyio client (the api's) against a real store, on asyncio."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from leafnode.ipc import (
    IpcClosedError,
    RequestError,
    decode_append_reply,
    decode_read_reply,
    encode_append,
    open_anyio_client,
)

from .helpers import msg

if TYPE_CHECKING:
    from .conftest import StoreFactory


def test_anyio_client_on_asyncio(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={"central": 'subjects: [">"]'})

    async def main() -> None:
        async with (
            open_anyio_client(store.socket_path) as client,
            open_anyio_client(store.socket_path) as watcher,
        ):
            assert (await client.request("ping")).type == "pong"
            sub = await watcher.request("subscribe", {"remote": "central"})
            batch = [msg(f"t.{i}", b"p%d" % i) for i in range(5)]
            # Pipelined from concurrent tasks on one connection.
            replies = []

            async def send() -> None:
                frame = await client.request_prepared(lambda rid: encode_append(rid, batch))
                replies.append(decode_append_reply(frame))

            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(send)
            assert sorted(r.first_seq for r in replies) == [1, 6, 11, 16]
            got = decode_read_reply(await client.request("read", {"remote": "central"}))
            assert len(got.msgs) == 20
            with pytest.raises(RequestError):
                await client.request("nope")
            events = await watcher.wait_events()
            assert events[-1].id == sub.id
            assert events[-1].type == "appended"
        with pytest.raises(IpcClosedError):
            await client.request("ping")

    anyio.run(main, backend="asyncio")


def test_anyio_client_sees_the_store_go_away(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={"central": 'subjects: [">"]'})

    async def main() -> None:
        async with open_anyio_client(store.socket_path) as client:
            await client.request("ping")
            store.kill()
            with pytest.raises(IpcClosedError):
                await client.request("ping")
            with pytest.raises(IpcClosedError):
                await client.wait_events()

    anyio.run(main, backend="asyncio")
