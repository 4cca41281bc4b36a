"""The store's operations over its real socket, on SQLite and PostgreSQL (DESIGN §2, §4)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest
import trio

from leafnode.ipc import IpcClosedError, RequestError, encode_frame, open_trio_client

from .helpers import append, msg, now_us, read, remote_stats, stats, wait_until

if TYPE_CHECKING:
    from leafnode.ipc import TrioIpcClient

    from .conftest import StoreFactory

pytestmark = pytest.mark.trio

CENTRAL = {"central": 'subjects: ["t.>"]'}


async def test_ping_answers_leaf_id_and_last_seq(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        pong = await client.request("ping")
    assert pong.type == "pong"
    leaf_id = pong.fields["leaf_id"]
    assert isinstance(leaf_id, str)
    assert len(leaf_id) >= 16
    assert pong.fields["last_seq"] == 0


async def test_append_then_read_returns_every_field(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    headers = b"NATS/1.0\r\nA: b\r\n\r\n"
    sent = [
        msg("t.a", b"one", headers=headers, reply="_INBOX.x", queues=("q1", "q2")),
        msg("t.b", b""),
        msg("t.c", b"\x00\xff" * 1000),
    ]
    async with open_trio_client(store.socket_path) as client:
        reply = await append(client, sent)
        assert (reply.first_seq, reply.last_seq, reply.refused) == (1, 3, ())
        got = await read(client)
    assert [m.seq for m in got.msgs] == [1, 2, 3]
    assert got.next == 3
    assert not got.more
    first = got.msgs[0]
    assert first.headers == headers
    assert first.payload == b"one"
    assert first.reply == "_INBOX.x"
    assert first.queues == ("q1", "q2")
    assert first.received_at_us == sent[0].received_at_us
    assert first.acked_at_us is None
    assert got.msgs[1].data == b""
    assert got.msgs[1].hdr_len == 0
    assert got.msgs[2].payload == b"\x00\xff" * 1000


@pytest.mark.parametrize("n", [49, 50, 51, 137])
async def test_batches_around_the_multi_row_insert_size_store_every_row(
    store_factory: StoreFactory, n: int
) -> None:
    """SQLite inserts 50 rows per statement plus a shorter last one: none lost or shifted."""
    store = store_factory.start(buffers=CENTRAL)
    headers = b"NATS/1.0\r\nI: x\r\n\r\n"
    sent = [
        msg(
            f"t.{i}",
            str(i).encode(),
            headers=headers if i % 3 == 0 else b"",
            reply=f"r.{i}" if i % 2 else None,
            queues=(f"q{i}",) if i % 5 == 0 else (),
            received_at_us=1_000_000 + i,
        )
        for i in range(n)
    ]
    async with open_trio_client(store.socket_path) as client:
        reply = await append(client, sent)
        assert (reply.first_seq, reply.last_seq, reply.refused) == (1, n, ())
        got = await read(client, limit=n + 10)
    assert [m.seq for m in got.msgs] == list(range(1, n + 1))
    assert [
        (m.subject, m.reply, m.hdr_len, m.data, m.received_at_us, m.queues) for m in got.msgs
    ] == [(m.subject, m.reply, m.hdr_len, m.data, m.received_at_us, m.queues) for m in sent]


async def test_read_cursor_limit_and_max_bytes(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i}", b"x" * 100) for i in range(10)])
        page = await read(client, limit=4)
        assert [m.seq for m in page.msgs] == [1, 2, 3, 4]
        assert page.more
        page = await read(client, after=page.next, limit=4)
        assert [m.seq for m in page.msgs] == [5, 6, 7, 8]
        page = await read(client, after=page.next, limit=4)
        assert [m.seq for m in page.msgs] == [9, 10]
        assert not page.more
        # max_bytes is a soft cap: at least one message, then stop once reached.
        small = await read(client, max_bytes=1)
        assert [m.seq for m in small.msgs] == [1]
        assert small.more


async def test_read_filters_subjects_and_advances_past_skipped(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers=CENTRAL)
    subjects = ["t.a.1", "t.b.1", "t.a.2", "t.c", "t.a.3.x"]
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(s) for s in subjects])
        wild = await read(client, subjects=["t.a.*"])
        assert [m.subject for m in wild.msgs] == ["t.a.1", "t.a.2"]
        assert wild.next == 5  # t.c and t.a.3.x were examined and skipped
        literal = await read(client, subjects=["t.c"])
        assert [m.seq for m in literal.msgs] == [4]
        both = await read(client, subjects=["t.b.1", "t.a.>"])
        assert [m.seq for m in both.msgs] == [1, 2, 3, 5]
        none = await read(client, subjects=["nope"])
        assert none.msgs == []


async def test_read_time_bounds_and_all_remotes(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={**CENTRAL, "edge": 'subjects: ["e.>"]'})
    async with open_trio_client(store.socket_path) as client:
        await append(
            client,
            [
                msg("t.a", received_at_us=1_000),
                msg("e.a", remote="edge", received_at_us=2_000),
                msg("t.b", received_at_us=3_000),
            ],
        )
        ranged = await read(client, since_us=1_500, until_us=3_000)
        assert [m.subject for m in ranged.msgs] == ["t.b"]
        everyone = await read(client, remote=None)
        assert [(m.remote, m.seq) for m in everyone.msgs] == [
            ("central", 1),
            ("edge", 2),
            ("central", 3),
        ]


async def test_pipelined_appends_from_two_connections_get_distinct_seqs(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers=CENTRAL)
    replies = []
    async with (
        open_trio_client(store.socket_path) as one,
        open_trio_client(store.socket_path) as two,
    ):

        async def send(client: TrioIpcClient, tag: str) -> None:
            for i in range(10):
                batch = [msg(f"t.{tag}", f"{tag}{i}-{j}".encode()) for j in range(50)]
                replies.append(await append(client, batch))

        async with trio.open_nursery() as nursery:
            for k in range(3):
                nursery.start_soon(send, one, f"a{k}")
                nursery.start_soon(send, two, f"b{k}")
        seqs = sorted(s for r in replies for s in range(r.first_seq, r.last_seq + 1))
        assert seqs == list(range(1, 3001))
        assert all(r.last_seq - r.first_seq == 49 for r in replies)
        got = await read(one, limit=10_000)
    assert len(got.msgs) == 3000
    # Each batch's messages are stored in batch order under its seq range.
    for r in replies:
        chunk = got.msgs[r.first_seq - 1 : r.last_seq]
        tag = chunk[0].payload.split(b"-")[0]
        assert [m.payload for m in chunk] == [b"%s-%d" % (tag, j) for j in range(50)]


async def test_ack_upto_and_listed_seqs(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i}", b"12345") for i in range(10)])
        assert (await client.request("ack", {"remote": "central", "upto": 3})).fields == {
            "acked": 3
        }
        # Listed seqs (the uplink skipped 5 and 7: no hub interest); 2 is already gone.
        acked = await client.request("ack", {"remote": "central", "seqs": [2, 4, 6, 8]})
        assert acked.fields["acked"] == 3
        left = await read(client)
        assert [m.seq for m in left.msgs] == [5, 7, 9, 10]
        st = await remote_stats(client)
        assert st["msgs"] == 4
        assert st["bytes"] == 4 * (len("t.5") + 5)
        # Another remote's ack touches nothing of ours.
        other = await client.request("ack", {"remote": "other", "upto": 100})
        assert other.fields["acked"] == 0
        assert (await remote_stats(client))["msgs"] == 4


async def test_stats_per_remote_and_total(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={**CENTRAL, "edge": 'subjects: ["e.>"]'})
    async with open_trio_client(store.socket_path) as client:
        empty = await stats(client)
        assert empty["total"] == {"msgs": 0, "bytes": 0}
        remotes = empty["remotes"]
        assert isinstance(remotes, dict)
        assert set(remotes) == {"central", "edge"}
        assert remotes["edge"]["oldest_age_s"] is None
        await append(
            client,
            [
                msg("t.a", b"abc", reply="r", received_at_us=now_us() - 5_000_000),
                msg("e.b", b"x" * 10, remote="edge", headers=b"NATS/1.0\r\n\r\n"),
            ],
        )
        st = await stats(client)
    remotes = st["remotes"]
    assert isinstance(remotes, dict)
    central = remotes["central"]
    assert central["msgs"] == 1
    assert central["bytes"] == len("t.a") + len("r") + 3
    assert central["oldest_age_s"] >= 5.0
    assert remotes["edge"]["bytes"] == len("e.b") + len(b"NATS/1.0\r\n\r\n") + 10
    assert st["total"] == {"msgs": 2, "bytes": central["bytes"] + remotes["edge"]["bytes"]}
    assert st["last_seq"] == 2


async def test_purge_by_remote_subject_and_time(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={**CENTRAL, "edge": 'subjects: ["e.>"]'})
    async with open_trio_client(store.socket_path) as client:
        await append(
            client,
            [
                msg("t.a.1", received_at_us=1_000),
                msg("t.b.1", received_at_us=2_000),
                msg("t.a.2", received_at_us=3_000),
                msg("e.a", remote="edge", received_at_us=4_000),
                msg("t.a.3", received_at_us=5_000),
            ],
        )
        wild = await client.request("purge", {"remote": "central", "subject": "t.a.*"})
        assert wild.fields["purged"] == 3
        assert [m.subject for m in (await read(client)).msgs] == ["t.b.1"]
        await append(client, [msg("t.x", received_at_us=1_500), msg("t.y", received_at_us=9_000)])
        until = await client.request("purge", {"until_us": 2_000})
        assert until.fields["purged"] == 2  # t.b.1 and t.x, any remote
        literal = await client.request("purge", {"subject": "e.a"})
        assert literal.fields["purged"] == 1
        everything = await client.request("purge", {})
        assert everything.fields["purged"] == 1
        st = await stats(client)
    assert st["total"] == {"msgs": 0, "bytes": 0}
    remotes = st["remotes"]
    assert isinstance(remotes, dict)
    assert remotes["central"]["dropped"] == {"purged": 6}
    assert remotes["edge"]["dropped"] == {"purged": 1}


async def test_discard_old_drops_oldest_by_count(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={"central": 'subjects: [">"], max_msgs: 5'})
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg(f"t.{i}") for i in range(4)])
        reply = await append(client, [msg(f"t.{i}") for i in range(4, 7)])
        assert (reply.first_seq, reply.last_seq, reply.refused) == (5, 7, ())
        assert [m.seq for m in (await read(client)).msgs] == [3, 4, 5, 6, 7]
        # A batch larger than the limit keeps only its newest messages.
        await append(client, [msg(f"u.{i}") for i in range(8)])
        assert [m.subject for m in (await read(client)).msgs] == [f"u.{i}" for i in range(3, 8)]
        st = await remote_stats(client)
    assert st["msgs"] == 5
    assert st["dropped"] == {"max_msgs": 2 + 5 + 3}


async def test_discard_old_drops_oldest_by_bytes(store_factory: StoreFactory) -> None:
    # Each message is 3 (subject) + 97 = 100 bytes.
    store = store_factory.start(buffers={"central": 'subjects: [">"], max_bytes: 350'})
    async with open_trio_client(store.socket_path) as client:
        for i in range(5):
            await append(client, [msg(f"t.{i}", b"x" * 97)])
        got = await read(client)
        st = await remote_stats(client)
    assert [m.subject for m in got.msgs] == ["t.2", "t.3", "t.4"]
    assert st["bytes"] == 300
    assert st["dropped"] == {"max_bytes": 2}


async def test_discard_new_refuses_and_says_which(store_factory: StoreFactory) -> None:
    store = store_factory.start(
        buffers={"central": 'subjects: [">"], max_msgs: 3, max_bytes: 1000, discard: new'}
    )
    async with open_trio_client(store.socket_path) as client:
        reply = await append(client, [msg(f"t.{i}") for i in range(5)])
        assert (reply.first_seq, reply.last_seq) == (1, 3)
        assert reply.refused == ((3, "max_msgs"), (4, "max_msgs"))
        await client.request("ack", {"remote": "central", "upto": 3})
        big = await append(client, [msg("t.a", b"x" * 600), msg("t.b", b"x" * 600)])
        assert (big.first_seq, big.last_seq) == (4, 4)
        assert big.refused == ((1, "max_bytes"),)
        # Refused messages consumed no seq: the next one follows on.
        nxt = await append(client, [msg("t.c")])
        assert nxt.first_seq == 5
        st = await remote_stats(client)
    assert st["dropped"] == {"max_msgs": 2, "max_bytes": 1}
    assert st["msgs"] == 2


async def test_message_larger_than_max_bytes_is_refused_even_with_discard_old(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers={"central": 'subjects: [">"], max_bytes: 100'})
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg("t.a")])
        reply = await append(client, [msg("t.big", b"x" * 200), msg("t.b")])
        assert reply.refused == ((0, "max_bytes"),)
        assert [m.subject for m in (await read(client)).msgs] == ["t.a", "t.b"]


async def test_max_age_expires_the_head_of_the_backlog(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={"central": 'subjects: [">"], max_age: "1h"'})
    old = now_us() - 2 * 3600 * 1_000_000
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg("t.old1", received_at_us=old), msg("t.old2", received_at_us=old)])
        await append(client, [msg("t.new")])

        async def expired() -> bool:
            return (await remote_stats(client))["msgs"] == 1

        await wait_until(expired, what="max_age expiry")
        assert [m.subject for m in (await read(client)).msgs] == ["t.new"]
        assert (await remote_stats(client))["dropped"] == {"max_age": 2}


async def test_retain_keeps_acked_messages_then_deletes_them(store_factory: StoreFactory) -> None:
    # Long enough that the reads below, on a loaded machine, come before the
    # retained rows expire (300 ms was not, once); the wait below has a deadline.
    store = store_factory.start(buffers={"central": 'subjects: [">"], retain: "2s"'})
    async with open_trio_client(store.socket_path) as client:
        await append(client, [msg("t.a"), msg("t.b"), msg("t.c")])
        before = now_us()
        await client.request("ack", {"remote": "central", "upto": 2})
        assert [m.seq for m in (await read(client)).msgs] == [3]
        kept = await read(client, acked=True)
        assert [m.seq for m in kept.msgs] == [1, 2, 3]
        assert kept.msgs[0].acked_at_us is not None
        assert kept.msgs[0].acked_at_us >= before
        assert kept.msgs[2].acked_at_us is None
        st = await remote_stats(client)
        assert (st["msgs"], st["retained_msgs"]) == (1, 2)

        async def purged() -> bool:
            return (await remote_stats(client))["retained_msgs"] == 0

        await wait_until(purged, what="retained rows to expire")
        assert [m.seq for m in (await read(client, acked=True)).msgs] == [3]
        assert (await remote_stats(client))["dropped"] == {}


async def test_redrive_makes_retained_messages_pending_and_rewinds_readers(
    store_factory: StoreFactory,
) -> None:
    store = store_factory.start(buffers={"central": 'subjects: [">"], retain: "1h"'})
    async with (
        open_trio_client(store.socket_path) as client,
        open_trio_client(store.socket_path) as reader,
    ):
        sub = await reader.request("subscribe", {"remote": "central"})
        await append(client, [msg("t.a"), msg("t.b"), msg("t.a")])
        await client.request("ack", {"remote": "central", "upto": 3})
        assert (await read(client)).msgs == []
        done = await client.request("redrive", {"remote": "central", "subject": "t.a"})
        backlog = sub.fields["backlog"]  # the node's own ("" on SQLite): the only one here
        assert done.fields == {
            "redriven": 2,
            "first_seq": 1,
            "backlogs": {backlog: {"redriven": 2, "first_seq": 1}},
        }
        assert [m.seq for m in (await read(client)).msgs] == [1, 3]
        st = await remote_stats(client)
        assert (st["msgs"], st["retained_msgs"]) == (2, 1)

        async def rewound() -> bool:
            events = await reader.wait_events()
            return any(
                (e.type, e.id, e.fields) == ("rewind", sub.id, {"remote": "central", "seq": 1})
                for e in events
            )

        await wait_until(rewound, what="rewind event")


async def test_subscribers_hear_about_appends(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers={**CENTRAL, "edge": 'subjects: ["e.>"]'})
    async with (
        open_trio_client(store.socket_path) as writer,
        open_trio_client(store.socket_path) as reader,
    ):
        sub_central = await reader.request("subscribe", {"remote": "central"})
        sub_all = await reader.request("subscribe", {})
        assert sub_central.fields["last_seq"] == 0
        await append(writer, [msg("t.a"), msg("e.a", remote="edge")])
        seen: dict[tuple[int, str], int] = {}

        async def heard_all() -> bool:
            for event in await reader.wait_events():
                assert event.type == "appended"
                seen[event.id, str(event.fields["remote"])] = int(event.fields["last_seq"])  # type: ignore[call-overload]
            return len(seen) == 3

        await wait_until(heard_all, what="appended events")
        assert seen == {
            (sub_central.id, "central"): 1,
            (sub_all.id, "central"): 1,
            (sub_all.id, "edge"): 2,
        }
        # Unsubscribed: only the catch-all subscription hears the next one.
        await reader.request("unsubscribe", {"sub": sub_all.id})
        await append(writer, [msg("t.b")])
        events = await reader.wait_events()
        assert [(e.id, e.fields["last_seq"]) for e in events] == [(sub_central.id, 3)]


async def test_events_are_coalesced_for_a_slow_reader(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with (
        open_trio_client(store.socket_path) as writer,
        open_trio_client(store.socket_path) as reader,
    ):
        await reader.request("subscribe", {"remote": "central"})
        for i in range(20):
            await append(writer, [msg(f"t.{i}")])
        # The answer to this ping follows every event the store queued before it.
        await reader.request("ping")
        events = await reader.wait_events()
    assert len(events) == 1
    assert events[0].fields == {"remote": "central", "last_seq": 20}


async def test_bad_requests_get_errors_and_change_nothing(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        with pytest.raises(RequestError) as unknown:
            await client.request("frobnicate")
        assert unknown.value.code == "unknown_type"
        with pytest.raises(RequestError, match="remote"):
            await client.request("ack", {"upto": 3})
        with pytest.raises(RequestError, match="after"):
            await client.request("read", {"after": "zero"})
        # One bad row refuses the whole batch: nothing of it is stored.
        rows: list[object] = [["central", "t.a", None, 0, 1, []], ["central", "", None, 0, 1, []]]
        with pytest.raises(RequestError) as bad:
            await client.request("append", {"msgs": rows}, [b"a", b"b"])
        assert bad.value.code == "bad_request"
        with pytest.raises(RequestError, match="blob"):
            await client.request("append", {"msgs": rows[:1]}, [])
        assert (await stats(client))["last_seq"] == 0
        assert (await client.request("ping")).type == "pong"


async def test_a_broken_frame_closes_only_that_connection(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    stream = await trio.open_unix_socket(str(store.socket_path))
    # JSON length larger than the body: a framing error, not a bad request.
    await stream.send_all(b"\x00\x00\x00\x08\x00\x00\x00\xff{}{}")
    assert await stream.receive_some(100) == b""
    await stream.aclose()
    async with open_trio_client(store.socket_path) as client:
        assert (await client.request("ping")).type == "pong"
        with pytest.raises(ValueError, match="reserved"):
            await client.request("ping", {"id": 3})


async def test_client_sees_the_store_go_away(store_factory: StoreFactory) -> None:
    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        await client.request("ping")
        store.kill()
        with pytest.raises(IpcClosedError):
            await client.request("ping")
        with pytest.raises(IpcClosedError):
            await client.wait_events()


async def test_counters_and_seqs_survive_a_restart(store_factory: StoreFactory) -> None:
    buffers = {"central": 'subjects: [">"], max_msgs: 2'}
    store = store_factory.start(buffers=buffers)
    async with open_trio_client(store.socket_path) as client:
        leaf_id = (await client.request("ping")).fields["leaf_id"]
        await append(client, [msg(f"t.{i}") for i in range(5)])
        await client.request("purge", {})
    store.kill()
    store = store_factory.start(buffers=buffers)
    async with open_trio_client(store.socket_path) as client:
        pong = await client.request("ping")
        # The table is empty, yet seqs continue: Nats-Msg-Id must never repeat.
        # PostgreSQL hands out seqs in blocks (services/store/seqblocks.py): the
        # high-water mark is the block's end, and the next seq comes after it.
        last = pong.fields["last_seq"]
        assert isinstance(last, int)
        assert last == 5 if not store_factory.is_postgres else last >= 5
        assert pong.fields == {
            "leaf_id": leaf_id,
            "last_seq": last,
            "node": socket.gethostname(),
            "backlog": socket.gethostname() if store_factory.is_postgres else "",
            "version": 1,
            "database": {"up": True, "error": None, "down_since_us": None},
        }
        assert (await append(client, [msg("t.z")])).first_seq == last + 1
        st = await remote_stats(client)
    assert st["dropped"] == {"max_msgs": 3, "purged": 2}


async def test_raw_frames_match_the_documented_contract(store_factory: StoreFactory) -> None:
    """Drive the socket with hand-built frames, as another language would."""
    store = store_factory.start(buffers=CENTRAL)
    stream = await trio.open_unix_socket(str(store.socket_path))
    rows = [["central", "t.a", "r.1", 4, 123, ["q"]]]
    await stream.send_all(encode_frame("append", 7, {"msgs": rows}, [b"HDR!payload"]))
    from leafnode.ipc import FrameDecoder

    decoder = FrameDecoder()
    frame = None
    while frame is None:
        decoder.feed(await stream.receive_some(4096))
        frame = decoder.next_frame()
    assert (frame.type, frame.id) == ("ok", 7)
    assert frame.fields == {"first_seq": 1, "last_seq": 1, "refused": []}
    await stream.send_all(encode_frame("read", 8, {"remote": "central"}))
    frame = None
    while frame is None:
        decoder.feed(await stream.receive_some(4096))
        frame = decoder.next_frame()
    assert frame.fields == {
        "msgs": [[1, "central", "t.a", "r.1", 4, 123, ["q"], None]],
        "next": 1,
        "more": False,
    }
    assert frame.blobs == [b"HDR!payload"]
    await stream.aclose()


async def test_a_drain_read_of_a_backlog_not_held_yet_is_refused_not_empty(
    store_factory: StoreFactory,
) -> None:
    """A restarted store holds its own backlog only after the lease's self grace
    (its old process may still run). A drain's read meanwhile must not come back
    as empty: the drain takes an empty answer as every pending record up to the
    last appended seq examined, moves its cursor past them, and its acks later
    delete them unsent (found by tests/faults/test_site_cluster.py under load)."""
    if not store_factory.is_postgres:
        pytest.skip("leases exist on a shared PostgreSQL store only")
    from sqlalchemy import create_engine, text

    store = store_factory.start(buffers=CENTRAL)
    async with open_trio_client(store.socket_path) as client:
        backlog = (await client.request("ping")).fields["backlog"]
        assert isinstance(backlog, str)
        await append(client, [msg(f"t.{i}") for i in range(3)])
    store.kill()
    engine = create_engine(store_factory.url)
    stop = trio.Event()

    async def keep_the_old_lease_fresh() -> None:
        # As the old process would, were it still alive: the new one waits.
        while not stop.is_set():
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE buffer_leases SET renewed_at_us ="
                        " CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
                        " WHERE backlog = :b"
                    ),
                    {"b": backlog},
                )
            with trio.move_on_after(0.2):
                await stop.wait()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_the_old_lease_fresh)
            store = store_factory.start(buffers=CENTRAL)
            async with open_trio_client(store.socket_path) as client:
                with pytest.raises(RequestError) as refused:
                    await read(client, after=0, backlog=backlog)
                assert refused.value.code == "not_held"
            stop.set()
        # The old process gone for good: the new one claims its backlog, and
        # the same read returns every pending message.
        async with open_trio_client(store.socket_path) as client:

            async def all_three() -> bool:
                try:
                    got = await read(client, after=0, backlog=backlog)
                except RequestError as exc:
                    if exc.code != "not_held":
                        raise
                    return False
                return len(got.msgs) == 3

            await wait_until(all_three, timeout=30, what="the backlog claimed and read whole")
    finally:
        stop.set()
        engine.dispose()
