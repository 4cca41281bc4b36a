"""Typed reads of tree entries for ``_build``: every failure is a positioned ``ConfigError``.

Errors about a whole value point at its key (nats-server does the same), errors
about one item of an array point at the item. Messages name the option by its
dotted path (``leafnodes.remotes[0].url``) and the type that was expected.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nkeys

from leafnode.proto import is_valid_queue, is_valid_subject

from ._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._errors import Pos
    from ._parser import Entry, Tree, Value

__all__ = [
    "Context",
    "is_public_user_nkey",
    "is_user_seed",
    "parse_go_duration",
    "type_error",
    "type_name",
    "want_bool",
    "want_duration",
    "want_host_port",
    "want_int",
    "want_limit",
    "want_list",
    "want_map",
    "want_path",
    "want_port",
    "want_seconds",
    "want_secret",
    "want_size",
    "want_str",
    "want_str_list",
    "want_subjects",
]

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,  # Go accepts both micro signs
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# What a size value may look like, for error messages (the lexer's SIZE_SUFFIXES).
SIZE_HELP = (
    "a size in bytes such as 1048576, 512MB or 1GiB "
    "(units K, M, G, T = 1000^n; KB, MB, GB, TB, KiB, MiB, GiB, TiB = 1024^n)"
)
_ENV_REF = re.compile(r"\$(\w+)|\$\{([^}]*)\}")
MAX_PORT = 65535


@dataclass
class Context:
    """What building settings needs besides the tree: env, warnings.

    Paths in option values are relative to the process's working directory,
    as nats-server resolves them; only ``include`` (the parser's business) is
    relative to the including file.
    """

    environ: Mapping[str, str]
    warnings: list[str] = field(default_factory=list)

    def ignored(self, entry: Entry, name: str, why: str = "") -> None:
        """Record the one warning line for an option we accept but do not implement."""
        pos = entry.pos
        tail = f" ({why})" if why else ""
        self.warnings.append(
            f"{pos.source}:{pos.line}:{pos.column}: {name} is not supported by leafnode; "
            f"ignored{tail}"
        )

    def unknown(self, entry: Entry, name: str) -> None:
        """Reject an unknown key unless it is only there to be a ``$variable``."""
        if not entry.used:
            raise ConfigError.at(entry.pos, f"unknown field {name!r}")

    def file_path(self, entry: Entry, name: str) -> str:
        """A path option that must name a readable file; returned absolute.

        ``~`` and ``$VAR``/``${VAR}`` are expanded as nats-server does; a relative
        path is relative to the working directory (nats-server's rule: only
        ``include`` is relative to the config file).
        """
        raw = want_str(entry, name)
        if not raw:
            raise ConfigError.at(entry.pos, f"{name}: empty file name")
        expanded = _ENV_REF.sub(lambda m: self.environ.get(m.group(1) or m.group(2), ""), raw)
        path = Path(os.path.abspath(Path(expanded).expanduser()))
        if not path.is_file():
            raise ConfigError.at(entry.pos, f"{name}: file {raw!r} does not exist")
        if not os.access(path, os.R_OK):
            raise ConfigError.at(entry.pos, f"{name}: file {raw!r} is not readable")
        return str(path)


def want_path(entry: Entry, name: str) -> str | None:
    """A path the process creates or opens later (pid file, log file, a directory).

    Returned absolute, resolved against the working directory as nats-server
    does; an empty string means "none", as in nats-server.
    """
    raw = want_str(entry, name)
    return os.path.abspath(raw) if raw else None


def type_name(value: Value) -> str:
    """How a value's type is named in error messages."""
    data = value.data
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, int):
        return "an integer"
    if isinstance(data, float):
        return "a float"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, list):
        return "an array"
    return "a block"


def type_error(pos: Pos, name: str, expected: str, value: Value) -> ConfigError:
    """``"{name}: expected {expected}, got a string ('x')"`` at ``pos``."""
    shown = f" ({value.data!r})" if not isinstance(value.data, list | dict) else ""
    return ConfigError.at(pos, f"{name}: expected {expected}, got {type_name(value)}{shown}")


def want_str(entry: Entry, name: str) -> str:
    data = entry.value.data
    if not isinstance(data, str):
        raise type_error(entry.pos, name, "a string", entry.value)
    return data


