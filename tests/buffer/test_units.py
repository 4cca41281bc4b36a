"""The drain's pure pieces: wire form of buffered messages, subject rules, progress."""

from __future__ import annotations

import pytest

from leafnode.ipc import rfc3339_us, stamp_headers
from leafnode.proto import Kind, LHMsg, Parser, encode_leaf_route
from services.uplink.monitor import go_duration
from services.uplink.progress import LOG_MIN_MSGS, Progress
from services.uplink.wire import BatchEncoder, BufferSubjects


def parse_one(data: bytes) -> LHMsg:
    parser = Parser(Kind.LEAF)
    parser.feed(data)
    event = parser.next_event()
    assert isinstance(event, LHMsg)
    assert parser.next_event() is None
    return event


class TestBatchEncoder:
    def test_plain_message_gets_both_headers(self) -> None:
        at = 1_795_000_000_123_456
        line = BatchEncoder("leaf7").encode(b"tele.a", 42, 0, b"payload", at)
        event = parse_one(line)
        assert (event.subject, event.reply, event.queues) == (b"tele.a", None, ())
        expected = stamp_headers(b"", msg_id="leaf7-42", buffered_at_us=at)
        assert event.data == expected + b"payload"
        assert event.hdr_len == len(expected)

    def test_client_headers_and_msg_id_are_kept(self) -> None:
        own = b"NATS/1.0\r\nNats-Msg-Id: mine\r\nX: 1\r\n\r\n"
        line = BatchEncoder("leaf7").encode(b"s", 3, len(own), own + b"p", 5_000_000)
        event = parse_one(line)
        headers = event.data[: event.hdr_len]
        assert headers.startswith(b"NATS/1.0\r\nNats-Msg-Id: mine\r\nX: 1\r\n")
        assert b"Leafnode-Buffered-At: 1970-01-01T00:00:05.000000Z\r\n" in headers
        assert headers.count(b"Nats-Msg-Id") == 1
        assert event.data[event.hdr_len :] == b"p"

    @pytest.mark.parametrize("at", [0, 999_999, 1_000_000, 1_795_000_000_999_999])
    def test_timestamp_matches_rfc3339_us_across_seconds(self, at: int) -> None:
        encoder = BatchEncoder("x")
        for t in (at, at + 1, at + 1_000_000):
            event = parse_one(encoder.encode(b"s", 1, 0, b"", t))
            assert f"Leafnode-Buffered-At: {rfc3339_us(t)}\r\n".encode() in event.data

    @pytest.mark.parametrize(
        ("reply", "queues", "route"),
        [
            (None, (), b"s"),
            (b"r", (), b"s r"),
            (None, (b"q1", b"q2"), b"s | q1 q2"),
            (b"r", (b"q1",), b"s + r q1"),
        ],
    )
    def test_routes(self, reply: bytes | None, queues: tuple[bytes, ...], route: bytes) -> None:
        assert encode_leaf_route(b"s", reply, queues) == route
        event = parse_one(BatchEncoder("x").encode(route, 1, 0, b"d", 0))
        assert (event.subject, event.reply, event.queues) == (b"s", reply, queues)


class TestBufferSubjects:
    def test_literals_and_wildcards(self) -> None:
        rules = BufferSubjects(["tele.>", "metrics.*.cpu", "exact"])
        assert b"tele.a.b" in rules
        assert b"metrics.h1.cpu" in rules
        assert b"exact" in rules
        assert b"tele" not in rules
        assert b"metrics.h1.mem" not in rules
        assert b"other" not in rules

    def test_interest_that_can_release_waiting_messages(self) -> None:
        rules = BufferSubjects(["tele.>"])
        assert rules.intersects(b"tele.x")
        assert rules.intersects(b"*.x")
        assert rules.intersects(b">")
        assert not rules.intersects(b"_INBOX.abc.*")
        assert not rules.intersects(b"tele")


