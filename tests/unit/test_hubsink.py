"""``HubSink``: the router's hub-bound messages, queued on a real ``Outbound``.

Every byte the sink queues must be the data link's dialect as its reference
encoders write it (``encode_acc``, ``encode_lmsg``, ``encode_lhmsg``,
``encode_run``), held in runs that leave behind one ``RUN`` line (none for
a run of one), and must read back through the uplink's ``MessageFramer`` as
the same messages under the same accounts. Runs on the pure module and, in
the compiled pass, on the mypyc-compiled one.
"""

from __future__ import annotations

import trio
import trio.testing

from leafnode.link import Flusher, Outbound, OutboundPolicy
from leafnode.proto import (
    PING,
    Event,
    HubSink,
    Kind,
    MessageFrame,
    MessageFramer,
    Run,
    encode_acc,
    encode_lhmsg,
    encode_lmsg,
    encode_run,
)

HDR = b"NATS/1.0\r\nA: b\r\n\r\n"
# (account, subject, reply, queues, hdr_len, data)
Msg = tuple[bytes, bytes, bytes | None, tuple[bytes, ...], int, bytes]


def _outbound(max_pending: int = 1 << 20) -> Outbound:
    stream, _peer = trio.testing.memory_stream_pair()
    return Outbound(stream, Flusher(), OutboundPolicy(max_pending=max_pending))


def _line(msg: Msg) -> bytes:
    _, subject, reply, queues, hdr_len, data = msg
    if hdr_len:
        return encode_lhmsg(subject, reply, queues, hdr_len, data)
    return encode_lmsg(subject, reply, queues, data)


def _run(lines: list[bytes], msgs: list[Msg]) -> bytes:
    if len(lines) == 1:
        return lines[0]
    size = sum(len(m[5]) for m in msgs)
    return encode_run(sum(map(len, lines)), len(lines), size, max(map(len, lines))) + b"".join(
        lines
    )


def _expected(msgs: list[Msg]) -> bytes:
    """The reference wire: ACC on account changes, runs of non-``$`` subjects."""
    out: list[bytes] = []
    acc = b""
    held: list[Msg] = []

    def end() -> None:
        if held:
            out.append(_run([_line(m) for m in held], held))
            held.clear()

    for msg in msgs:
        if msg[0] != acc:
            end()
            acc = msg[0]
            out.append(encode_acc(acc))
        if msg[1][0] == 36:
            end()
            out.append(_line(msg))
        else:
            held.append(msg)
    end()
    return b"".join(out)


MSGS: list[Msg] = [
    (b"A", b"a.b", None, (), 0, b"hello"),
    (b"A", b"a.b", b"_INBOX.1", (), 0, b"req"),
    (b"A", b"a.c", None, (b"q1", b"q2"), 0, b"grp"),
    (b"A", b"a.c", b"_INBOX.2", (b"q1",), 0, b"grp req"),
    (b"A", b"a.h", None, (), len(HDR), HDR + b"hi"),
    (b"A", b"$JS.API.INFO", b"_INBOX.3", (), 0, b""),
    (b"A", b"a.after", None, (), 0, b"x"),
    (b"B", b"b.one", None, (), 0, b"only"),
    (b"A", b"a.back", None, (), 0, b""),
    (b"A", b"a.back", None, (), len(HDR), HDR),
]


def _write(sink: HubSink, msgs: list[Msg]) -> None:
    for account, subject, reply, queues, hdr_len, data in msgs:
        sink.write_msg(account, subject, reply, queues, hdr_len, data)


def test_the_wire_is_the_reference_encoders_in_runs() -> None:
    outbound = _outbound()
    sink = HubSink(outbound)
    _write(sink, MSGS)
    sink.end_run()
    wire = b"".join(outbound.out)
    assert wire == _expected(MSGS)
    assert outbound.pending == len(wire)
    assert wire.count(b"RUN ") == 2  # a.b..a.h (5 messages), a.back (2); the rest alone


def test_a_run_of_one_has_no_run_line() -> None:
    outbound = _outbound()
    sink = HubSink(outbound)
    sink.write_msg(b"A", b"req.x", b"_INBOX.9", (), 0, b"ping")
    sink.end_run()
    assert b"".join(outbound.out) == encode_acc(b"A") + encode_lmsg(
        b"req.x", b"_INBOX.9", (), b"ping"
    )


def test_a_control_line_ends_the_held_run_first() -> None:
    outbound = _outbound()
    sink = HubSink(outbound)
    msgs: list[Msg] = [(b"A", b"a.1", None, (), 0, b"1"), (b"A", b"a.2", None, (), 0, b"22")]
    _write(sink, msgs)
    sink.write(PING)
    assert b"".join(outbound.out) == _expected(msgs) + PING
    assert sink._run == []


def test_the_outbound_flush_ends_the_held_run() -> None:
    outbound = _outbound()
    sink = HubSink(outbound)
    _write(sink, MSGS[:3])
    # No socket: the flush hands everything to the writer task, in order.
    outbound.flush()
    assert b"".join(outbound.out) == _expected(MSGS[:3])


def test_discard_forgets_the_account_line() -> None:
    outbound = _outbound()
    sink = HubSink(outbound)
    _write(sink, MSGS[:2])
    sink.discard()
    assert outbound.out == []
    assert outbound.pending == 0
    sink.write_msg(b"A", b"a.b", None, (), 0, b"again")
    sink.end_run()
    assert b"".join(outbound.out) == encode_acc(b"A") + encode_lmsg(b"a.b", None, (), b"again")


def test_past_max_pending_the_outbound_policy_applies() -> None:
    outbound = _outbound(max_pending=64)
    slow: list[str] = []
    outbound.on_slow_consumer = slow.append
    sink = HubSink(outbound)
    sink.write_msg(b"A", b"a.b", None, (), 0, b"x" * 100)
    assert slow == ["pending bytes"]


def test_the_uplink_framer_reads_back_the_same_messages() -> None:
    outbound = _outbound()
    sink = HubSink(outbound)
    _write(sink, MSGS)
    sink.end_run()
    framer = MessageFramer(Kind.INTERNAL, max_payload=1 << 20, max_control_line=4096, accounts=True)
    framer.feed(b"".join(outbound.out))
    got: list[tuple[bytes, bytes]] = []  # (account, the message's line as read)

    def on_msg(frame: MessageFrame) -> bool:
        got.append((frame.account, frame.wire))
        return False

    def on_run(run: Run) -> None:
        data = run.data
        pos = 0
        lines = []
        while pos < len(data):
            eol = data.index(b"\r\n", pos)
            size = int(data[data.rindex(b" ", pos, eol) + 1 : eol])
            end = eol + 2 + size + 2
            lines.append(data[pos:end])
            pos = end
        assert len(lines) == run.msgs
        got.extend((run.account, line) for line in lines)

    events: list[Event] = []
    framer.drain(on_msg, events.append, on_run, lambda account: 1 << 20)
    assert events == []
    assert got == [(m[0], _line(m)) for m in MSGS]
