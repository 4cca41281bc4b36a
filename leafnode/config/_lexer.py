"""Scanner for the NATS config syntax (leafnode-protocol.md §8).

Theory of operation
-------------------
The syntax is context sensitive (a ``:`` ends a key but not a bare value, a
``}`` ends a bare value but not a key), so there is no free-standing token
stream: the parser (``_parser.py``) knows where it is and asks this scanner
for the next *key*, *include path* or *scalar value*. The scanner owns the
text, the cursor and the line table, and turns positions into ``Pos``.

Everything is matched with compiled regexes over the whole text, never one
character at a time. The rules follow nats-server 2.15's ``conf/lex.go``:

* Whitespace inside a line is only space and tab; a newline is ``\\n`` or
  ``\\r``. Between entries any whitespace and ``#``/``//`` comments are skipped.
* A bare key runs to whitespace, ``=``, ``:`` or the end of the text.
* A bare value runs to a newline, space, tab, ``,``, ``;``, ``]``, ``}`` or a
  single quote (which is swallowed). ``\\`` escapes work in bare values too.
* A bare value is a boolean (true/false/yes/no/on/off, any case), a variable
  (``$NAME``; ``$2a$``/``$2b$``/``$2y$`` bcrypt hashes are strings), or a string.
* A value starting with a digit is an integer, an integer with a size suffix
  (``k``=1000, ``kb``/``ki``/``kib``=1024, ... up to ``e``), a float, an IP
  address (``127.0.0.1:4222``, a string), or, when other characters follow the
  digits, a plain string: ``2s`` and ``1m30s`` are strings while ``1m`` is the
  number 1000000, exactly as in nats-server 2.15.
* ``-`` must start a number. ``.`` may not start a value.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal

from ._errors import ConfigError, Pos

__all__ = ["Scanner", "Token", "TokenKind"]

TokenKind = Literal["str", "int", "float", "bool", "var"]

# Any whitespace (keys may be separated from values by newlines) and comments.
_SKIP_BLANK = re.compile(r"(?:\s+|#[^\n\r]*|//[^\n\r]*)*")
_SKIP_INLINE = re.compile(r"[ \t]*")
_SKIP_SPACE = re.compile(r"\s*")
_COMMENT = re.compile(r"(?:#|//)[^\n\r]*")
_BARE_KEY = re.compile(r"[^\s=:]+")
# Characters of a bare value up to a terminator, an escape or a quote.
_BARE_CHUNK = re.compile(r"[^\n\r \t;,\]}'\\]+")
_INCLUDE_BARE = re.compile(r"[^\n\r \t;}']*")
_DQ_CHUNK = re.compile(r'[^"\\]+')
_HEX2 = re.compile(r"[0-9a-fA-F]{2}")
# ")" alone on its line ends a "( ... )" block; CRLF files are accepted too.
_BLOCK_END = re.compile(r"\n\)(?=\r?\n|\Z)")

_INT = re.compile(r"-?\d+")
_SIZE = re.compile(r"(-?\d+)([kmgtpe][bi]*)", re.IGNORECASE)
_FLOAT = re.compile(r"-?\d+\.\d+")
_IP = re.compile(r"\d+\.\d+\.[\d.:-]*")
_ZULU = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_DIGITS_THEN_DOT_OR_DASH = re.compile(r"\d+[.-]")

_K, _KI = 1000, 1024
SIZE_SUFFIXES: dict[str, int] = {"": 1}
for _n, _letter in enumerate("kmgtpe", start=1):
    SIZE_SUFFIXES[_letter] = _K**_n
    for _tail in ("b", "i", "ib"):
        SIZE_SUFFIXES[_letter + _tail] = _KI**_n

_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
# nats-server keeps raw bcrypt hashes ($2a$...) as strings; Python's bcrypt
# writes $2b$, other tools $2y$, so those are strings too.
_BCRYPT_PREFIXES = ("2a$", "2b$", "2y$")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Token:
    """A scalar value as written: ``kind`` says how to read ``value``."""

    kind: TokenKind
    value: str | int | float | bool
    pos: Pos


class Scanner:
    """Cursor over one config text; raises ``ConfigError`` with positions."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.i = 0
        self._line_starts = [0]
        self._line_starts.extend(m.end() for m in re.finditer("\n", text))

    # -- positions ---------------------------------------------------------

    def pos(self, i: int | None = None) -> Pos:
        """The ``Pos`` of offset ``i`` (default: the cursor)."""
        at = self.i if i is None else i
        line = bisect.bisect_right(self._line_starts, at)
        return Pos(self.source, line, at - self._line_starts[line - 1] + 1)

    def error(self, reason: str, i: int | None = None) -> ConfigError:
        """A ``ConfigError`` at offset ``i`` (default: the cursor)."""
        return ConfigError.at(self.pos(i), reason)

    def describe(self, i: int | None = None) -> str:
        """Human description of the character at ``i`` for error messages."""
        at = self.i if i is None else i
        if at >= len(self.text):
            return "end of file"
        ch = self.text[at]
        if ch in "\r\n":
            return "end of line"
        return repr(ch)

    # -- cursor --------------------------------------------------------------

    def peek(self) -> str:
        """The character under the cursor, or ``""`` at the end."""
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip_blank(self) -> None:
        """Skip whitespace (newlines included) and comments."""
        m = _SKIP_BLANK.match(self.text, self.i)
        if m is not None:
            self.i = m.end()

    def skip_space(self) -> None:
        """Skip whitespace, newlines included (not comments)."""
        m = _SKIP_SPACE.match(self.text, self.i)
        if m is not None:
            self.i = m.end()

    def skip_inline(self) -> None:
        """Skip spaces and tabs only."""
        m = _SKIP_INLINE.match(self.text, self.i)
        if m is not None:
            self.i = m.end()

    def skip_comment(self) -> bool:
        """Skip a ``#``/``//`` comment at the cursor (not its newline)."""
        m = _COMMENT.match(self.text, self.i)
        if m is None:
            return False
        self.i = m.end()
        return True

    # -- keys ------------------------------------------------------------------

    def read_key(self) -> tuple[str, Pos, bool]:
        """Read a key at the cursor. Returns ``(key, pos, was_bare)``."""
        start = self.i
        ch = self.peek()
        if ch in ("=", ":"):
            raise self.error(f"unexpected key separator {ch!r}: a key is missing")
        if ch in ('"', "'"):
            end = self.text.find(ch, start + 1)
            if end < 0:
                raise self.error("unterminated quoted key", start)
            self.i = end + 1
            return self.text[start + 1 : end], self.pos(start), False
        m = _BARE_KEY.match(self.text, start)
        if m is None:  # pragma: no cover - callers skip blanks first
            raise self.error("expected a key")
        self.i = m.end()
        key = m.group()
        for bracket in "{[":
            if bracket in key:
                raise self.error(
                    f"invalid key {key!r}: put a space or ':' between a key and {bracket!r}",
                    start,
                )
        return key, self.pos(start), True

    def read_include_path(self) -> str:
        """Read the file name after ``include`` (quoted or bare)."""
        self.skip_inline()
        start = self.i
        ch = self.peek()
        if ch in ('"', "'"):
            end = self.text.find(ch, start + 1)
            if end < 0:
                raise self.error("unterminated include file name", start)
            self.i = end + 1
            name = self.text[start + 1 : end]
        else:
            if ch == "" or ch in "\r\n[{(-\\" or ch.isdigit():
                raise self.error(f"expected an include file name, found {self.describe()}")
            m = _INCLUDE_BARE.match(self.text, start)
            assert m is not None
            self.i = m.end()
            name = m.group()
            if self.peek() == "'":
                self.i += 1
        if not name:
            raise self.error("empty include file name", start)
        return name

    # -- scalar values -----------------------------------------------------------

    def read_scalar(self) -> Token:
        """Read a scalar value at the cursor (not ``[`` or ``{``)."""
        start = self.i
        pos = self.pos(start)
        ch = self.peek()
        if ch == "":
            raise self.error("expected a value, found end of file")
        if ch in "\r\n":
            raise self.error("expected a value, found end of line")
        if ch == '"':
            return Token("str", self._read_dq_string(), pos)
        if ch == "'":
            end = self.text.find("'", start + 1)
            if end < 0:
                raise self.error('unterminated string: missing closing "\'"', start)
            self.i = end + 1
            return Token("str", self.text[start + 1 : end], pos)
        if ch == "(":
            return Token("str", self._read_block(), pos)
        if ch == ".":
            raise self.error("a number must start with a digit, not '.'")
        text, escaped = self._read_bare()
        if ch == "-" or ch.isdigit():
            return self._classify_number(text, escaped, pos)
        if escaped:
            return Token("str", text, pos)
        flag = _BOOLS.get(text.lower())
        if flag is not None:
            return Token("bool", flag, pos)
        if text.startswith("$") and not text.startswith(_BCRYPT_PREFIXES, 1):
            return Token("var", text[1:], pos)
        return Token("str", text, pos)

    def _read_dq_string(self) -> str:
        start = self.i
        self.i += 1
        parts: list[str | bytes] = []
        text = self.text
        while True:
            m = _DQ_CHUNK.match(text, self.i)
            if m is not None:
                parts.append(m.group())
                self.i = m.end()
            if self.i >= len(text):
                raise self.error("unterminated string: missing closing '\"'", start)
            if text[self.i] == '"':
                self.i += 1
                break
            parts.append(self._read_escape())
        return self._join(parts, start)

    def _read_escape(self) -> str | bytes:
        """Read an escape at the cursor; ``\\xHH`` is a byte, as in Go."""
        at = self.i
        ch = self.text[at + 1 : at + 2]
        if ch == "x":
            m = _HEX2.match(self.text, at + 2)
            if m is None:
                raise self.error(r"expected two hexadecimal digits after '\x'", at)
            self.i = m.end()
            return bytes.fromhex(m.group())
        if ch in _ESCAPES:
            self.i = at + 2
            return _ESCAPES[ch]
        shown = "end of file" if not ch else repr(ch)
        raise self.error(
            f'invalid escape {shown}: only \\t \\n \\r \\" \\\\ and \\xHH are allowed', at
        )

    def _read_block(self) -> str:
        start = self.i
        m = _BLOCK_END.search(self.text, start + 1)
        if m is None:
            raise self.error(
                "unterminated multi-line string: end it with ')' alone on a line", start
            )
        self.i = m.end()
        value = self.text[start + 1 : m.start()]
        return value[:-1] if value.endswith("\r") else value

    def _read_bare(self) -> tuple[str, bool]:
        start = self.i
        text = self.text
        parts: list[str | bytes] = []
        escaped = False
        while True:
            m = _BARE_CHUNK.match(text, self.i)
            if m is not None:
                parts.append(m.group())
                self.i = m.end()
            ch = self.peek()
            if ch == "\\":
                parts.append(self._read_escape())
                escaped = True
                continue
            if ch == "'":
                # nats-server ends a bare value at a quote and drops the quote.
                self.i += 1
            break
        return self._join(parts, start), escaped

    def _classify_number(self, text: str, escaped: bool, pos: Pos) -> Token:
        if not escaped:
            if _INT.fullmatch(text):
                return Token("int", self._check_range(int(text), text, pos), pos)
            m = _SIZE.fullmatch(text)
            if m is not None:
                suffix = m.group(2).lower()
                factor = SIZE_SUFFIXES.get(suffix)
                if factor is None:
                    raise ConfigError.at(pos, f"invalid size suffix {m.group(2)!r} in {text!r}")
                return Token("int", self._check_range(int(m.group(1)) * factor, text, pos), pos)
            if _FLOAT.fullmatch(text):
                return Token("float", float(text), pos)
            if _IP.fullmatch(text) or _ZULU.fullmatch(text):
                return Token("str", text, pos)
        if text.startswith("-") or _DIGITS_THEN_DOT_OR_DASH.match(text):
            raise ConfigError.at(pos, f"invalid number {text!r}")
        # Digits followed by letters ("2s", "1m30s", "500ms"): a plain string.
        return Token("str", text, pos)

    def _join(self, parts: list[str | bytes], start: int) -> str:
        """Join string parts; ``\\xHH`` bytes must form UTF-8 with the text around them."""
        if all(isinstance(part, str) for part in parts):
            return "".join(part for part in parts if isinstance(part, str))
        data = b"".join(part.encode() if isinstance(part, str) else part for part in parts)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(r"'\x' escapes do not form valid UTF-8 text", start) from None

    @staticmethod
    def _check_range(value: int, text: str, pos: Pos) -> int:
        if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            raise ConfigError.at(pos, f"integer {text!r} is out of range")
        return value
