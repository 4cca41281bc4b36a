"""NATS config syntax -> a tree of positioned values (leafnode-protocol.md §8).

Theory of operation
-------------------
``parse_tree`` turns one config text into a ``dict[str, Entry]``. An ``Entry``
is a key with its position and its ``Value``; a ``Value`` is a scalar, a list
of values or another ``dict[str, Entry]``, always with the position where it
was written. ``_build.py`` walks this tree to make ``Settings`` and uses the
positions for its own errors; ``parse`` strips them for plain use.

Grammar (the same as nats-server 2.15's ``conf/lex.go`` + ``conf/parse.go``):

* A block is a sequence of entries. An entry is ``key value``, ``key = value``
  or ``key: value``, or ``include <file>``. After a value comes a newline,
  ``,``, ``;`` or a comment, or the ``}`` that closes the block.
* Between a key and a value without separator there may be newlines. After
  ``=``/``:`` the value must start on the same line.
* ``{`` at the top level opens an anonymous block whose keys belong to the
  top level (the JSON-like ``{ ... }`` wrapping).
* A value is a scalar (see ``_lexer.py``), ``[ ... ]`` (items separated by
  ``,`` or newlines) or ``{ ... }`` (a block).
* ``include <file>`` parses the file (relative to the including file) on its
  own and merges its keys into the current block, as nats-server does.
* ``$NAME`` as a whole value is a variable: the innermost enclosing block that
  already defined ``NAME`` wins (blocks, not arrays, are scopes), then the
  environment, whose value is parsed again as a config value. The referenced
  entry is marked ``used`` so that ``_build`` can accept it although it is not
  a known option: nats-server reports a variable that is never used as an
  unknown field, and so do we.

Deliberate differences from nats-server: a stray ``}`` at the top level and an
empty value before ``}`` are errors here (nats-server ignores them), a number
right before ``]`` is a number (nats-server errors), include cycles are an
error (nats-server recurses until it runs out of stack).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import ConfigError, Pos
from ._lexer import Scanner

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Entry", "Sandbox", "Scalar", "Tree", "Value", "parse", "parse_tree", "to_plain"]

Scalar = str | int | float | bool
# Blocks and arrays nest at most this deep: deep enough for any real config,
# shallow enough that a hostile file cannot exhaust Python's stack.
MAX_DEPTH = 64
# Nested includes (a includes b includes c ...) allowed before giving up.
MAX_INCLUDE_DEPTH = 16
_ENV_KEY = "pk"  # the key an environment value is parsed under (nats-server's "pk")
_WHITESPACE_ONLY = re.compile(r"\s*")


@dataclass(slots=True, eq=False)
class Value:
    """A value as written: ``data`` is a scalar, ``list[Value]`` or ``Tree``."""

    data: Scalar | list[Value] | dict[str, Entry]
    pos: Pos


@dataclass(slots=True, eq=False)
class Entry:
    """One ``key: value`` of a block; ``pos`` is where the key starts."""

    key: str
    pos: Pos
    value: Value
    used: bool = field(default=False)  # referenced as ``$key`` somewhere


Tree = dict[str, Entry]


@dataclass(slots=True)
class Sandbox:
    """Limits for a config text sent by someone who may not read the host's files.

    ``root``: ``include`` may only name files inside this directory (after
    resolving ``..`` and symlinks), as for a config sent to ``PUT /config``.
    ``foreign`` is set while parsing when any value came from outside the
    text itself (an included file or an environment variable), so that the
    loader knows its errors may quote content the sender did not send.
    """

    root: Path
    foreign: bool = False


def parse_tree(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> Tree:
    """Parse config text into a positioned tree (see the module docstring).

    Args:
        text: the config text.
        source: the file name used in positions and errors.
        base_dir: where ``include`` paths are relative to (default: the
            current directory).
        environ: variables for ``$NAME`` (default: ``os.environ``).
        sandbox: limits for an untrusted text (see ``Sandbox``).

    Raises:
        ConfigError: on any syntax error, unreadable include or undefined variable.
    """
    parser = _Parser(
        text,
        source,
        Path(".") if base_dir is None else base_dir,
        os.environ if environ is None else environ,
        includes=(),
        env_stack=frozenset(),
        sandbox=sandbox,
    )
    return parser.document()


def parse(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Parse config text into plain Python values.

    Blocks become ``dict``, arrays ``list``, scalars ``str``/``int``/``float``/
    ``bool``. Includes and variables are resolved; sizes are plain integers.

    Raises:
        ConfigError: on any syntax error, unreadable include or undefined variable.
    """
    tree = parse_tree(text, source=source, base_dir=base_dir, environ=environ)
    return {key: to_plain(entry.value) for key, entry in tree.items()}


