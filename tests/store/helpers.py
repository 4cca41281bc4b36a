"""Small typed wrappers over the ipc client for the store tests."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from leafnode.ipc import (
    AppendReply,
    BufferedMsg,
    ReadReply,
    decode_append_reply,
    decode_read_reply,
    encode_append,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from leafnode.ipc import TrioIpcClient


def now_us() -> int:
    return time.time_ns() // 1000


def msg(
    subject: str = "t.a",
    payload: bytes = b"hello",
    *,
    remote: str = "central",
    headers: bytes = b"",
    reply: str | None = None,
    queues: tuple[str, ...] = (),
    received_at_us: int | None = None,
) -> BufferedMsg:
    return BufferedMsg(
        remote,
        subject,
        reply,
        len(headers),
        headers + payload,
        now_us() if received_at_us is None else received_at_us,
        queues,
    )


async def append(client: TrioIpcClient, msgs: Sequence[BufferedMsg]) -> AppendReply:
    frame = await client.request_prepared(lambda rid: encode_append(rid, msgs))
    return decode_append_reply(frame)


async def read(client: TrioIpcClient, **fields: object) -> ReadReply:
    fields.setdefault("remote", "central")
    return decode_read_reply(await client.request("read", fields))


async def stats(client: TrioIpcClient) -> dict[str, object]:
    return (await client.request("stats")).fields


async def remote_stats(client: TrioIpcClient, remote: str = "central") -> dict[str, object]:
    remotes = (await stats(client))["remotes"]
    assert isinstance(remotes, dict)
    found = remotes.get(remote)
    assert isinstance(found, dict), f"no stats for {remote}: {remotes}"
    return found


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while not await condition():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
