"""Whether the store's database takes writes, and why not, in an operator's words.

Theory of operation
-------------------
The store is the database's only user, so it is the one that can say whether
the database works. ``DatabaseHealth`` is that state: ``up``, and while it is
down an ``error`` sentence and since when. It changes on the outcome of
every operation that touched the database (``failed``/``succeeded``, called
by ``server.py``'s DB worker) and of a periodic probe, a one-row write that
runs whenever the store is otherwise idle, so the state is true even while
nothing is buffered.

A failed write (an append, an ack) is better evidence than a probe: on a
full disk a one-row probe can still fit where a batch does not. So after a
failed write, only a successful write clears the state, or a successful
probe once no write has failed for ``WRITE_FAILURE_HOLD_S`` (nobody is
retrying, the probe is all there is to go by).

Each outage is logged once at WARNING when it starts and once when it ends;
the failures in between are DEBUG lines (clients retry, so they come by the
hundred). ``describe`` turns a driver exception into a sentence naming the
failure and the database (a SQLite path, a PostgreSQL host and port), never
the driver's text, which can quote SQL, data or the login.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["WRITE_FAILURE_HOLD_S", "DatabaseHealth", "database_name", "describe"]

log = logging.getLogger("leafnode.store")

# After a failed write, how long a successful probe alone does not end the
# outage: longer than the router's retry back-off (2 s), so while someone
# retries appends their outcome decides.
WRITE_FAILURE_HOLD_S: Final = 5.0

# SQLite result codes (primary, low byte) -> what the operator should hear.
_SQLITE: Final = {
    "SQLITE_FULL": "the disk holding the SQLite database {db} is full",
    "SQLITE_BUSY": "the SQLite database {db} is locked by another process",
    "SQLITE_LOCKED": "the SQLite database {db} is locked by another process",
    "SQLITE_READONLY": "the SQLite database {db} is read-only",
    "SQLITE_IOERR": "I/O error on the SQLite database {db}",
    "SQLITE_CANTOPEN": "cannot open the SQLite database {db}",
    "SQLITE_CORRUPT": "the SQLite database {db} is corrupt",
    "SQLITE_NOTADB": "{db} is not a SQLite database",
    "SQLITE_PERM": "no permission to write the SQLite database {db}",
}
# PostgreSQL SQLSTATE classes and codes -> sentences.
_PG_STATES: Final = {
    "28": "PostgreSQL at {db} refused the store's login (password or role revoked?)",
    "08": "the connection to PostgreSQL at {db} failed",
    "53": "PostgreSQL at {db} is out of resources (disk full or too many connections)",
    "57P01": "PostgreSQL at {db} is shutting down or closed the store's connection",
    "57P02": "PostgreSQL at {db} is shutting down or closed the store's connection",
    "57P03": "PostgreSQL at {db} is starting up and does not accept connections yet",
    "25006": "PostgreSQL at {db} is read-only (a standby?)",
    "3D000": "the database of PostgreSQL at {db} does not exist",
}
# libpq connection failures carry no SQLSTATE; their text says which.
_PG_TEXTS: Final = (
    ("password authentication failed", _PG_STATES["28"]),
    ("not permitted to log in", _PG_STATES["28"]),
    ("no pg_hba.conf entry", _PG_STATES["28"]),
    ("connection refused", "PostgreSQL at {db} does not accept connections (stopped?)"),
    ("not currently accepting connections", "PostgreSQL at {db} does not accept connections"),
    ("does not exist", _PG_STATES["3D000"]),
    ("no such file or directory", "PostgreSQL at {db} does not accept connections (stopped?)"),
    ("the database system is starting up", _PG_STATES["57P03"]),
    ("the database system is shutting down", _PG_STATES["57P01"]),
    ("terminating connection", "the connection to PostgreSQL at {db} was cut"),
    ("server closed the connection", "the connection to PostgreSQL at {db} was cut"),
    ("consuming input failed", "the connection to PostgreSQL at {db} was cut"),
    ("connection is lost", "the connection to PostgreSQL at {db} was cut"),
    ("connection is closed", "the connection to PostgreSQL at {db} was cut"),
    ("timeout", "PostgreSQL at {db} does not answer (timeout)"),
)


def database_name(url: str) -> str:
    """The database as an operator names it: a SQLite path, or PostgreSQL's host:port/db."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    host = parsed.host or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}/{parsed.database or ''}"


