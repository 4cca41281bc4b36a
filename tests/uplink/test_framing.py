"""The message framer (uplink and data link): same framing as the shared parser, at every split."""

from __future__ import annotations

import pytest

from leafnode.proto import (
    Info,
    Kind,
    LSub,
    MessageFrame,
    MessageFramer,
    Ping,
    RemoteProtocolError,
    Run,
    encode_run,
)

CORPUS = (
    b'INFO {"server_id":"X"} \r\n'
    b"LS+ a.b\r\n"
    b"LMSG a.b 5\r\nhello\r\n"
    b"LMSG a.b + r.1 q1 q2 0\r\n\r\n"
    b"PING\r\n"
    b"HMSG a.c | g 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    b"lmsg\ta.d 2\r\nok\r\n"
    b"LMSG big 3\r\n\r\n\r\r\n"
)

Item = tuple[object, ...]


def frame(chunks: list[bytes]) -> list[Item]:
    framer = MessageFramer(Kind.LEAF, max_payload=1 << 20, max_control_line=4096)
    seen: list[Item] = []

    def on_msg(msg: MessageFrame) -> bool:
        assert msg.account == b""
        verb = b"HMSG" if msg.headers else b"LMSG"
        seen.append((verb, tuple(msg.args), msg.data, msg.wire))
        return False

    for chunk in chunks:
        framer.feed(chunk)
        framer.drain(on_msg, lambda event: seen.append((event,)))
    return seen


def test_messages_and_events_in_order() -> None:
    items = frame([CORPUS])
    assert items[0] == (Info({"server_id": "X"}),)
    assert items[1] == (LSub(b"a.b"),)
    assert items[2] == (b"LMSG", (b"a.b", b"5"), b"hello", b"LMSG a.b 5\r\nhello\r\n")
    assert items[3][:3] == (b"LMSG", (b"a.b", b"+", b"r.1", b"q1", b"q2", b"0"), b"")
    assert items[4] == (Ping(),)
    assert items[5][:3] == (b"HMSG", (b"a.c", b"|", b"g", b"12", b"14"), b"NATS/1.0\r\n\r\nhi")
    # nats-server also accepts a lower-case verb and a tab.
    assert items[6][:3] == (b"LMSG", (b"a.d", b"2"), b"ok")
    # A payload may contain CR and LF.
    assert items[7][2] == b"\r\n\r"
    assert len(items) == 8


def test_every_split_gives_the_same_result() -> None:
    whole = frame([CORPUS])
    for cut in range(1, len(CORPUS)):
        assert frame([CORPUS[:cut], CORPUS[cut:]]) == whole, cut
    assert frame([CORPUS[i : i + 1] for i in range(len(CORPUS))]) == whole


def test_large_message_in_many_pieces() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = b"LMSG big %d\r\n%b\r\nPING\r\n" % (len(payload), payload)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    items = frame(chunks)
    assert items[0][2] == payload
    assert items[1] == (Ping(),)


@pytest.mark.parametrize(
    "data",
    [
        b"LMSG a.b 5\r\nhelloXX",  # no CRLF after the payload
        b"LMSG a.b x\r\n",  # size is not a number
        b"LMSG a.b 2000000\r\n",  # over max_payload
        b"BOGUS\r\n",  # unknown verb, through the shared parser
        b"x" * 5000,  # a control line that never ends
    ],
)
def test_framing_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        frame([data])


def test_handshake_reads_control_lines_one_at_a_time() -> None:
    framer = MessageFramer(Kind.LEAF, max_payload=1024, max_control_line=4096)
    framer.feed(b'INFO {"a":1} \r\nLS+ x\r\nLMSG x 1\r\n')
    assert framer.next_event() == Info({"a": 1})
    # What follows stays in the framer for the session.
    seen: list[object] = []
    framer.feed(b"y\r\n")

    def on_msg(msg: MessageFrame) -> bool:
        seen.append(msg.data)
        return False

    framer.drain(on_msg, seen.append)
    assert seen == [LSub(b"x"), b"y"]


def test_a_message_during_the_handshake_is_an_error() -> None:
    framer = MessageFramer(Kind.LEAF, max_payload=1024, max_control_line=4096)
    framer.feed(b"LMSG x 1\r\ny\r\n")
    with pytest.raises(RemoteProtocolError):
        framer.next_event()


# -- verbatim runs and the data link's accounts ---------------------------------

LINK = (
    b"ACC $G\r\n"
    b"LMSG a.b 2\r\nhi\r\n"
    b"HMSG a.b r 12 14\r\nNATS/1.0\r\n\r\nho\r\n"
    b"LMSG $drop 1\r\nx\r\n"
    b"LMSG a.c | q 3\r\nabc\r\n"
    b"LS+ $G a.>\r\n"
    b"LMSG a.d 1\r\ny\r\n"
    b"ACC B\r\n"
    b"LMSG b.a 1\r\nz\r\n"
)


def keep_all(msg: MessageFrame) -> bool:
    return True


def ignore(event: object) -> None:
    pass


