"""The parser against bytes and answers captured from real nats-server 2.15.1 and 2.9.10.

``golden/client_errors.txt`` records what nats-server answers to (bad) client
input; the parser must raise with the same ``-ERR`` text, or with ``""`` where
the server closes without one. ``golden/server_to_client.txt`` and
``golden/hub_to_leaf.txt`` are real byte streams the SERVER and LEAF parsers
must read. The file headers say how they were captured.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from leafnode.proto import (
    Err,
    Event,
    HMsg,
    Info,
    Kind,
    LHMsg,
    LMsg,
    LSub,
    LUnsub,
    Msg,
    Ok,
    Parser,
    Ping,
    Pong,
    RemoteProtocolError,
)

GOLDEN = Path(__file__).parent / "golden"
VERSIONS = ("2.15.1", "2.9.10")


def _bytes_expr(node: ast.expr) -> bytes | int:
    """Evaluate the golden file's input expressions: bytes/int literals, + and *."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bytes | int):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = _bytes_expr(node.left), _bytes_expr(node.right)
        if isinstance(node.op, ast.Add) and isinstance(left, bytes) and isinstance(right, bytes):
            return left + right
        if isinstance(node.op, ast.Mult) and isinstance(left, bytes) and isinstance(right, int):
            return left * right
    raise ValueError(f"unsupported input expression: {ast.dump(node)}")


@dataclass
class Case:
    name: str
    setup: str = ""
    data: bytes = b""
    parser: str = ""
    replies: dict[str, tuple[bytes, bool]] = field(default_factory=dict)


def load_cases() -> list[Case]:
    cases: list[Case] = []
    text = (GOLDEN / "client_errors.txt").read_text()
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith("#")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        case = Case(fields["case"], fields["setup"], parser=fields["parser"])
        value = _bytes_expr(ast.parse(fields["input"], mode="eval").body)
        assert isinstance(value, bytes)
        case.data = value
        for version in VERSIONS:
            match = re.fullmatch(r"reply=(.*) closed=(yes|no)", fields[version])
            assert match, fields[version]
            case.replies[version] = (ast.literal_eval(match[1]), match[2] == "yes")
        cases.append(case)
    return cases


CASES = load_cases()


def run(data: bytes, *, bytewise: bool = False) -> tuple[list[Event], RemoteProtocolError | None]:
    parser = Parser(Kind.CLIENT)
    events: list[Event] = []
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (event := parser.next_event()) is not None:
                events.append(event)
            parser.compact()
    except RemoteProtocolError as exc:
        return events, exc
    return events, None


def server_err_text(reply: bytes) -> str:
    match = re.search(rb"-ERR '(.*)'\r\n", reply)
    assert match, reply
    return match[1].decode()


def test_golden_file_covers_the_brief() -> None:
    names = {case.name for case in CASES}
    assert len(CASES) >= 60
    for must in (
        "unknown verb",
        "PUB missing size",
        "PUB extra arg",
        "PUB non-numeric size",
        "PUB negative size",
        "PUB size over max_payload",
        "PUB wrong bytes after payload",
        "control line of 5000 bytes with CRLF",
        "control line of 5000 bytes without CRLF",
        "SUB too few args",
        "SUB too many args",
        "UNSUB non-numeric max",
        "CONNECT bad JSON",
        "HPUB hdr_len > total_len",
        "verb in lower case",
        "tabs between args",
    ):
        assert must in names


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_client_errors(case: Case) -> None:
    reply, closed = case.replies["2.15.1"]
    # Both versions answered alike; the file would say so otherwise.
    assert case.replies["2.9.10"] == (reply, closed)
    events, error = run(case.data)
    kind, _, text = case.parser.partition(" ")
    if kind == "error":
        assert closed
        assert error is not None, events
        assert error.err_text == server_err_text(reply)
    elif kind == "close":
        assert closed
        assert reply == b""
        assert error is not None, events
        assert error.err_text == ""
    elif kind == "stricter":
        assert error is not None, events
        assert error.err_text == ast.literal_eval(text)
    elif kind == "router":
        assert error is None, error
        assert events
    else:
        assert kind == "ok"
        assert not closed
        assert b"-ERR" not in reply
        assert error is None, error
    if len(case.data) < 10_000:
        byte_events, byte_error = run(case.data, bytewise=True)
        assert byte_events == events
        assert (byte_error and byte_error.err_text) == (error and error.err_text)


