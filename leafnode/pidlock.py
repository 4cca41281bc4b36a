"""A lock on a file that tells who holds it: one ``leafnode run`` per SQLite buffer.

Theory of operation
-------------------
Two sites that buffer into one SQLite file would interleave their sequence
numbers and replay each other's messages. ``leafnode run`` therefore holds a
POSIX record lock (``fcntl(F_SETLK)``) on the database file for its whole
life; a second instance finds it taken and ``F_GETLK`` names the holder's
pid, for a clear error. The lock covers one byte far beyond anything SQLite
locks (its lock bytes sit at 1 GiB; WAL mode locks the ``-shm`` file), so
it never meets the store's own locks, and the store (another process) is
not affected by it: record locks belong to a process and are not inherited.
The kernel drops the lock when the holder dies, even by SIGKILL: there is no
stale lock file to clean up.

The descriptor must not leak into other processes of the site (a process
that closes any descriptor of a file loses its record locks on it, SQLite's
included): the fork server closes it (``ForkServer.start``'s ``close_fds``).
"""

from __future__ import annotations

import fcntl
import os
import struct
from typing import Final

__all__ = ["LOCK_OFFSET", "lock_file"]

# Far past SQLite's lock bytes (PENDING_BYTE is 0x40000000, the shared range
# follows it): the record lock never conflicts with the database's own.
LOCK_OFFSET: Final = 1 << 62
# struct flock on Linux (x86_64, aarch64): l_type, l_whence, l_start, l_len, l_pid.
_FLOCK: Final = struct.Struct("hhqqi4x")


def lock_file(path: str) -> tuple[int | None, int | None]:
    """Lock ``path`` (created if missing) for this process.

    Returns ``(fd, None)`` when the lock is ours (keep ``fd`` open as long as
    it must hold), or ``(None, pid)`` when process ``pid`` holds it.

    Raises:
        OSError: the file cannot be opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LOCK_OFFSET, os.SEEK_SET)
    except OSError:
        query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, LOCK_OFFSET, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        os.close(fd)
        kind, _, _, _, pid = _FLOCK.unpack(answer)
        if kind == fcntl.F_UNLCK:  # released in between: try once more
            return lock_file(path)
        return None, pid
    return fd, None
