"""Process plumbing shared by every service: nats-server style logging, pid files.

Log lines look like nats-server's (``[pid] YYYY/MM/DD HH:MM:SS.uuuuuu [INF] ...``)
so operators' log parsers and our tests can read both the same way. ``-D``
enables ``[DBG]`` and ``-V`` enables ``[TRC]`` lines.

SIGUSR1 reopens the log file, as nats-server does for log rotation (rename
the file, send SIGUSR1, new lines go to a new file under the old name). The
signal handler only sets a flag; the handler's next ``emit`` reopens, under
the handler's lock, so a line is never split between two files and no I/O
runs inside a signal handler. ``leafnode run`` passes the signal on to every
service.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from leafnode.config import LogSettings

__all__ = [
    "TRACE",
    "NatsLogFormatter",
    "ReopeningFileHandler",
    "reapply_logging",
    "request_log_reopen",
    "setup_logging",
    "write_pid_file",
]

# Below DEBUG: protocol tracing (-V), as nats-server's [TRC].
TRACE = 5
logging.addLevelName(TRACE, "TRC")

_LEVEL_TAGS = {
    TRACE: "TRC",
    logging.DEBUG: "DBG",
    logging.INFO: "INF",
    logging.WARNING: "WRN",
    logging.ERROR: "ERR",
    logging.CRITICAL: "FTL",
}


class NatsLogFormatter(logging.Formatter):
    """``[pid] 2026/11/28 01:02:03.123456 [INF] message`` (nats-server's layout)."""

    def __init__(self, *, logtime: bool = True) -> None:
        super().__init__()
        self._pid = os.getpid()
        self._logtime = logtime

    def format(self, record: logging.LogRecord) -> str:
        tag = _LEVEL_TAGS.get(record.levelno, "INF")
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if not self._logtime:
            return f"[{self._pid}] [{tag}] {message}"
        seconds = record.created
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(seconds))
        micros = int((seconds % 1) * 1_000_000)
        return f"[{self._pid}] {stamp}.{micros:06d} [{tag}] {message}"


class ReopeningFileHandler(logging.FileHandler):
    """A file handler that reopens its file (same name) once asked to.

    :func:`request_log_reopen` (SIGUSR1) asks every instance; the reopen
    happens at the next line, inside ``emit`` (under the handler's lock).
    """

    _generation = 0  # bumped by request_log_reopen

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self._opened_at = ReopeningFileHandler._generation

    def emit(self, record: logging.LogRecord) -> None:
        if self._opened_at != ReopeningFileHandler._generation:
            self._opened_at = ReopeningFileHandler._generation
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        super().emit(record)


def request_log_reopen() -> None:
    """Make every log file handler reopen its file before its next line."""
    ReopeningFileHandler._generation += 1


def _on_sigusr1(_signum: int, _frame: object) -> None:
    request_log_reopen()


def setup_logging(
    *,
    debug: bool = False,
    trace: bool = False,
    logtime: bool = True,
    log_file: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger once, at process start (never at import)."""
    level = TRACE if trace else logging.DEBUG if debug else logging.INFO
    handler: logging.Handler
    if log_file:
        handler = ReopeningFileHandler(log_file)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(NatsLogFormatter(logtime=logtime))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if threading.current_thread() is threading.main_thread():
        # Also without a log file: SIGUSR1's default action would kill us.
        signal.signal(signal.SIGUSR1, _on_sigusr1)


def reapply_logging(old: LogSettings, new: LogSettings) -> None:
    """After a reload: log as ``new`` says when its level, format or file changed.

    As nats-server, ``debug``, ``trace``, ``logtime`` and ``log_file`` apply
    at run time (a new log file is opened; the old one is left as it is).
    """
    keys = ("debug", "trace", "logtime", "log_file")
    if all(getattr(old, k) == getattr(new, k) for k in keys):
        return
    setup_logging(debug=new.debug, trace=new.trace, logtime=new.logtime, log_file=new.log_file)


def write_pid_file(path: str) -> None:
    """Write our pid to ``path`` as nats-server's ``-P`` does."""
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}")