def want_secret(entry: Entry, name: str) -> str:
    """A password, token or seed: as ``want_str``, but an error never shows the value."""
    if not isinstance(entry.value.data, str):
        raise ConfigError.at(
            entry.pos,
            f"{name}: expected a string (quote it), got {type_name(entry.value)} "
            "(not shown: it is a secret)",
        )
    return entry.value.data


def want_bool(entry: Entry, name: str) -> bool:
    data = entry.value.data
    if not isinstance(data, bool):
        raise type_error(entry.pos, name, "a boolean (true/false)", entry.value)
    return data


def want_int(entry: Entry, name: str, *, minimum: int | None = None) -> int:
    """An integer (size suffixes such as ``1MB`` are integers already)."""
    data = entry.value.data
    if isinstance(data, bool) or not isinstance(data, int):
        raise type_error(entry.pos, name, "an integer", entry.value)
    if minimum is not None and data < minimum:
        raise ConfigError.at(entry.pos, f"{name}: must be at least {minimum}, got {data}")
    return data


def want_size(entry: Entry, name: str, *, minimum: int = 0) -> int:
    """A size in bytes: an integer, or an integer with a unit (``1MB``, made by the lexer).

    Anything else is an error that lists the units (``5XB`` reaches us as a string).
    """
    data = entry.value.data
    if isinstance(data, bool) or not isinstance(data, int):
        raise type_error(entry.pos, name, SIZE_HELP, entry.value)
    if data < minimum:
        raise ConfigError.at(entry.pos, f"{name}: must be at least {minimum}, got {data}")
    return data


def want_limit(entry: Entry, name: str, *, size: bool) -> int | None:
    """A limit that may be unlimited: ``-1`` or ``0`` (JetStream's spellings) -> None.

    ``size`` limits take units (``1GB``); other limits are counts. Any other
    negative value is an error rather than a second spelling of "unlimited".
    """
    data = entry.value.data
    what = "a size" if size else "a count"
    if isinstance(data, bool) or not isinstance(data, int):
        expected = f"{SIZE_HELP}, or -1 for unlimited" if size else "an integer"
        if not size:
            expected += ", or -1 for unlimited"
        raise type_error(entry.pos, name, expected, entry.value)
    if data < -1:
        raise ConfigError.at(
            entry.pos, f"{name}: expected {what} of at least 1, or -1 for unlimited, got {data}"
        )
    return data if data > 0 else None


def want_map(entry: Entry, name: str) -> Tree:
    data = entry.value.data
    if not isinstance(data, dict):
        raise type_error(entry.pos, name, "a block { ... }", entry.value)
    return data


def want_list(entry: Entry, name: str) -> list[Value]:
    data = entry.value.data
    if not isinstance(data, list):
        raise type_error(entry.pos, name, "an array [ ... ]", entry.value)
    return data


def want_str_list(entry: Entry, name: str) -> list[tuple[str, Pos]]:
    """A string or an array of strings, each with where it was written."""
    data = entry.value.data
    if isinstance(data, str):
        return [(data, entry.pos)]
    if not isinstance(data, list):
        raise type_error(entry.pos, name, "a string or an array of strings", entry.value)
    out: list[tuple[str, Pos]] = []
    for index, item in enumerate(data):
        if not isinstance(item.data, str):
            raise type_error(item.pos, f"{name}[{index}]", "a string", item)
        out.append((item.data, item.pos))
    return out


def want_subjects(entry: Entry, name: str, *, allow_queue: bool = False) -> tuple[str, ...]:
    """A subject or array of subjects (wildcards allowed), validated.

    With ``allow_queue`` an item may also be ``"subject queue"`` (subscribe
    permissions, as in nats-server).
    """
    out: list[str] = []
    for subject, pos in want_str_list(entry, name):
        if not is_valid_subject(subject.encode()):
            parts = subject.split()
            if not (
                allow_queue
                and len(parts) == 2
                and is_valid_subject(parts[0].encode())
                and is_valid_queue(parts[1].encode())
            ):
                raise ConfigError.at(pos, f"{name}: {subject!r} is not a valid subject")
        out.append(subject)
    return tuple(out)