def relay(chunks: list[bytes]) -> list[Item]:
    """What a relay keeping every message but ``$drop`` sees, and forwards verbatim."""
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    seen: list[Item] = []

    def on_msg(msg: MessageFrame) -> bool:
        assert msg.account in (b"$G", b"B")
        return msg.subject != b"$drop"

    def on_run(run: Run) -> None:
        seen.append(("run", run.account, run.data, run.msgs, run.size))

    for chunk in chunks:
        framer.feed(chunk)
        framer.drain(on_msg, lambda event: seen.append((event,)), on_run)
    return seen


def merged(items: list[Item]) -> list[Item]:
    """Adjacent runs of one account joined: how a read is split changes only that."""
    out: list[Item] = []
    for item in items:
        if out and item[0] == "run" and out[-1][0] == "run" and out[-1][1] == item[1]:
            prev = out.pop()
            item = ("run", item[1], prev[2] + item[2], prev[3] + item[3], prev[4] + item[4])  # type: ignore[operator]
        out.append(item)
    return out


def test_runs_keep_order_with_events_and_accounts() -> None:
    items = relay([LINK])
    assert items == [
        ("run", b"$G", b"LMSG a.b 2\r\nhi\r\nHMSG a.b r 12 14\r\nNATS/1.0\r\n\r\nho\r\n", 2, 16),
        ("run", b"$G", b"LMSG a.c | q 3\r\nabc\r\n", 1, 3),
        (LSub(b"a.>", account=b"$G"),),
        ("run", b"$G", b"LMSG a.d 1\r\ny\r\n", 1, 1),
        ("run", b"B", b"LMSG b.a 1\r\nz\r\n", 1, 1),
    ]


def test_runs_are_the_same_at_every_split() -> None:
    whole = merged(relay([LINK]))
    for cut in range(1, len(LINK)):
        assert merged(relay([LINK[:cut], LINK[cut:]])) == whole, cut


def test_a_whole_read_of_kept_messages_is_one_run() -> None:
    data = b"ACC $G\r\n"
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    framer.feed(data)
    framer.drain(keep_all, ignore)
    read = b"LMSG a 1\r\nx\r\n" * 3
    runs: list[bytes] = []
    framer.feed(read)
    framer.drain(keep_all, ignore, lambda run: runs.append(run.data))
    assert runs == [read]
    # The whole read, not a copy of it.
    framer.feed(read)
    framer.drain(keep_all, ignore, lambda run: runs.append(run.data))
    assert runs[1] is read


@pytest.mark.parametrize(
    "data",
    [
        b"LMSG a.b 2\r\nhi\r\n",  # a message before any ACC
        b"LMSG $G a.b 2\r\nhi\r\n",  # the account-first form is gone too
        b"ACC\r\n",  # no account
        b"ACC a b\r\n",  # two accounts
        b"ACC $G\r\nHMSG a.b 20 14\r\nNATS/1.0\r\n\r\nho\r\n",  # header size over the total
        b"ACC $G\r\nLMSG a.b 1234567890\r\n",  # ten digits
    ],
)
def test_data_link_errors(data: bytes) -> None:
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    framer.feed(data)
    with pytest.raises(RemoteProtocolError):
        framer.drain(lambda msg: False, ignore)


def test_acc_is_unknown_on_a_hub_link() -> None:
    with pytest.raises(RemoteProtocolError):
        frame([b"ACC $G\r\n"])


def test_keep_rule_skips_on_msg_for_plain_subjects_only() -> None:
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    asked: list[bytes] = []
    rules: list[bytes | None] = []
    runs: list[bytes] = []

    def on_msg(msg: MessageFrame) -> bool:
        asked.append(msg.subject)
        return True

    def rule(account: bytes | None) -> int:
        rules.append(account)
        return 3 if account == b"A" else -1

    framer.feed(
        b"ACC A\r\nLMSG a 3\r\nabc\r\nLMSG b 4\r\nabcd\r\nLMSG $c 1\r\nx\r\n"
        b"ACC B\r\nLMSG d 1\r\ny\r\n"
    )
    framer.drain(on_msg, ignore, lambda run: runs.append(run.data), rule)
    # Only the message over the size, the "$" subject and everything of B were asked about.
    assert asked == [b"b", b"$c", b"d"]
    assert rules == [b"A", b"B"]
    assert runs == [
        b"LMSG a 3\r\nabc\r\nLMSG b 4\r\nabcd\r\nLMSG $c 1\r\nx\r\n",
        b"LMSG d 1\r\ny\r\n",
    ]


# -- the keep rule's no-split path and the data link's RUN hint -----------------

