"""The control kind on the shell, in-process: answers in order, bad frames, EOF (issue 13).

``router.ctl`` and ``uplink.ctl`` serve ``leafnode.ipc`` request frames through
``leafnode.link.serve_control``; the real sockets are covered by
tests/router/test_control.py and tests/buffer/test_control.py. Here the
connection runs over ``trio.testing.memory_stream_pair`` in virtual time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from leafnode.ipc import FrameDecoder, encode_frame
from leafnode.link import serve_control

if TYPE_CHECKING:
    from leafnode.ipc import Frame


async def _frames(stream: trio.abc.ReceiveStream, n: int) -> list[Frame]:
    decoder = FrameDecoder()
    got: list[Frame] = []
    while len(got) < n:
        data = await stream.receive_some()
        assert data, f"closed after {len(got)} of {n} answers"
        decoder.feed(bytes(data))
        while (frame := decoder.next_frame()) is not None:
            got.append(frame)
    return got


async def _echo_slow_first(frame: Frame) -> bytes:
    """Answers ``echo`` with the request's id; the first request takes 5 s."""
    if frame.id == 1:
        await trio.sleep(5)
    return encode_frame("echoed", frame.id, {"at": trio.current_time()})


@pytest.mark.trio
async def test_answers_come_in_request_order_even_when_one_is_slow(
    autojump_clock: trio.abc.Clock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    reasons: list[str] = []

    async def serve() -> None:
        reasons.append(await serve_control(ours, _echo_slow_first, name="test.ctl"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        # Three requests in one write: the slow first one holds the other two.
        await theirs.send_all(b"".join(encode_frame("echo", i) for i in (1, 2, 3)))
        answers = await _frames(theirs, 3)
        assert [a.id for a in answers] == [1, 2, 3]
        assert all(float(a.fields["at"]) >= 5 for a in answers)  # type: ignore[arg-type]
        await theirs.aclose()
    assert reasons == ["control client closed"]


@pytest.mark.trio
async def test_a_bad_frame_ends_the_connection_after_the_good_ones_are_answered(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    reasons: list[str] = []

    async def answer(frame: Frame) -> bytes:
        return encode_frame("ok", frame.id)

    async def serve() -> None:
        reasons.append(await serve_control(ours, answer, name="test.ctl"))

    caplog.set_level(logging.ERROR)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await theirs.send_all(encode_frame("ping", 7) + b"\xff\xff\xff\xffnot a frame")
        answers = await _frames(theirs, 1)
        assert [a.id for a in answers] == [7]
        assert await theirs.receive_some() == b""  # then closed by us
    assert len(reasons) == 1
    assert reasons[0].startswith("bad frame: ")
    assert "test.ctl: bad frame from a client" in caplog.text


@pytest.mark.trio
async def test_a_client_that_goes_away_mid_answer_ends_it_quietly(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    reasons: list[str] = []

    async def serve() -> None:
        reasons.append(await serve_control(ours, _echo_slow_first, name="test.ctl"))

    caplog.set_level(logging.DEBUG)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await theirs.send_all(encode_frame("echo", 1))
        await theirs.aclose()  # gone while request 1 is still being answered
    assert len(reasons) == 1
    assert "bad frame" not in caplog.text
    assert "Traceback" not in caplog.text
