"""Where the router and the uplink run: on one shared CPU while they are lightly loaded.

Theory of operation. Every message between the site and the hub crosses
``router.sock``: one process hands it to the other. When the receiving
process sleeps on another CPU and that CPU is idle, the hand-off wakes the idle
CPU, which costs more than all the Python work of the hop: an inter-processor
interrupt, a C-state exit on bare metal, and on a VM the exit and re-entry of a
halted vCPU. nats-server does both jobs in one process, and its scheduler
spins a little before it sleeps, so it rarely pays that. Keeping the two
processes on one CPU turns the hand-off into a context switch on a CPU that is
already awake. Measured on a 2-vCPU VM (``bench/uplink_bench.py``'s
request/reply across the link): p50 1.41-1.52x nats-server's leaf spread
over both CPUs, 1.14-1.24x on one.

One CPU is a cap on throughput, though, so each process watches its own CPU
use: above ``SPREAD_ABOVE`` of a CPU it lets the kernel run it anywhere it is
allowed to, and below ``GATHER_BELOW`` it returns to the shared CPU. When the
two together need more than one CPU, at least one of them gets half of it or
more, and so moves. A burst should not wait for the next sample: a reader
whose ``recv`` returned a quarter of its buffer or more (input is queueing
up) calls ``backlog_seen``, and a process on the shared CPU spreads at once.
Nor does a busy process gather while its input queues up: spread, a sample
with a backlog reads as no quieter than the one before it (on a busy machine
a process short of CPU measures little use exactly when it is behind;
gathering it then flapped the router between the shared CPU and the rest in
the middle of a stream of hub messages).
Requests one at a time are a few hundred bytes, so they never trigger it.

The shared CPU is the highest one the process may run on, so the router and
the uplink pick the same one without talking; it is seldom CPU 0, which takes
most device interrupts. The config key ``data_path_cpu`` chooses:

* ``auto`` (default): as above, when a remote is configured;
* ``off``: the kernel decides;
* a CPU number: both always run there.

``Placement`` is the decision, free of I/O; ``keep_placement`` is the trio
task that samples CPU use and applies it with ``sched_setaffinity``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

    from leafnode.config import CpuSetting, Settings

__all__ = [
    "GATHER_BELOW",
    "SAMPLE_S",
    "SPREAD_ABOVE",
    "Placement",
    "backlog_seen",
    "data_path_cpu",
    "keep_placement",
]

log = logging.getLogger("leafnode.affinity")

SAMPLE_S: Final = 0.25
"""How often a process measures its CPU use."""
SPREAD_ABOVE: Final = 0.5
"""CPU use (share of one CPU) above which a process leaves the shared CPU."""
GATHER_BELOW: Final = 0.2
"""CPU use below which it returns to it."""


class _Backlog:
    """What ``backlog_seen`` tells ``keep_placement``.

    ``event``: what it waits on while on the shared CPU (else ``None``);
    ``seen``: a backlog came since its last sample, wherever it runs
    (``Placement.target``'s ``backlog``).
    """

    event: trio.Event | None = None
    seen = False


def backlog_seen() -> None:
    """A read brought much of its buffer: input is queueing up, so leave the shared CPU now.

    Cheap enough for a read loop: an attribute test when nobody waits.
    """
    _Backlog.seen = True
    event = _Backlog.event
    if event is not None:
        event.set()


def data_path_cpu(settings: Settings) -> CpuSetting:
    """The placement that applies: ``off`` when no remote makes a data path."""
    return settings.data_path_cpu if settings.leafnodes.remotes else "off"


class Placement:
    """The CPU set a data-path process should run on (no I/O: fed CPU use, returns sets)."""

    __slots__ = ("allowed", "current", "home", "last", "warned")

    def __init__(self, allowed: frozenset[int]) -> None:
        self.allowed = allowed
        """The CPUs the process was allowed when it started (its cgroup/taskset)."""
        self.home = frozenset({max(allowed)})
        self.current = allowed
        """Where it runs now."""
        self.warned = False
        # The CPU use of the sample before (``target``'s backlog rule).
        self.last: float | None = None

    def target(
        self, setting: CpuSetting, usage: float | None, *, backlog: bool = False
    ) -> frozenset[int]:
        """Where to run, given the setting and the CPU use of the last sample.

        ``usage`` is ``None`` before the first sample (at start and after a
        change of setting): an ``auto`` process then starts on the shared CPU.
        ``backlog``: a read during the sample found input queueing up
        (``backlog_seen``). On the shared CPU that spreads the process at
        once (the window may be too short to tell its use). Spread, the sample
        then reads as no quieter than the one before it: a busy process short
        of CPU on a busy machine measures little use exactly when its input
        queues up, and gathering it then only starves it further; a process
        that stays light while its peer writes in large pieces (the uplink
        relaying the router's runs) still gathers.
        """
        if setting == "off" or len(self.allowed) < 2:
            return self.allowed
        if isinstance(setting, int):
            if setting in self.allowed:
                return frozenset({setting})
            if not self.warned:
                self.warned = True
                log.warning(
                    "data_path_cpu: CPU %d is not one this process may run on (%s); "
                    "leaving placement to the kernel",
                    setting,
                    _cpu_list(self.allowed),
                )
            return self.allowed
        last, self.last = self.last, usage
        if usage is None:
            return self.home
        if self.current == self.home:
            return self.allowed if backlog or usage > SPREAD_ABOVE else self.home
        if backlog and last is not None:
            usage = max(usage, last)
        return self.home if usage < GATHER_BELOW else self.current


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


async def keep_placement(setting: Callable[[], CpuSetting]) -> None:
    """Apply ``Placement`` every ``SAMPLE_S`` until cancelled (Linux; elsewhere a no-op).

    ``setting`` is read at every sample, so a config reload takes effect
    within one.
    """
    if not hasattr(os, "sched_setaffinity"):
        return
    placement = Placement(frozenset(os.sched_getaffinity(0)))
    last_setting: CpuSetting | None = None
    usage: float | None = None
    backlog_in_sample = False
    cpu, now = time.process_time(), time.monotonic()
    while True:
        wanted = setting()
        if wanted != last_setting:
            usage = None
            last_setting = wanted
        target = placement.target(wanted, usage, backlog=backlog_in_sample)
        if target != placement.current:
            try:
                os.sched_setaffinity(0, target)
            except OSError as exc:  # CPU hot-unplugged, or a cgroup changed under us
                log.warning("data_path_cpu: cannot move to CPU %s: %s", _cpu_list(target), exc)
            else:
                placement.current = target
                log.debug("Data path: running on CPU %s", _cpu_list(target))
        backlog = None
        if wanted == "auto" and placement.current == placement.home != placement.allowed:
            backlog = _Backlog.event = trio.Event()
        if backlog is None:
            await trio.sleep(SAMPLE_S)
        else:
            try:
                with trio.move_on_after(SAMPLE_S):
                    await backlog.wait()
            finally:
                _Backlog.event = None
        cpu_before, before = cpu, now
        cpu, now = time.process_time(), time.monotonic()
        usage = (cpu - cpu_before) / max(now - before, 1e-6)
        backlog_in_sample, _Backlog.seen = _Backlog.seen, False
