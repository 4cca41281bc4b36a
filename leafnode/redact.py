"""Secrets out of everything shown: URLs with credentials, and the mask itself.

DESIGN §5: no command, log line or answer prints a secret; a URL is shown as
``scheme://user:***@host:port`` (log lines, CLI output, error answers) or
``host:port`` (``/varz``, as nats-server's ``urlsToStrings``); a traced
``CONNECT`` shows its credentials masked, as nats-server's. ``GET /config``
masks with ``REDACTED`` instead, so that a config sent back with it is
recognised (``services/api/redact.py``).

A URL carries secrets in its userinfo (``user:password@``, or a bare token
``token@``) and, for database URLs, in query parameters (libpq's
``?password=``). Both are masked; everything else is kept so an operator can
still tell which server is meant.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["CONNECT_SECRETS", "MASK", "REDACTED", "redact_connect", "redact_url", "url_address"]

MASK: Final = "***"
"""What a secret looks like in log lines and CLI output (SQLAlchemy's own mask)."""
REDACTED: Final = "[REDACTED]"
"""What a secret looks like in ``GET /config``; sent back, it means "keep the secret"."""
CONNECT_SECRETS: Final = frozenset({"pass", "auth_token", "jwt", "sig"})
"""CONNECT options a trace line shows masked (nats-server masks ``pass`` and
``auth_token``; a JWT and a signed nonce are credentials too)."""
# Query parameters of database URLs that hold a secret (libpq, psycopg).
_SECRET_PARAMS: Final = frozenset({"password", "pass", "passwd", "token", "sslpassword"})


def redact_url(url: str, mask: str = MASK) -> str:
    """``url`` with its password (or bare token) and secret query values replaced by ``mask``.

    A string that does not parse as a URL is returned whole only when it holds
    no ``@`` (it cannot carry userinfo then); otherwise it becomes ``mask``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask if "@" in url else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{mask}@{hostport}" if sep else f"{mask}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
            query = urlencode(
                [(k, mask if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*[]"
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing secret; urlunsplit would drop an empty authority's "//"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_address(url: str) -> str:
    """``host:port`` of ``url`` as nats-server's monitoring shows remote URLs (no scheme, no
    userinfo); the port is left out when the URL names none."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return redact_url(url)
    if not hostname:
        return redact_url(url)
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port is None else f"{host}:{port}"


def redact_connect(options: dict[str, object]) -> dict[str, object]:
    """A copy of CONNECT ``options`` with each credential replaced by ``REDACTED``."""
    return {k: REDACTED if k in CONNECT_SECRETS else v for k, v in options.items()}
