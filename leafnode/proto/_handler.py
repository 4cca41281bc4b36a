"""What a verb handler sees of the parser: the ``Protocol`` between ``_parser`` and ``_verbs``.

The parser (``_parser``) looks each control line's verb up in a table of
handlers (``_verbs``); a handler reads the parser's buffer, moves its position
and may enter its payload state. The handlers are typed against this
``Protocol`` rather than the ``Parser`` class, so the import goes one way
(``_parser`` -> ``_verbs`` -> ``_handler``), type-only imports included
(``scripts/check-import-cycles``); mypy checks that ``Parser`` satisfies it
where the parser calls a handler. The members are the parser's private state
on purpose: the two modules are one parser split in two files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._errors import RemoteProtocolError
    from ._events import Event

    #: ``(parser, parts, line, start)``: ``parts`` is the whitespace-split
    #: control line with the verb first, ``line`` the raw line without its
    #: line end, ``start`` the offset in the buffer right after the line.
    Handler = Callable[["VerbParser", list[bytes], bytes, int], "Event | None"]

__all__: list[str] = []


class VerbParser(Protocol):
    """The parser's state and helpers that the verb handlers use."""

    max_payload: int
    _buf: bytes  # the bytes fed, from _pos on not yet consumed
    _pos: int  # first unconsumed byte of _buf
    _scan: int  # where the next search for a line end starts
    _base: int  # index of the subject on leaf verbs (INTERNAL: account first)
    route_account: bytes | None  # Kind.ROUTE: the account of a dedicated route

    def _error_at(self, err_text: str, message: str, snippet: bytes) -> RemoteProtocolError: ...

    def _bad_args(self, parts: list[bytes], line: bytes, what: str) -> RemoteProtocolError: ...

    def _too_large(self, size: int, line: bytes) -> RemoteProtocolError: ...

    def _defer(
        self,
        start: int,
        size: int,
        ctor: Callable[..., Event],
        head: tuple[object, ...],
        tail: tuple[object, ...] = (),
    ) -> Event | None: ...
