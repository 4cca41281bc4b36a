"""Property tests: encode/parse round trips, and random input never escapes the error model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leafnode.proto import (
    Connect,
    Err,
    Event,
    HMsg,
    HPub,
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
    Pub,
    RemoteProtocolError,
    RHMsg,
    RLMsg,
    RLSub,
    RLUnsub,
    RMsg,
    RSub,
    RUnsub,
    Sub,
    Unsub,
    encode_event,
)
from tests.unit.test_proto_golden import load_transcripts

# The machine is shared: no deadlines, modest example counts.
FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

_WHITESPACE = b" \t\r\n\x0b\x0c"  # what bytes.split() splits on

tokens = st.binary(min_size=1, max_size=10).filter(lambda t: not any(c in _WHITESPACE for c in t))
maybe_token = st.none() | tokens
payloads = st.binary(max_size=80) | st.sampled_from([b"", b"\r\n", b"\r\n\r\n", b"PING\r\n"])
queue_lists = st.lists(tokens, max_size=4).map(tuple)
# parseSize takes at most 9 digits.
sizes = st.integers(min_value=0, max_value=999_999_999)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@st.composite
def with_headers(draw: st.DrawFn) -> tuple[int, bytes]:
    data = draw(payloads)
    return draw(st.integers(0, len(data))), data


@st.composite
def hpubs(draw: st.DrawFn) -> HPub:
    hdr, data = draw(with_headers())
    return HPub(draw(tokens), draw(maybe_token), hdr, data)


@st.composite
def hmsgs(draw: st.DrawFn) -> HMsg:
    hdr, data = draw(with_headers())
    return HMsg(draw(tokens), draw(tokens), draw(maybe_token), hdr, data)


@st.composite
def lsubs(draw: st.DrawFn, account: st.SearchStrategy[bytes | None]) -> LSub:
    if draw(st.booleans()):
        return LSub(draw(tokens), draw(tokens), draw(sizes), draw(account))
    return LSub(draw(tokens), None, None, draw(account))


@st.composite
def lhmsgs(draw: st.DrawFn) -> LHMsg:
    hdr, data = draw(with_headers())
    return LHMsg(draw(tokens), draw(maybe_token), draw(queue_lists), hdr, data)


errs = st.builds(
    Err,
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=20),
)
common = st.sampled_from([Ping(), Pong()])


def interest_events(account: st.SearchStrategy[bytes | None]) -> st.SearchStrategy[Event]:
    return st.one_of(lsubs(account), st.builds(LUnsub, tokens, maybe_token, account))


def leaf_events() -> st.SearchStrategy[Event]:
    return st.one_of(
        interest_events(st.none()),
        st.builds(LMsg, tokens, maybe_token, queue_lists, payloads),
        lhmsgs(),
    )


@st.composite
def route_messages(draw: st.DrawFn) -> Event:
    hdr, data = draw(with_headers())
    route = (draw(tokens), draw(tokens), draw(maybe_token), draw(queue_lists))
    match draw(st.sampled_from(["rmsg", "hmsg", "lmsg"])):
        case "rmsg":
            return RMsg(*route, draw(payloads))
        case "hmsg":
            return RHMsg(*route, hdr, data)
        case _:
            return RLMsg(draw(tokens), *route, hdr, data)


def route_events() -> st.SearchStrategy[Event]:
    queued = st.tuples(tokens, sizes) | st.just((None, None))
    return st.one_of(
        st.builds(lambda a, s, qw: RSub(a, s, *qw), tokens, tokens, queued),
        st.builds(RUnsub, tokens, tokens, maybe_token),
        st.builds(lambda o, a, s, qw: RLSub(o, a, s, *qw), tokens, tokens, tokens, queued),
        st.builds(RLUnsub, tokens, tokens, tokens, maybe_token),
        route_messages(),
    )


EVENTS: dict[Kind, st.SearchStrategy[Event]] = {
    Kind.CLIENT: st.one_of(
        common,
        st.builds(Connect, json_objects),
        st.builds(Pub, tokens, maybe_token, payloads),
        hpubs(),
        st.builds(Sub, tokens, maybe_token, tokens),
        st.builds(Unsub, tokens, st.none() | st.integers(1, 999_999_999)),
    ),
    Kind.SERVER: st.one_of(
        common,
        st.builds(Info, json_objects),
        st.builds(Msg, tokens, tokens, maybe_token, payloads),
        hmsgs(),
        st.just(Ok()),
        errs,
    ),
    Kind.LEAF: st.one_of(
        common,
        st.builds(Info, json_objects),
        st.builds(Connect, json_objects),
        st.just(Ok()),
        errs,
        leaf_events(),
    ),
    # The data link's messages are MessageFramer's (tests/uplink/test_framing.py).
    Kind.INTERNAL: st.one_of(common, st.builds(Info, json_objects), errs, interest_events(tokens)),
    Kind.ROUTE: st.one_of(
        common,
        st.builds(Info, json_objects),
        st.builds(Connect, json_objects),
        st.just(Ok()),
        errs,
        route_events(),
    ),
}


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def parse_chunks(parser: Parser, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        parser.feed(chunk)
        while (event := parser.next_event()) is not None:
            events.append(event)
        parser.compact()
    return events


def _roundtrip(kind: Kind, events: list[Event], cuts: list[int]) -> None:
    data = b"".join(encode_event(e) for e in events)
    parser = Parser(kind, max_control_line=1 << 20, max_payload=1 << 20)
    assert parse_chunks(parser, chunked(data, cuts)) == events
    assert parser.buffered == 0


@FUZZ
@given(st.lists(EVENTS[Kind.CLIENT], max_size=8), st.lists(st.integers(0, 10**6), max_size=6))
def test_roundtrip_client(events: list[Event], cuts: list[int]) -> None:
    _roundtrip(Kind.CLIENT, events, cuts)


@FUZZ
@given(st.lists(EVENTS[Kind.SERVER], max_size=8), st.lists(st.integers(0, 10**6), max_size=6))
def test_roundtrip_server(events: list[Event], cuts: list[int]) -> None:
    _roundtrip(Kind.SERVER, events, cuts)


@FUZZ
@given(st.lists(EVENTS[Kind.LEAF], max_size=8), st.lists(st.integers(0, 10**6), max_size=6))
def test_roundtrip_leaf(events: list[Event], cuts: list[int]) -> None:
    _roundtrip(Kind.LEAF, events, cuts)


@FUZZ
@given(st.lists(EVENTS[Kind.INTERNAL], max_size=8), st.lists(st.integers(0, 10**6), max_size=6))
def test_roundtrip_internal(events: list[Event], cuts: list[int]) -> None:
    _roundtrip(Kind.INTERNAL, events, cuts)


@FUZZ
@given(st.lists(EVENTS[Kind.ROUTE], max_size=8), st.lists(st.integers(0, 10**6), max_size=6))
def test_roundtrip_route(events: list[Event], cuts: list[int]) -> None:
    _roundtrip(Kind.ROUTE, events, cuts)


# -- random input: only events or RemoteProtocolError, and bounded buffers -----

LIMITS = {"max_control_line": 64, "max_payload": 128, "max_buffer": 1024}

# Fragments that reach deep parser states more often than uniform bytes do.
fragments = st.sampled_from(
    [
        b"PUB ", b"HPUB ", b"SUB ", b"UNSUB ", b"MSG ", b"HMSG ", b"LMSG ", b"LS+ ", b"LS- ",
        b"CONNECT ", b"INFO ", b"PING", b"PONG", b"+OK", b"-ERR ", b"pub ", b"lmsg ",
        b"RS+ ", b"RS- ", b"RMSG ", b"$G ",
        b"a", b"a.b", b"q", b"+ ", b"| ", b" ", b"\t", b"0", b"1", b"2", b"12", b"100", b"9999",
        b"-1", b"{}", b'{"a":1}', b"[", b"null", b"'x'", b"\r\n", b"\r", b"\n", b"\x00", b"\xff",
    ]
)  # fmt: skip
random_input = st.lists(fragments | st.binary(max_size=8), max_size=60).map(b"".join) | st.binary(
    max_size=400
)


def _fuzz(kind: Kind, data: bytes, cuts: list[int]) -> None:
    parser = Parser(kind, **LIMITS)
    error: RemoteProtocolError | None = None
    try:
        for chunk in chunked(data, cuts):
            parser.feed(chunk)
            assert parser.buffered <= LIMITS["max_buffer"]
            while (event := parser.next_event()) is not None:
                assert isinstance(
                    event,
                    Info | Connect | Pub | HPub | Sub | Unsub | Msg | HMsg | Ping | Pong | Ok | Err
                    | LSub | LUnsub | LMsg | LHMsg
                    | RSub | RUnsub | RLSub | RLUnsub | RMsg | RHMsg | RLMsg,  # Kind.ROUTE
                )  # fmt: skip
            parser.compact()
            assert parser.buffered <= LIMITS["max_buffer"]
    except RemoteProtocolError as exc:
        error = exc
    if error is not None:
        assert isinstance(error.err_text, str)
        assert len(error.snippet) <= 32
        with pytest.raises(RemoteProtocolError) as again:
            parser.next_event()
        assert again.value is error  # the error state is sticky


@FUZZ
@given(st.sampled_from(list(Kind)), random_input, st.lists(st.integers(0, 10**6), max_size=8))
def test_random_input_only_yields_events_or_remote_errors(
    kind: Kind, data: bytes, cuts: list[int]
) -> None:
    _fuzz(kind, data, cuts)


@FUZZ
@given(st.sampled_from(list(Kind)), st.lists(fragments, min_size=1, max_size=200).map(b"".join))
def test_one_byte_at_a_time_never_buffers_beyond_the_limit(kind: Kind, data: bytes) -> None:
    _fuzz(kind, data, list(range(len(data))))


@FUZZ
@given(st.sampled_from(list(Kind)), random_input, st.lists(st.integers(0, 10**6), max_size=8))
def test_chunking_does_not_change_the_outcome(kind: Kind, data: bytes, cuts: list[int]) -> None:
    def outcome(chunks: list[bytes]) -> tuple[list[Event], str | None]:
        parser = Parser(kind, max_control_line=64, max_payload=128)
        events: list[Event] = []
        try:
            for chunk in chunks:
                parser.feed(chunk)
                while (event := parser.next_event()) is not None:
                    events.append(event)
                parser.compact()
        except RemoteProtocolError as exc:
            return events, exc.err_text
        return events, None

    # Limits are checked on partial lines too, but a partial line over a limit
    # is over it once complete: the outcome never depends on the chunking.
    assert outcome(chunked(data, cuts)) == outcome([data])


# -- valid streams with bytes changed: events or a protocol error, chunking-proof --

BIG = {"max_control_line": 4096, "max_payload": 1 << 16, "max_buffer": 1 << 18}
GOLDEN_STREAMS = {
    Kind.SERVER: list(load_transcripts("server_to_client.txt").values()),
    Kind.LEAF: list(load_transcripts("hub_to_leaf.txt").values()),
}


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """A few bytes of ``data`` overwritten, inserted or deleted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        match draw(st.sampled_from(["set", "insert", "delete"])):
            case "set" if at < len(out):
                out[at] = draw(st.integers(0, 255))
            case "insert":
                out[at:at] = draw(fragments | st.binary(min_size=1, max_size=4))
            case _:
                del out[at : at + draw(st.integers(1, 8))]
    return bytes(out)


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(st.sampled_from(list(Kind)))
    if kind in GOLDEN_STREAMS and draw(st.booleans()):
        data = draw(st.sampled_from(GOLDEN_STREAMS[kind]))  # real nats-server bytes
    else:
        events = draw(st.lists(EVENTS[kind], min_size=1, max_size=8))
        data = b"".join(encode_event(e) for e in events)
    return kind, mutate(draw, data)


