"""``GET /config``: the settings as JSON with every secret replaced.

Secrets are found by name (``password``, ``token``, ...), by shape (an nkey
seed: ``S`` + a key-type letter, 58 characters of base32) and inside URLs
(``nats://user:secret@host`` keeps the user, loses the password). Credentials
files are named by path only; their contents never enter the settings.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_settings", "redact_url"]

REDACTED: Final = "[REDACTED]"
_SECRET_KEYS: Final = frozenset({"password", "pass", "token", "seed", "secret"})
_SEED: Final = re.compile(r"S[ONACXUP][A-Z2-7]{56}")


def redact_url(url: str) -> str:
    """``scheme://user:pass@host`` -> ``scheme://user:[REDACTED]@host``; a bare
    token (``scheme://token@host``) is redacted too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    safe = f"{user}:{REDACTED}" if sep else REDACTED
    return urlunsplit(parts._replace(netloc=f"{safe}@{hostport}"))


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
        if key.lower() in _SECRET_KEYS or _SEED.fullmatch(value):
            return REDACTED
        if "://" in value:
            return redact_url(value)
    return value


def redact_settings(settings: object) -> dict[str, object]:
    """The settings dataclass as JSON-ready values with secrets replaced."""
    result = _redact(settings)
    assert isinstance(result, dict)
    return result
