"""A small tmpfs to fill up: the disk-full faults of tests and ``bench.chaos``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["TmpfsUnavailable", "small_tmpfs"]


class TmpfsUnavailable(Exception):
    """This machine or user cannot mount one (tests skip, the bench exits)."""


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (mount's spelling: ``2m``, ``32m``) on a new
    directory ``mountpoint`` (root only); unmounted on exit, lazily (``-l``)
    when a process of a failed test still holds a file open there."""
    if os.geteuid() != 0:
        raise TmpfsUnavailable("mounting a tmpfs to fill up needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        raise TmpfsUnavailable("mount/umount not installed")
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise TmpfsUnavailable(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)