def to_plain(value: Value) -> object:
    """Strip positions from a ``Value`` (recursively)."""
    data = value.data
    if isinstance(data, dict):
        return {key: to_plain(entry.value) for key, entry in data.items()}
    if isinstance(data, list):
        return [to_plain(item) for item in data]
    return data


class _Parser:
    """Recursive descent over one text; includes and env values get their own."""

    def __init__(
        self,
        text: str,
        source: str,
        base_dir: Path,
        environ: Mapping[str, str],
        *,
        includes: tuple[Path, ...],
        env_stack: frozenset[str],
        sandbox: Sandbox | None,
    ) -> None:
        self._s = Scanner(text.removeprefix("\ufeff"), source)
        self._sandbox = sandbox
        self._base_dir = base_dir
        self._environ = environ
        self._includes = includes
        self._env_stack = env_stack
        # Blocks being built, outermost first: the scopes for $variables.
        self._scopes: list[Tree] = []
        self._depth = 0

    def document(self) -> Tree:
        root: Tree = {}
        self._scopes.append(root)
        self._body(root, opened_at=None)
        return root

    # -- blocks ----------------------------------------------------------------

    def _body(self, target: Tree, opened_at: int | None) -> None:
        """Entries up to the ``}`` at ``opened_at``'s level (or the end of the text)."""
        s = self._s
        while True:
            s.skip_blank()
            ch = s.peek()
            if ch == "":
                if opened_at is not None:
                    raise s.error("unterminated block: missing '}'", opened_at)
                return
            if ch == "}":
                if opened_at is None:
                    raise s.error("unexpected '}' with no matching '{'")
                s.i += 1
                return
            if ch == "{" and len(self._scopes) == 1 and target is self._scopes[0]:
                # Top-level JSON-like wrapping: its keys are top-level keys.
                start = s.i
                s.i += 1
                self._enter(start)
                self._body(target, opened_at=start)
                self._depth -= 1
                continue
            if ch in ",;[]{":
                raise s.error(f"expected a key, found {ch!r}")
            self._entry(target)
            self._value_end()

    def _entry(self, target: Tree) -> None:
        s = self._s
        key, key_pos, bare = s.read_key()
        if bare and key.lower() == "include" and s.peek() in (" ", "\t"):
            self._include(target, s.read_include_path(), key_pos)
            return
        # Any whitespace, newlines included, may separate a key from its value.
        s.skip_space()
        ch = s.peek()
        if ch in ("=", ":"):
            s.i += 1
            s.skip_inline()
            if s.peek() in ("", "\r", "\n"):
                raise s.error(f"missing value for key {key!r}")
        elif ch == "":
            raise s.error(f"missing value for key {key!r}")
        value = self._value()
        # Re-defining a key replaces it, as in nats-server (last one wins).
        target.pop(key, None)
        target[key] = Entry(key, key_pos, value)

    def _value_end(self) -> None:
        """After a value: a newline, ',', ';', a comment, '}' or the end."""
        s = self._s
        s.skip_inline()
        s.skip_comment()
        ch = s.peek()
        if ch in ("\r", "\n", ",", ";"):
            s.i += 1
        elif ch not in ("", "}"):
            raise s.error(f"expected a newline, ',' or ';' after a value, found {s.describe()}")

    # -- values --------------------------------------------------------------------

    def _value(self) -> Value:
        s = self._s
        ch = s.peek()
        if ch == "{":
            return self._map()
        if ch == "[":
            return self._array()
        if ch in (",", ";", "]", "}"):
            raise s.error(f"expected a value, found {ch!r}")
        token = s.read_scalar()
        if token.kind == "var":
            assert isinstance(token.value, str)
            return self._resolve(token.value, token.pos)
        return Value(token.value, token.pos)

    def _enter(self, opened_at: int) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._s.error(f"blocks and arrays nest deeper than {MAX_DEPTH} levels", opened_at)

    def _map(self) -> Value:
        s = self._s
        start = s.i
        s.i += 1
        self._enter(start)
        block: Tree = {}
        self._scopes.append(block)
        self._body(block, opened_at=start)
        self._scopes.pop()
        self._depth -= 1
        return Value(block, s.pos(start))

    def _array(self) -> Value:
        s = self._s
        start = s.i
        s.i += 1
        self._enter(start)
        items: list[Value] = []
        while True:
            s.skip_blank()
            ch = s.peek()
            if ch == "]":
                s.i += 1
                self._depth -= 1
                return Value(items, s.pos(start))
            if ch == "":
                raise s.error("unterminated array: missing ']'", start)
            if ch == ",":
                raise s.error("unexpected ',' in array: an item is missing")
            items.append(self._value())
            s.skip_inline()
            s.skip_comment()
            ch = s.peek()
            if ch in (",", "\r", "\n"):
                s.i += 1
            elif ch == "":
                raise s.error("unterminated array: missing ']'", start)
            elif ch != "]":
                raise s.error(f"expected ',' or ']' after an array item, found {s.describe()}")

    # -- include and variables ---------------------------------------------------------

    def _include(self, target: Tree, name: str, pos: Pos) -> None:
        path = self._base_dir / name
        resolved = path.resolve()
        if resolved in self._includes:
            raise ConfigError.at(pos, f"include cycle: {name!r} is already being included")
        if len(self._includes) >= MAX_INCLUDE_DEPTH:
            raise ConfigError.at(pos, f"includes nest deeper than {MAX_INCLUDE_DEPTH} files")
        if self._sandbox is not None:
            root = self._sandbox.root.resolve()
            if not resolved.is_relative_to(root):
                # Checked before the file is opened: not even its existence is told.
                raise ConfigError.at(
                    pos,
                    f"include {name!r} names a file outside the config directory {root}: "
                    "a config sent over the API may only include files inside it",
                )
            self._sandbox.foreign = True
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError.at(pos, f"cannot read include file {name!r}: {reason}") from None
        except UnicodeDecodeError:
            raise ConfigError.at(pos, f"include file {name!r} is not UTF-8 text") from None
        sub = _Parser(
            text,
            str(path),
            path.parent,
            self._environ,
            includes=(*self._includes, resolved),
            env_stack=self._env_stack,
            sandbox=self._sandbox,
        )
        for key, entry in sub.document().items():
            target.pop(key, None)
            target[key] = entry

    def _resolve(self, name: str, pos: Pos) -> Value:
        """``$name``: an earlier key of an enclosing block, else the environment."""
        for scope in reversed(self._scopes):
            entry = scope.get(name)
            if entry is not None:
                entry.used = True
                # The value as defined, placed where it is referenced.
                return Value(entry.value.data, pos)
        if name in self._env_stack:
            raise ConfigError.at(pos, f"variable reference cycle for '${name}'")
        if self._sandbox is not None:
            self._sandbox.foreign = True
        raw = self._environ.get(name)
        if raw is None:
            raise ConfigError.at(
                pos,
                f"variable '${name}' is not defined: no earlier key {name!r} "
                "in an enclosing block and no environment variable of that name",
            )
        if _WHITESPACE_ONLY.fullmatch(raw):
            return Value("", pos)
        sub = _Parser(
            f"{_ENV_KEY}={raw}",
            f"<environment variable {name}>",
            self._base_dir,
            self._environ,
            includes=self._includes,
            env_stack=self._env_stack | {name},
            sandbox=self._sandbox,
        )
        try:
            tree = sub.document()
        except ConfigError as exc:
            # The value may be a secret (password: $PASSWORD): never quoted.
            reason = exc.without_values().reason
            raise ConfigError.at(
                pos, f"environment variable {name} is not a valid value: {reason}"
            ) from None
        entry = tree.get(_ENV_KEY)
        if entry is None or len(tree) != 1:
            raise ConfigError.at(pos, f"environment variable {name} is not a single config value")
        return Value(entry.value.data, pos)
