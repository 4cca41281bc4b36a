"""Which header blocks start a message trace (nats-server's genHeaderMapIfTraceHeadersPresent)."""

from __future__ import annotations

import pytest

from services.router.msgtrace import parse_trace_headers


def test_headers_kept_as_sent_with_values_trimmed() -> None:
    block = b"NATS/1.0\r\nNats-Trace-Dest:  t.d \r\nX-Thing: a\r\nX-Thing:b\r\n\r\n"
    assert parse_trace_headers(block) == {
        "Nats-Trace-Dest": ["t.d"],
        "X-Thing": ["a", "b"],
    }


@pytest.mark.parametrize(
    "block",
    [
        b"NATS/1.0\r\nX: y\r\n\r\n",  # no destination
        b"NATS/1.0\r\nnats-trace-dest: t\r\n\r\n",  # the name is case-sensitive
        b"NATS/1.0\r\nNats-Trace-Only: true\r\n\r\n",  # trace-only alone is no trace
        b"NATS/1.0\r\nNats-Trace-Dest: trace disabled\r\n\r\n",  # switched off upstream
        b"NATS/1.0 503\r\nNats-Trace-Dest: t\r\n\r\n",  # a status line
    ],
)
def test_not_traced(block: bytes) -> None:
    assert parse_trace_headers(block) is None
