"""``GET /config`` with every secret replaced, and ``PUT /config`` that sends it back.

Masking: secrets are found by name (``password``, ``token``, ...), by shape
(an nkey seed: ``S`` + a key-type letter, 58 characters of base32; a JWT:
three base64url parts, the first ``eyJ``) and inside URLs (``nats://user:secret@host``
keeps the user, loses the password). Credentials files are named by path
only; their contents never enter the settings.

Keeping: DESIGN §7 lets a client send ``[REDACTED]`` back in a ``PUT /config``
to mean "keep the secret that runs now". The file on disk must hold the
real secret, since every service re-reads it, so ``keep_secrets`` rewrites
the text: each ``[REDACTED]`` is first replaced by a unique marker, the
marked text is parsed, and walking those settings beside the running ones
tells which secret each marker stands in for (a whole value, or the
password of a URL; users, accounts and remotes are matched by name, other
lists by position). The markers are then replaced by those secrets. A
marker with no secret to keep there, or a secret that would need quoting to
be written back, is an error naming its line; the text a client sent is
never echoed with a secret in it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import nkeys

from leafnode.config import ConfigError
from leafnode.redact import REDACTED, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from leafnode.config import Settings

__all__ = ["REDACTED", "KeepSecretError", "keep_secrets", "redact_settings", "redact_url"]

_SECRET_KEYS: Final = frozenset({"password", "pass", "token", "seed", "secret"})
_SEED: Final = re.compile(r"S[ONACXUP][A-Z2-7]{56}")
_JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A kept secret is written back as plain text where ``[REDACTED]`` stood;
# these never are (the text is then parsed again to prove the secret landed).
_WRITABLE: Final = re.compile(r"[^\x00-\x1f\"'\\]*")
_WRITABLE_IN_URL: Final = re.compile(r"[^\x00-\x20\"'\\@/?#]*")


def _is_secret(key: str, value: str) -> bool:
    return key.lower() in _SECRET_KEYS or bool(_SEED.fullmatch(value) or _JWT.fullmatch(value))


def _redact(value: object, key: str = "") -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _redact(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_redact(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        if _is_secret(key, value):
            return REDACTED
        if "://" in value or "@" in value:
            return redact_url(value, REDACTED)
    return value


def redact_settings(settings: object) -> dict[str, object]:
    """The settings dataclass as JSON-ready values with secrets replaced."""
    result = _redact(settings)
    assert isinstance(result, dict)
    return result


class KeepSecretError(Exception):
    """A ``[REDACTED]`` in a sent config that cannot be resolved; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def keep_secrets(text: str, current: Settings, parse: Callable[[str], Settings]) -> str:
    """``text`` with each ``[REDACTED]`` replaced by the running secret it stands for.

    Args:
        text: the config a client sent.
        current: the settings that run now (flags applied).
        parse: loads config text into settings (raises ``ConfigError``).

    Raises:
        ConfigError: the marked text does not load (the caller answers 422).
        KeepSecretError: a ``[REDACTED]`` has no secret to keep, or the secret
            cannot be written back as plain text.
    """
    if REDACTED not in text:
        return text
    pieces = text.split(REDACTED)
    # Each marker is a fresh user nkey seed: unique, and valid wherever a
    # secret may stand (a remote's ``nkey`` is checked to be a seed).
    markers = [
        nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
        for _ in range(len(pieces) - 1)
    ]
    marked = pieces[0] + "".join(m + p for m, p in zip(markers, pieces[1:], strict=True))
    found: dict[str, str] = {}
    _match(parse(marked), current, found, markers)
    lines = [text.count("\n", 0, _offset(pieces, i)) + 1 for i in range(len(markers))]
    out = [pieces[0]]
    for i, marker in enumerate(markers):
        secret = found.get(marker)
        if secret is None:
            raise KeepSecretError(
                lines[i],
                f"{REDACTED} at line {lines[i]}: no running secret to keep there; send the secret",
            )
        out += [secret, pieces[i + 1]]
    result = "".join(out)
    # Proof: the rewritten text loads into exactly the marked settings with
    # the secrets in place (a secret that broke the quoting would not).
    try:
        landed = parse(result) == _substitute(parse(marked), found)
    except ConfigError:
        landed = False
    if not landed:
        raise KeepSecretError(
            lines[0], f"a kept secret cannot be written back here: send it instead of {REDACTED}"
        )
    return result


def _substitute(value: object, found: dict[str, str]) -> object:
    if isinstance(value, str):
        for marker, secret in found.items():
            value = value.replace(marker, secret)
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _substitute(getattr(value, f.name), found) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_substitute(v, found) for v in value)
    return value


def _offset(pieces: list[str], i: int) -> int:
    return sum(len(p) for p in pieces[: i + 1]) + i * len(REDACTED)


def _match(new: object, old: object, found: dict[str, str], markers: list[str]) -> None:
    """Walk ``new`` (with markers) beside ``old`` (running); record marker -> secret."""
    if isinstance(new, str):
        _resolve(new, old, found, markers)
    elif dataclasses.is_dataclass(new) and not isinstance(new, type):
        if type(old) is type(new):
            for f in dataclasses.fields(new):
                _match(getattr(new, f.name), getattr(old, f.name), found, markers)
    elif isinstance(new, tuple):
        olds = old if isinstance(old, tuple) else ()
        for i, item in enumerate(new):
            _match(item, _counterpart(item, olds, i), found, markers)


def _identity(item: object) -> object:
    for attr in ("name", "user", "nkey"):
        value = getattr(item, attr, None)
        if isinstance(value, str) and value:
            return (attr, value)
    return None


def _counterpart(item: object, olds: tuple[object, ...], index: int) -> object:
    """The running entry ``item`` replaces: same name (or user); unnamed entries by position."""
    key = _identity(item)
    if key is not None:
        return next((old for old in olds if _identity(old) == key), None)
    return olds[index] if index < len(olds) else None


def _resolve(new: str, old: object, found: dict[str, str], markers: list[str]) -> None:
    present = [m for m in markers if m in new]
    if not present or not isinstance(old, str):
        return
    if new in markers:  # the whole value
        if _WRITABLE.fullmatch(old):
            found[new] = old
        return
    if len(present) != 1:
        return
    marker = present[0]
    # The password (or bare token) of a URL: taken as written in the running URL.
    old_info = _userinfo(old)
    new_info = _userinfo(new)
    if old_info is None or new_info is None:
        return
    old_user, old_secret = old_info
    new_user, new_secret = new_info
    if new_secret == marker and new_user == old_user and _WRITABLE_IN_URL.fullmatch(old_secret):
        found[marker] = old_secret


def _userinfo(url: str) -> tuple[str | None, str] | None:
    """``(user, secret)`` of ``scheme://user:secret@host`` (user None for ``token@``)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    if "@" not in netloc:
        return None
    info = netloc.rpartition("@")[0]
    user, sep, secret = info.partition(":")
    return (user, secret) if sep else (None, user)
