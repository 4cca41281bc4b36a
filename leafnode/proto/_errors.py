"""Protocol errors (h11's split: our misuse vs. the peer's violation).

``RemoteProtocolError`` is raised by the parser when the peer breaks the
protocol. ``err_text`` is exactly what nats-server puts between the quotes of
its ``-ERR '...'`` reply, so a service can answer ``-ERR`` and close without
mapping errors itself. ``snippet`` is at most 32 bytes of the offending input
(nats-server's PROTO_SNIPPET_SIZE) for the log line.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]

SNIPPET_SIZE = 32


class ProtocolError(Exception):
    """Base class of every protocol error.

    Attributes:
        err_text: the text nats-server sends in ``-ERR '<err_text>'``.
        snippet: up to 32 bytes of the input that caused it (may be empty).
    """

    def __init__(self, message: str, *, err_text: str, snippet: bytes = b"") -> None:
        super().__init__(message)
        self.err_text = err_text
        self.snippet = bytes(snippet[:SNIPPET_SIZE])

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} {self.snippet!r}" if self.snippet else base


class LocalProtocolError(ProtocolError):
    """Our own code asked for something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""
