"""nats-server's cluster flags are parsed and warned about (issue 12 point 8, issue 14 point 1).

Scripts that start ``nats-server --cluster ... --routes ... --cluster_name ...``
start leafnode the same way; the flags land in ``Settings.cluster``
(tests/unit/test_config_cluster.py), and until routes are served one warning
line names the flags given, as the ``cluster {}`` block's line does.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from leafnode.config import CLUSTER_NOT_SERVED
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
    "command line: --cluster, --routes, --cluster_name is not supported by leafnode; "
    f"ignored ({CLUSTER_NOT_SERVED})"
]


def test_flags_become_one_warning() -> None:
    loaded = load_with_flags("leafnode run", ["-p", "-1", *CLUSTER_ARGS])
    assert not isinstance(loaded, int)
    settings, _ = loaded
    assert list(settings.warnings) == WARNINGS


def test_no_cluster_flag_no_warning() -> None:
    loaded = load_with_flags("leafnode run", ["-p", "-1"])
    assert not isinstance(loaded, int)
    assert loaded[0].warnings == ()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--cluster_listen", "nats://h:1"], "--cluster"),
        (["--cluster_advertise", "h:1"], "--cluster_advertise"),
        (["--connect_retries", "3"], "--connect_retries"),
        (["--no_advertise"], "--no_advertise"),
    ],
)
def test_other_cluster_flags(argv: list[str], named: str) -> None:
    loaded = load_with_flags("leafnode run", argv)
    assert not isinstance(loaded, int)
    assert loaded[0].cluster is not None
    assert loaded[0].warnings == (
        f"command line: {named} is not supported by leafnode; ignored ({CLUSTER_NOT_SERVED})",
    )


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
