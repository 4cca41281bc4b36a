"""tests.support.free_port: no collisions between calls, processes or outgoing connections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import _procs
from tests.support._procs import free_port

ROOT = Path(__file__).resolve().parents[2]
LOW, HIGH = _procs._port_range()

needs_room = pytest.mark.skipif(
    HIGH - LOW < 4 * _procs._HELD_LOCKS, reason="no room below the ephemeral range"
)


@needs_room
def test_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    # With port 0 the kernel picks from the ephemeral range, where outgoing
    # connections take their local ports, and may return a port twice.
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(LOW <= p < HIGH for p in ports)


@needs_room
def test_another_process_never_gets_a_port_this_one_holds() -> None:
    mine = {free_port() for _ in range(200)}
    code = (
        "from tests.support._procs import free_port, _cursor\n"
        # Start the other process exactly where this one handed ports out.
        f"_cursor.append({min(mine)})\n"
        "print(' '.join(str(free_port()) for _ in range(200)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    theirs = {int(p) for p in out.stdout.split()}
    assert len(theirs) == 200
    assert not mine & theirs
