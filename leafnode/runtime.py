"""Process plumbing shared by every service: nats-server style logging, pid files.

Log lines look like nats-server's (``[pid] YYYY/MM/DD HH:MM:SS.uuuuuu [INF] ...``)
so operators' log parsers and our tests can read both the same way. ``-D``
enables ``[DBG]`` and ``-V`` enables ``[TRC]`` lines.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

__all__ = ["TRACE", "NatsLogFormatter", "setup_logging", "write_pid_file"]

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
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(NatsLogFormatter(logtime=logtime))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def write_pid_file(path: str) -> None:
    """Write our pid to ``path`` as nats-server's ``-P`` does."""
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}")
