"""``reload`` on store.sock (and SIGHUP): new buffer limits without a restart (issue #5)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from leafnode.ipc import open_trio_client

from .helpers import append, msg, read, remote_stats, wait_until

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from leafnode.ipc import TrioIpcClient

    from .conftest import StoreFactory, StoreProcess

pytestmark = pytest.mark.trio


def rewrite(store: StoreProcess, factory: StoreFactory, block: str) -> None:
    """Replace the store's config file with one whose ``central`` buffer is ``block``."""
    store.conf.write_text(factory.config(buffers={"central": block}))


async def reload(client: TrioIpcClient) -> dict[str, object]:
    frame = await client.request("reload")
    assert frame.type == "ok"
    return frame.fields


async def test_lower_max_msgs_applies_to_the_next_append(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={"central": 'subjects: ["t.>"], max_msgs: 10'})
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i}") for i in range(10)])
        assert (await remote_stats(client))["msgs"] == 10
        rewrite(store, store_factory, 'subjects: ["t.>"], max_msgs: 5')
        answer = await reload(client)
        assert answer["reloaded"] is True
        assert answer["changes"] == ["remote 'central': limits, max_msgs 10 -> 5"]
        reply = await append(client, [msg("t.new")])
        assert reply.refused == ()
        st = await remote_stats(client)
        assert st["msgs"] == 5
        assert st["dropped"] == {"max_msgs": 6}
        # The oldest went: what is left is the newest five, ending with t.new.
        page = await read(client)
        assert [m.seq for m in page.msgs] == [7, 8, 9, 10, 11]


async def test_bad_config_is_refused_and_the_old_limits_remain(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers={"central": 'subjects: ["t.>"], max_msgs: 10'})
    async with open_trio_client(store.socket_path) as client:
        rewrite(store, store_factory, 'subjects: ["t.>"], max_msgs: 5, discard: sideways')
        answer = await reload(client)
        assert answer["reloaded"] is False
        error = answer["error"]
        assert isinstance(error, str)
        assert "discard" in error
        assert str(store.conf) in error  # names the file, as `leafnode check` does
        await append(client, [msg(f"t.{i}") for i in range(12)])
        st = await remote_stats(client)
        assert st["msgs"] == 10  # still max_msgs 10
        assert st["dropped"] == {"max_msgs": 2}
    assert "Failed to reload the configuration" in store.log_text()


async def test_housekeeping_trims_a_discard_old_backlog_without_an_append(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers={"central": 'subjects: ["t.>"]'})
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i}", b"x" * 10) for i in range(8)])
        rewrite(store, store_factory, 'subjects: ["t.>"], max_msgs: 3')
        assert (await reload(client))["reloaded"] is True

        async def trimmed() -> bool:
            return (await remote_stats(client))["msgs"] == 3

        await wait_until(trimmed, what="the backlog trimmed to max_msgs")
        assert (await remote_stats(client))["dropped"] == {"max_msgs": 5}
        assert [m.seq for m in (await read(client)).msgs] == [6, 7, 8]


async def test_discard_new_keeps_the_backlog_and_refuses_until_below(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers={"central": 'subjects: ["t.>"], discard: new'})
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i}") for i in range(6)])
        rewrite(store, store_factory, 'subjects: ["t.>"], discard: new, max_msgs: 4')
        assert (await reload(client))["reloaded"] is True
        reply = await append(client, [msg("t.late")])
        assert reply.refused == ((0, "max_msgs"),)
        # Nothing stored is dropped: discard new refuses, it never deletes.
        st = await remote_stats(client)
        assert (st["msgs"], st["dropped"]) == (6, {"max_msgs": 1})
        await client.request("ack", {"remote": "central", "upto": 3})
        reply = await append(client, [msg("t.later")])
        assert reply.refused == ()
        assert (await remote_stats(client))["msgs"] == 4


async def test_sighup_reloads_and_a_new_remote_gets_its_limits(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers={"central": 'subjects: ["t.>"]'})
    store.conf.write_text(
        store_factory.config(
            buffers={"central": 'subjects: ["t.>"]', "edge": 'subjects: ["e.>"], max_msgs: 2'}
        )
    )
    store.proc.send_signal(signal.SIGHUP)
    await wait_until(
        _log_says(store, "Reloaded configuration (1 change(s))"), what="the SIGHUP reload"
    )
    assert "remote 'edge': buffered, max_msgs unlimited -> 2" in store.log_text()
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"e.{i}", remote="edge") for i in range(3)])
        st = await remote_stats(client, "edge")
        assert (st["msgs"], st["dropped"]) == (2, {"max_msgs": 1})
    # An unknown remote would have been logged with default limits.
    assert "unknown remote 'edge'" not in store.log_text()


def _log_says(store: StoreProcess, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return text in store.log_text()

    return check