# Lines the keep rule's path must read exactly as the full parse does (kept,
# asked about, or refused), whatever their spacing.
ODD_LINES = (
    b"LMSG a 1\r\nx\r\n",
    b"LMSG a r 1\r\nx\r\n",
    b"LMSG a + r q 1\r\nx\r\n",
    b"LMSG  a 1\r\nx\r\n",  # two blanks after the verb
    b"LMSG a  1\r\nx\r\n",  # two blanks before the size
    b"LMSG a\t1\r\nx\r\n",  # a tab
    b"LMSG a 1 \r\nx\r\n",  # a blank after the size
    b"LMSG \ta 1\r\nx\r\n",
    b"LMSG $a 1\r\nx\r\n",  # "$": asked about
    b"LMSG a 4\r\nabcd\r\n",  # over the rule: asked about
    b"LMSG a 1\r\nxy\r\n",  # no CRLF after the payload
    b"LMSG a +1\r\nx\r\n",  # int() would take it; the parse does not
    b"LMSG 1\r\nx\r\n",  # no subject
    b"LMSG a 2000\r\n",  # over max_payload
    b"lmsg a 1\r\nx\r\n",
)


def keep_outcome(data: bytes, *, rule: bool) -> tuple[object, ...]:
    """What a relay that keeps all but "$" and over 3 bytes sees of ``data``."""
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    framer.feed(b"ACC A\r\n")
    framer.drain(keep_all, ignore)
    asked: list[bytes] = []
    runs: list[tuple[bytes, int, int]] = []

    def on_msg(msg: MessageFrame) -> bool:
        asked.append(msg.wire)
        return msg.subject[0] != 36 and msg.size <= 3

    framer.feed(data)
    try:
        framer.drain(
            on_msg,
            ignore,
            lambda run: runs.append((run.data, run.msgs, run.size)),
            (lambda account: 3) if rule else None,
        )
    except RemoteProtocolError as exc:
        return ("error", str(exc), tuple(runs))
    # With the rule, a kept message is not asked about: compare what was kept.
    kept = b"".join(data for data, _, _ in runs)
    refused = [wire for wire in asked if wire not in kept]
    return ("ok", kept, sum(m for _, m, _ in runs), sum(s for _, _, s in runs), refused)


@pytest.mark.parametrize("line", ODD_LINES)
def test_the_keep_rule_reads_a_line_as_the_full_parse(line: bytes) -> None:
    data = line + b"LMSG b 1\r\nz\r\n"
    assert keep_outcome(data, rule=True) == keep_outcome(data, rule=False)


def run_of(*lines: bytes) -> bytes:
    body = b"".join(lines)
    sizes = [len(line.split(b"\r\n", 1)[1]) - 2 for line in lines]
    return encode_run(len(body), len(lines), sum(sizes), max(sizes)) + body


RUN_LINES = (
    b"LMSG a 3\r\nabc\r\n",
    b"LMSG a.b r 2\r\nhi\r\n",
    b"HMSG h 12 12\r\nNATS/1.0\r\n\r\n\r\n",
)


def data_link(
    chunks: list[bytes], rule: int | None
) -> tuple[list[bytes], list[tuple[bytes, int, int]]]:
    """Messages asked about, and runs, of a relay keeping everything (``rule``: its rule)."""
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    asked: list[bytes] = []
    runs: list[tuple[bytes, int, int]] = []

    def on_msg(msg: MessageFrame) -> bool:
        asked.append(msg.wire)
        return True

    for chunk in chunks:
        framer.feed(chunk)
        framer.drain(
            on_msg,
            ignore,
            lambda run: runs.append((run.data, run.msgs, run.size)),
            None if rule is None else (lambda account: rule),
        )
    return asked, runs


def test_a_run_the_rule_covers_is_taken_whole_at_every_split() -> None:
    body = b"".join(RUN_LINES)
    data = b"ACC A\r\n" + run_of(*RUN_LINES) + b"LMSG $x 1\r\ny\r\n"
    expected = ([b"LMSG $x 1\r\ny\r\n"], [(body, 3, 17), (b"LMSG $x 1\r\ny\r\n", 1, 1)])
    assert data_link([data], 12) == expected
    for cut in range(1, len(data)):
        assert data_link([data[:cut], data[cut:]], 12) == expected, cut


@pytest.mark.parametrize("rule", [None, -1, 11])
def test_a_run_the_rule_does_not_cover_is_read_message_by_message(rule: int | None) -> None:
    body = b"".join(RUN_LINES)
    data = b"ACC A\r\n" + run_of(*RUN_LINES)
    asked, runs = data_link([data], rule)
    if rule is None or rule < 0:
        assert asked == list(RUN_LINES)
    else:
        # Only the message over the rule is asked about.
        assert asked == [RUN_LINES[2]]
    # The RUN line itself never leaves in a run.
    assert b"".join(run for run, _, _ in runs) == body
    assert sum(msgs for _, msgs, _ in runs) == 3


@pytest.mark.parametrize(
    "data",
    [
        b"RUN 13 1 1 1\r\nLMSG a 1\r\nx\r\n",  # before any ACC
        b"ACC A\r\nRUN 13 1 1\r\n",  # a field missing
        b"ACC A\r\nRUN 13 1 1 x\r\n",  # not a number
        b"ACC A\r\nRUN 13 1 1 -1\r\n",
    ],
)
def test_bad_run_lines(data: bytes) -> None:
    framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=4096, accounts=True)
    framer.feed(data)
    with pytest.raises(RemoteProtocolError):
        framer.drain(keep_all, ignore, lambda run: None, lambda account: 1024)
