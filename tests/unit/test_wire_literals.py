"""Wire bytes only in ``leafnode.proto`` (issue 13): no protocol verb in a bytes literal elsewhere.

Every line the services write or read is formatted or parsed by
``leafnode.proto``; a verb spelled out in a bytes literal anywhere else in the
shipped code is a second copy of the protocol. The test reads the source with
``tokenize``, so docstrings, comments and ``str`` literals (log texts) do not
count. Test support (``tests/support``, which plays clients and hubs) is
not shipped and not read.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
SHIPPED: Final = ("leafnode", "services")
EXEMPT: Final = ("leafnode/proto/",)
# A verb of the client, leaf, route or data-link protocol, as a word of the literal.
VERB: Final = re.compile(
    rb"(?<![A-Za-z0-9_.$-])(?:[HLR]?MSG|H?PUB|UNSUB|SUB|[LR]S[+-]|ACC|INFO|CONNECT|PING|PONG)"
    rb"(?![A-Za-z0-9_])|\+OK|-ERR"
)


def wire_literals(source: str) -> list[tuple[int, str]]:
    """``(line, literal)`` for every bytes literal of ``source`` that spells a verb."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING:
            continue
        prefix = token.string[: len(token.string) - len(token.string.lstrip("rRbBuUfF"))]
        if "b" not in prefix.lower():
            continue
        value = ast.literal_eval(token.string)
        if isinstance(value, bytes) and VERB.search(value):
            found.append((token.start[0], token.string))
    return found


def test_the_check_sees_a_formatted_message_line() -> None:
    source = 'x = b"MSG %b %b %d\\r\\n%b\\r\\n" % args\ny = b"nats-msg-id"\nz = "MSG_PAYLOAD"\n'
    assert wire_literals(source) == [(1, 'b"MSG %b %b %d\\r\\n%b\\r\\n"')]
    assert wire_literals('w = rb"LMSG "\nv = B"ACC %b\\r\\n"\n') == [
        (1, 'rb"LMSG "'),
        (2, 'B"ACC %b\\r\\n"'),
    ]


def test_no_wire_literal_outside_leafnode_proto() -> None:
    offenders = []
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(EXEMPT):
                continue
            offenders += [
                f"{rel}:{line}: {literal}"
                for line, literal in wire_literals(path.read_text(encoding="utf-8"))
            ]
    assert offenders == [], "format or parse these in leafnode.proto:\n" + "\n".join(offenders)