class TestProgress:
    """Figures of the walkthrough's 150,000-message replay (messages of 20 bytes).

    The drain had sent 500 messages (9,000 bytes) before it: they are not
    part of this replay.
    """

    BACKLOG = 15 * LOG_MIN_MSGS

    def _begun(self) -> Progress:
        progress = Progress()
        progress.begin(0.0, 500, 9000, self.BACKLOG, self.BACKLOG * 20)
        return progress

    def test_figures_start_at_the_replay_and_end_exact(self) -> None:
        progress = self._begun()
        assert progress.rate(0.0, 500, 9000) is None
        # Known from the first confirmed batch, before any sample.
        assert progress.rate(0.5, 2500, 49_000) == (4000.0, 80_000.0)
        assert progress.sent_batch() == "replaying 150000 buffered messages (3000000 bytes)"
        assert progress.sent_batch() is None
        assert progress.sample(1.0, 10_500, 209_000, self.BACKLOG - 10_000, 0) is None
        assert progress.eta_s(1.0, 10_500, 209_000, 0) == 14.0
        line = progress.sample(5.0, 50_500, 1_009_000, 100_000, 0)
        assert line == "replay: sent 50000 (10000 msg/s), remaining 100000, ETA 10s"
        done = progress.sample(15.0, 150_500, 3_009_000, 0, 0)
        assert done == (
            "replay caught up: sent 150000 messages (3000000 bytes) in 15.0s (10000 msg/s)"
        )
        assert progress.eta_s(15.0, 150_500, 3_009_000, 0) == 0.0
        assert progress.last is not None
        status = progress.last.status()
        assert status["backlog"] == {"msgs": 150_000, "bytes": 3_000_000}
        assert status["sent"] == {"msgs": 150_000, "bytes": 3_000_000}
        assert status["ended"] == "caught up"
        assert not progress.active

    def test_the_rate_forgets_samples_older_than_the_window(self) -> None:
        progress = self._begun()
        for second in range(1, 11):
            sent = 500 + second * 1000 if second <= 5 else 5500 + (second - 5) * 3000
            progress.sample(float(second), sent, 0, 1, 0)
        rates = progress.rate(10.0, 20_500, 0)
        assert rates is not None
        assert rates[0] == 3000.0  # the last 5 s, not the average since 0

    def test_eta_counts_only_deliverable_messages(self) -> None:
        progress = self._begun()
        progress.sample(1.0, 10_500, 0, 40_000, 10_000)
        assert progress.eta_s(1.0, 10_500, 0, 10_000) == 3.0
        assert progress.eta_s(1.0, 10_500, 0, 40_000) is None

    def test_a_backlog_that_waits_for_interest_says_nothing(self) -> None:
        progress = self._begun()
        assert progress.sample(1.0, 500, 9000, self.BACKLOG, self.BACKLOG) is None
        assert not progress.active

    def test_an_interrupted_replay_says_how_far_it_got(self) -> None:
        progress = self._begun()
        assert progress.sent_batch() is not None
        line = progress.interrupt(20_500, 409_000, "link down")
        assert line == (
            "replay interrupted (link down): sent 20000 of 150000 buffered messages (400000 bytes)"
        )
        assert progress.last is not None
        assert progress.last.status()["ended"] == "link down"

    def test_short_replays_stay_quiet(self) -> None:
        progress = Progress()
        progress.begin(0.0, 0, 0, LOG_MIN_MSGS - 1, 0)
        assert progress.sent_batch() is None
        assert progress.sample(1.0, LOG_MIN_MSGS - 1, 0, 0, 0) is None
        assert progress.last is not None
        assert progress.last.status()["sent"] == {"msgs": LOG_MIN_MSGS - 1, "bytes": 0}


def test_go_durations() -> None:
    assert go_duration(None) is None
    assert go_duration(0.000189) == "189µs"
    assert go_duration(0.0015) == "1.5ms"
    assert go_duration(2.5) == "2.5s"