def describe(exc: BaseException, db: str) -> str:
    """An operator's sentence for a database failure (no driver text, no credentials)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.Error):
        name = getattr(orig, "sqlite_errorname", "") or ""
        for prefix, sentence in _SQLITE.items():
            if name == prefix or name.startswith(prefix + "_"):
                return sentence.format(db=db)
        text = str(orig).lower()
        if "disk is full" in text:
            return _SQLITE["SQLITE_FULL"].format(db=db)
        if "locked" in text:
            return _SQLITE["SQLITE_BUSY"].format(db=db)
        if "readonly" in text or "read-only" in text:
            return _SQLITE["SQLITE_READONLY"].format(db=db)
        return f"the SQLite database {db} failed ({name or type(orig).__name__})"
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state:
        for key in (state, state[:2]):
            if key in _PG_STATES:
                return _PG_STATES[key].format(db=db)
    text = str(orig).lower()
    for needle, sentence in _PG_TEXTS:
        if needle in text:
            return sentence.format(db=db)
    what = f"SQLSTATE {state}" if isinstance(state, str) and state else type(orig).__name__
    return f"the database at {db} failed ({what})"


class DatabaseHealth:
    """The database's state as the store last saw it (see the module doc).

    Args:
        db: the database's name for sentences (``database_name``).
        clock: monotonic seconds (tests may pass another).
    """

    def __init__(self, db: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.up = True
        self.error: str | None = None
        # Wall time (us) when the outage began, for the answers.
        self.down_since_us: int | None = None
        self.failures = 0
        self._clock = clock
        self._down_at = 0.0
        self._write_failed_at: float | None = None

    def failed(self, exc: BaseException, *, write: bool, what: str) -> str:
        """Record a failed operation; returns the sentence for the answer."""
        sentence = describe(exc, self.db)
        if write:
            self._write_failed_at = self._clock()
        self.failures += 1
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.debug("%s failed: %s", what, _strip_login(first_line))
        if self.up:
            self.up = False
            self._down_at = self._clock()
            self.down_since_us = time.time_ns() // 1000
            log.warning(
                "Store database unavailable: %s; requests are answered 'unavailable' "
                "and buffered messages wait in the router until it recovers",
                sentence,
            )
        elif sentence != self.error:
            log.debug("Store database still unavailable: %s", sentence)
        self.error = sentence
        return sentence

    def succeeded(self, *, write: bool, probe: bool = False) -> None:
        """Record an operation that committed (a read proves nothing: see the module doc)."""
        if not write:
            return
        if self.up:
            self._write_failed_at = None
            return
        held = self._write_failed_at
        if probe and held is not None and self._clock() - held < WRITE_FAILURE_HOLD_S:
            return
        log.warning(
            "Store database available again after %.1f s (%d failed operations meanwhile)",
            self._clock() - self._down_at,
            self.failures,
        )
        self.up = True
        self.error = None
        self.down_since_us = None
        self.failures = 0
        self._write_failed_at = None

    def as_fields(self) -> dict[str, object]:
        """The ``database`` object of the ``ping`` and ``stats`` answers."""
        return {"up": self.up, "error": self.error, "down_since_us": self.down_since_us}


def _strip_login(text: str) -> str:
    """Driver text for DEBUG lines, without a ``user@`` or ``password=`` it may quote."""
    out = []
    for word in text.split():
        low = word.lower()
        if "password" in low or "@" in word:
            out.append("[REDACTED]")
        else:
            out.append(word)
    return " ".join(out)