def parse_go_duration(text: str) -> float | None:
    """Seconds in Go ``time.ParseDuration`` syntax (``"1h2m3.5s"``), None if invalid."""
    body = text
    negative = body.startswith("-")
    if body[:1] in ("-", "+"):
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        return None
    total = 0.0
    at = 0
    while at < len(body):
        m = _GO_DURATION_PART.match(body, at)
        if m is None:
            return None
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        at = m.end()
    return -total if negative else total


def want_duration(
    entry: Entry, name: str, *, allow_float: bool = False, positive: bool = False
) -> float:
    """A duration in seconds: ``"1m30s"`` (Go syntax) or an integer of seconds.

    nats-server treats a bare integer as seconds (deprecated); ``allow_float``
    also accepts ``1.5`` as seconds, as nats-server's tls/authorization timeouts do.
    """
    data = entry.value.data
    if isinstance(data, str):
        seconds = parse_go_duration(data)
        if seconds is None:
            raise ConfigError.at(
                entry.pos,
                f'{name}: invalid duration {data!r}: use Go syntax such as "500ms", '
                '"2s", "1m30s" or "1h"',
            )
    elif isinstance(data, int) and not isinstance(data, bool):
        seconds = float(data)
    elif allow_float and isinstance(data, float):
        seconds = data
    else:
        expected = 'a duration such as "2s" or a number of seconds'
        raise type_error(entry.pos, name, expected, entry.value)
    if seconds < 0 or (positive and seconds == 0):
        need = "positive" if positive else "zero or positive"
        raise ConfigError.at(entry.pos, f"{name}: must be {need}, got {data!r}")
    return seconds


def want_seconds(entry: Entry, name: str) -> float:
    """A timeout in seconds: integer, float or duration string."""
    return want_duration(entry, name, allow_float=True)


def _check_port(port: int, pos: Pos, name: str) -> int:
    # -1 asks for a random free port, as in nats-server.
    if not -1 <= port <= MAX_PORT:
        raise ConfigError.at(pos, f"{name}: port {port} is out of range (-1..{MAX_PORT})")
    return port


def want_port(entry: Entry, name: str) -> int:
    return _check_port(want_int(entry, name), entry.pos, name)


def want_host_port(entry: Entry, name: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"``, ``":port"`` or a port (int or digits).

    Returns ``(host, port)``; ``host`` is ``""`` when only a port was given.
    """
    data = entry.value.data
    if isinstance(data, int) and not isinstance(data, bool):
        return "", _check_port(data, entry.pos, name)
    if not isinstance(data, str):
        raise type_error(entry.pos, name, 'a port or a "host:port" string', entry.value)
    text = data.strip()
    if re.fullmatch(r"-?\d+", text):
        return "", _check_port(int(text), entry.pos, name)
    m = re.fullmatch(r"\[([^\]]*)\]:(-?\d+)|([^:\[\]]*):(-?\d+)", text)
    if m is None:
        raise ConfigError.at(entry.pos, f'{name}: expected "host:port" or a port, got {data!r}')
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = int(m.group(2) if m.group(2) is not None else m.group(4))
    return host, _check_port(port, entry.pos, name)


def _nkey_bytes(text: str) -> bytes | None:
    """Base32-decode an nkey and check its CRC16; None when malformed."""
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 4:
        return None
    body, crc = raw[:-2], raw[-2:]
    if int(nkeys.crc16(body)) != int.from_bytes(crc, "little"):
        return None
    return body


def is_public_user_nkey(text: str) -> bool:
    """True for a public user nkey (``U...``, 56 characters, valid checksum)."""
    if len(text) != 56 or not text.startswith("U"):
        return False
    body = _nkey_bytes(text)
    return body is not None and len(body) == 33 and body[0] == int(nkeys.PREFIX_BYTE_USER)


def is_user_seed(text: str) -> bool:
    """True for a user seed (``SU...``, valid checksum), as remote ``nkey`` needs."""
    if not text.startswith("SU"):
        return False
    body = _nkey_bytes(text)
    if body is None or len(body) != 34:
        return False
    kind = (body[0] & 7) << 5 | (body[1] & 248) >> 3
    return body[0] & 248 == int(nkeys.PREFIX_BYTE_SEED) and kind == int(nkeys.PREFIX_BYTE_USER)
