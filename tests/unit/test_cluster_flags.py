"""nats-server's cluster flags are accepted with one warning line each (issue 12 point 8).

Scripts that start ``nats-server --cluster ... --routes ... --cluster_name ...``
start leafnode the same way; leafnode is not a cluster node, so the flags are
ignored and said to be, as the ``cluster {}`` block is in a config file.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from leafnode.flags import load_with_flags
from tests.support import RouterProcess

if TYPE_CHECKING:
    from pathlib import Path

CLUSTER_ARGS = (
    "--cluster",
    "nats://0.0.0.0:6222",
    "--routes",
    "nats://127.0.0.1:6223,nats://127.0.0.1:6224",
    "--cluster_name",
    "site-cluster",
)
WARNINGS = [
    f"command line: {flag} is not supported by leafnode; ignored"
    for flag in ("--cluster", "--routes", "--cluster_name")
]


def test_flags_become_one_warning_each() -> None:
    loaded = load_with_flags("leafnode run", ["-p", "-1", *CLUSTER_ARGS])
    assert not isinstance(loaded, int)
    settings, _ = loaded
    assert list(settings.warnings) == WARNINGS


def test_no_cluster_flag_no_warning() -> None:
    loaded = load_with_flags("leafnode run", ["-p", "-1"])
    assert not isinstance(loaded, int)
    assert loaded[0].warnings == ()


@pytest.mark.parametrize("flag", ["--cluster_listen", "--cluster_advertise", "--connect_retries"])
def test_other_cluster_flags(flag: str) -> None:
    loaded = load_with_flags("leafnode run", [flag, "x"])
    assert not isinstance(loaded, int)
    assert loaded[0].warnings == (f"command line: {flag} is not supported by leafnode; ignored",)


def test_check_mode_prints_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leafnode", "run", "-t", *CLUSTER_ARGS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"leafnode run: warning: {w}" for w in WARNINGS]


def test_router_starts_and_logs_each_once(tmp_path: Path) -> None:
    router = RouterProcess("", workdir=tmp_path, extra_args=CLUSTER_ARGS)
    try:
        router.wait_ready()
        log = router.log_text()
        for warning in WARNINGS:
            assert log.count(warning) == 1, log
    finally:
        router.kill()
