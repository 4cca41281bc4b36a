"""``leafnode [run] --signal|-sl CMD[=PID]``: signal a running site, as nats-server's ``-sl``.

Commands and signals as nats-server (server/signal.go): ``stop`` SIGKILL,
``quit`` SIGINT, ``term`` SIGTERM, ``reopen`` SIGUSR1 (reopen the log
file), ``reload`` SIGHUP, ``ldm`` SIGUSR2 (lame-duck mode). The pid is the
one after ``=`` (a number, or a pid file's path); without one, the pid file
of ``-P``/``--pid`` or of the config file's ``pid_file``; without those, the
single running ``leafnode run`` (a process whose child is a fork server named
``leafnode-fork``): none or several running is an error that lists them, as
nats-server's (it asks ``pgrep``). Exit status 0 once the signal is sent, 1
with a reason on stderr otherwise.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from leafnode.procfs import processes

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["COMMANDS", "signal_flag", "signal_main"]

COMMANDS: Final = {
    "stop": signal.SIGKILL,
    "quit": signal.SIGINT,
    "term": signal.SIGTERM,
    "reopen": signal.SIGUSR1,
    "reload": signal.SIGHUP,
    "ldm": signal.SIGUSR2,
}
_SIGNAL_FLAGS: Final = ("--signal", "-sl")
_PID_FLAGS: Final = ("-P", "--pid")
_CONFIG_FLAGS: Final = ("-c", "--config")


class SignalError(Exception):
    """The signal cannot be sent; the message says why."""


def _value(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The value of the last of ``names`` in ``argv`` (``-X v`` or ``--xx=v``)."""
    found: str | None = None
    for i, arg in enumerate(argv):
        if arg in names:
            found = argv[i + 1] if i + 1 < len(argv) else ""
        elif "=" in arg and arg.partition("=")[0] in names:
            found = arg.partition("=")[2]
    return found


def signal_flag(argv: Sequence[str]) -> str | None:
    """The ``--signal``/``-sl`` value in ``argv``, or None without the flag."""
    return _value(argv, _SIGNAL_FLAGS)


def _read_pid(text: str) -> int:
    if text.strip().isdigit():
        return int(text.strip())
    try:
        content = Path(text).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise SignalError(f"invalid pid: {text}") from None
    if not content.isdigit():
        raise SignalError(f"invalid pid in {text}: {content!r}")
    return int(content)


def running_sites() -> list[int]:
    """Pids of the running ``leafnode run`` processes (parents of a ``leafnode-fork``)."""
    pids = [
        proc.ppid
        for proc in processes()
        if proc.comm == "leafnode-fork" and proc.state not in ("Z", "X")
    ]
    return sorted(p for p in set(pids) if p != os.getpid())


def _config_pid_file(config: str) -> str | None:
    from leafnode.config import ConfigError, load

    try:
        return load(config).log.pid_file
    except ConfigError as exc:
        raise SignalError(str(exc)) from None


def resolve_pid(pid_text: str, argv: Sequence[str]) -> int:
    """The pid to signal (see the module docstring)."""
    if pid_text:
        return _read_pid(pid_text)
    pid_file = _value(argv, _PID_FLAGS)
    config = _value(argv, _CONFIG_FLAGS)
    if not pid_file and config:
        pid_file = _config_pid_file(config)
    if pid_file:
        return _read_pid(pid_file)
    pids = running_sites()
    if not pids:
        raise SignalError("no leafnode processes running")
    if len(pids) > 1:
        listed = "\n".join(str(p) for p in pids)
        raise SignalError(f"multiple leafnode processes running:\n{listed}")
    return pids[0]


def signal_main(argv: Sequence[str]) -> int:
    """Send the signal ``argv``'s ``--signal`` asks for; returns the exit status."""
    value = signal_flag(argv) or ""
    command, _, pid_text = value.partition("=")
    try:
        if command not in COMMANDS:
            raise SignalError(f'unknown signal "{command}"')
        pid = resolve_pid(pid_text, argv)
        try:
            os.kill(pid, COMMANDS[command])
        except ProcessLookupError:
            raise SignalError(f"no such process: {pid}") from None
        except PermissionError:
            raise SignalError(f"not allowed to signal process {pid}") from None
    except SignalError as exc:
        print(f"leafnode: {exc}", file=sys.stderr)
        return 1
    return 0
