"""The process table as Linux's ``/proc/PID/stat`` shows it (no psutil)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ProcStat", "processes"]


class ProcStat(NamedTuple):
    """The fields of ``/proc/PID/stat`` that leafnode reads."""

    pid: int
    comm: str  # what /proc/PID/comm says: leafnode's services name themselves
    state: str  # R, S, D, ..., Z (zombie), X (dead)
    ppid: int


def processes() -> Iterator[ProcStat]:
    """Every process visible now; one that exits while it is read is skipped."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm may hold spaces and parentheses: it ends at the last ") ".
        comm, _, rest = stat.partition(" (")[2].rpartition(") ")
        fields = rest.split()
        yield ProcStat(int(entry.name), comm, fields[0], int(fields[1]))
