"""Where a config value came from, and the one error type the config package raises."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Everything in __all__ gets re-exported as part of the leafnode.config API.
__all__ = ["ConfigError", "Pos"]


# What a reason quotes from the config: Python reprs of strings (either quote
# style), "got a string ('x')"/"got an integer (5)" and "got -5" tails.
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_GOT_SHOWN = re.compile(r"(got an? [a-z]+) \(.*\)")
_GOT_NUMBER = re.compile(r",? got -?[0-9][^\s,;)]*")
_WITHHELD = "\u2026"  # what stands for a withheld value: an ellipsis


@dataclass(frozen=True, slots=True)
class Pos:
    """A position in a config file: ``source`` is the file path (or ``<string>``).

    ``line`` and ``column`` are 1-based; column counts characters, a tab is one.
    """

    source: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


class ConfigError(Exception):
    """A config file is unreadable, malformed or describes invalid settings.

    ``str(error)`` is ``"{source}:{line}:{column}: {reason}"``, the form editors
    and ``leafnode check`` print. When there is no position (the top-level
    file cannot be read at all) ``line`` and ``column`` are 0 and the string
    is ``"{source}: {reason}"``.

    Attributes:
        source: path of the file the error is in (an included file, when the
            error is inside one), or the ``source`` name given to ``loads``.
        line: 1-based line, or 0 when there is no position.
        column: 1-based column, or 0 when there is no position.
        reason: what is wrong, without the position.
    """

    def __init__(self, source: str, line: int, column: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(source, line, column, reason)

    @classmethod
    def at(cls, pos: Pos, reason: str) -> ConfigError:
        """Build an error located at ``pos``."""
        return cls(pos.source, pos.line, pos.column, reason)

    def without_values(self) -> ConfigError:
        """The same error with every value it quotes withheld.

        For a config sent by someone who may not read what an ``include`` or
        a ``$VARIABLE`` brought in: the file, line, column and the reason stay,
        the quoted tokens become ``'…'`` and "got ..." tails lose the value.
        """
        reason = _GOT_SHOWN.sub(r"\1", self.reason)
        reason = _QUOTED.sub(f"'{_WITHHELD}'", reason)
        reason = _GOT_NUMBER.sub("", reason)
        return ConfigError(self.source, self.line, self.column, reason)

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.source}: {self.reason}"
        return f"{self.source}:{self.line}:{self.column}: {self.reason}"