# -- real byte streams ---------------------------------------------------------


def load_transcripts(name: str) -> dict[str, bytes]:
    streams: dict[str, list[bytes]] = {}
    current: list[bytes] = []
    for line in (GOLDEN / name).read_text().splitlines():
        if line.startswith("["):
            current = streams.setdefault(line.strip("[]"), [])
        elif line and not line.startswith("#"):
            current.append(ast.literal_eval(line))
    return {version: b"".join(parts) for version, parts in streams.items()}


def read_all(kind: Kind, data: bytes, chunk: int) -> list[Event]:
    parser = Parser(kind)
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])
        while (event := parser.next_event()) is not None:
            events.append(event)
        parser.compact()
    assert parser.buffered == 0
    return events


SERVER_STREAMS = load_transcripts("server_to_client.txt")
LEAF_STREAMS = load_transcripts("hub_to_leaf.txt")


@pytest.mark.parametrize("chunk", [1, 7, 65536])
@pytest.mark.parametrize("version", VERSIONS)
def test_server_to_client_transcript(version: str, chunk: int) -> None:
    events = read_all(Kind.SERVER, SERVER_STREAMS[version], chunk)
    first = events[0]
    assert isinstance(first, Info)
    assert first.options["version"] == version
    assert first.options["headers"] is True
    assert first.options["max_payload"] == 1048576
    assert sum(isinstance(e, Ok) for e in events) >= 5  # verbose: CONNECT, SUBs, PUBs
    infos = [e for e in events[1:] if isinstance(e, Info)]
    if version == "2.15.1":  # connect_info INFO after the first PONG (protocol 1)
        assert [i.options["connect_info"] for i in infos] == [True]
    else:
        assert infos == []
    assert [e for e in events if not isinstance(e, Info | Ok)] == [
        Pong(),
        Msg(b"foo", b"1", b"reply.1", b"hello"),
        Msg(b"foo", b"1", None, b""),
        Msg(b"foo", b"1", None, b"a\r\nb\r\n"),
        HMsg(b"bar", b"2", None, 12, b"NATS/1.0\r\n\r\nhi"),
        HMsg(b"bar", b"2", b"r.2", 18, b"NATS/1.0\r\nK: v\r\n\r\nabc"),
        Err("Invalid Subject"),
        Pong(),
    ]


@pytest.mark.parametrize("chunk", [1, 7, 65536])
@pytest.mark.parametrize("version", VERSIONS)
def test_hub_to_leaf_transcript(version: str, chunk: int) -> None:
    events = read_all(Kind.LEAF, LEAF_STREAMS[version], chunk)
    hello, connect_info = events[0], events[1]
    assert isinstance(hello, Info)
    assert isinstance(connect_info, Info)
    assert len(str(hello.options["nonce"])) == 15
    assert connect_info.options["connect_info"] is True
    assert connect_info.options["remote_account"] == "$G"
    pong = events.index(Pong())
    initial = events[2:pong]
    assert all(isinstance(e, LSub) and e.queue is None for e in initial)
    assert any(e.subject.startswith(b"$LDS.") for e in initial)  # type: ignore[union-attr]
    assert events[pong + 1 :] == [
        LSub(b"hub.x"),
        LSub(b"hub.q", b"workers", 1),
        LSub(b"hub.q", b"workers", 2),
        LMsg(b"to.leaf", None, (), b"hello"),
        LMsg(b"to.leaf", b"rr", (), b""),
        LMsg(b"to.leafq", b"rr", (b"grp",), b"q1"),
        LHMsg(b"to.leafq", b"rr", (b"grp",), 18, b"NATS/1.0\r\nH: v\r\n\r\nq1"),
        LHMsg(b"to.leaf", None, (), 12, b"NATS/1.0\r\n\r\nhi"),
        LUnsub(b"hub.x"),
        Ping(),
    ]
