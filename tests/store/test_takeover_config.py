"""``buffer { takeover_after }`` in a running store (DESIGN §9): reloaded on PostgreSQL,
ignored with a warning on SQLite (one node's file: no takeover)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from leafnode.ipc import open_trio_client

from .conftest import StoreProcess

if TYPE_CHECKING:
    from .conftest import StoreFactory

pytestmark = pytest.mark.trio

CENTRAL = {"central": 'subjects: ["t.>"]'}
IGNORED = "buffer.takeover_after is ignored: a SQLite store is this node's alone"


def _config(factory: StoreFactory, takeover: str | None) -> str:
    block = f'buffer {{ takeover_after: "{takeover}" }}\n' if takeover else ""
    return "server_name: n1\n" + block + factory.config(buffers=CENTRAL)


def _start(factory: StoreFactory, takeover: str | None) -> StoreProcess:
    proc = StoreProcess(factory.tmp_path / "store", _config(factory, takeover))
    factory.started.append(proc)
    proc.wait_ready()
    return proc


async def test_takeover_after_is_reloaded_or_ignored_by_backend(
    store_factory: StoreFactory,
) -> None:
    store = _start(store_factory, "20s")
    async with open_trio_client(store.socket_path) as client:
        stats = (await client.request("stats")).fields
        assert stats["node"] == "n1"
        if not store_factory.is_postgres:
            assert (stats["shared"], stats["backlog"], stats["held"]) == (False, "", [])
            assert IGNORED in store.log_text()
            return
        assert (stats["shared"], stats["backlog"], stats["held"]) == (True, "n1", [])
        assert "Node:     n1, backlog 'n1' (takeover after 20s)" in store.log_text()
        assert IGNORED not in store.log_text()
        store.conf.write_text(_config(store_factory, "5s"))
        answer = (await client.request("reload")).fields
        assert answer["reloaded"] is True
        assert answer["changes"] == ["buffer.takeover_after 20s -> 5s"]
        store.conf.write_text(_config(store_factory, "5s"))
        assert (await client.request("reload")).fields["changes"] == []


async def test_no_warning_without_the_key(store_factory: StoreFactory) -> None:
    store = _start(store_factory, None)
    async with open_trio_client(store.socket_path) as client:
        assert (await client.request("ping")).type == "pong"
    assert IGNORED not in store.log_text()