def outcome(kind: Kind, chunks: list[bytes]) -> tuple[list[Event], str | None]:
    parser = Parser(kind, **BIG)
    events: list[Event] = []
    error: RemoteProtocolError | None = None
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (event := parser.next_event()) is not None:
                events.append(event)
            parser.compact()
            assert parser.buffered <= BIG["max_buffer"]
    except RemoteProtocolError as exc:
        error = exc
    if error is None:
        return events, None
    assert len(error.snippet) <= 32
    with pytest.raises(RemoteProtocolError):
        parser.next_event()
    return events, error.err_text


@FUZZ
@given(mutated_streams(), st.lists(st.integers(0, 10**6), max_size=8))
def test_mutated_valid_streams_give_events_or_a_protocol_error(
    stream: tuple[Kind, bytes], cuts: list[int]
) -> None:
    kind, data = stream
    assert outcome(kind, chunked(data, cuts)) == outcome(kind, [data])


@pytest.mark.parametrize("kind", list(GOLDEN_STREAMS))
def test_real_streams_split_anywhere_give_the_same_events(kind: Kind) -> None:
    for data in GOLDEN_STREAMS[kind]:
        whole = outcome(kind, [data])
        assert whole[1] is None
        for cut in range(len(data) + 1):
            assert outcome(kind, [data[:cut], data[cut:]]) == whole
