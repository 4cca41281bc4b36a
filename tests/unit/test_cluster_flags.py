"""nats-server's cluster flags are parsed and served (issue 12 point 8, issue 14 point 1).

Scripts that start ``nats-server --cluster ... --routes ... --cluster_name ...``
start leafnode the same way; the flags land in ``Settings.cluster``
(tests/unit/test_config_cluster.py) and the router serves them
(tests/e2e/test_cluster_routes.py): no warning.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from leafnode.flags import load_with_flags
from tests.support import RouterProcess, wait_for_log

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


def test_flags_configure_the_cluster_without_a_warning() -> None:
    loaded = load_with_flags("leafnode run", ["-p", "-1", *CLUSTER_ARGS])
    assert not isinstance(loaded, int)
    settings, _ = loaded
    assert settings.warnings == ()
    assert settings.cluster is not None
    assert settings.cluster.name == "site-cluster"
    assert settings.cluster.routes == ("nats://127.0.0.1:6223", "nats://127.0.0.1:6224")


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
    assert loaded[0].warnings == (), named


def test_check_mode_prints_no_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leafnode", "run", "-t", *CLUSTER_ARGS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_router_listens_for_routes_from_the_flags(tmp_path: Path) -> None:
    args = ("--cluster", "nats://127.0.0.1:-1", "--cluster_name", "site-cluster")
    router = RouterProcess("", workdir=tmp_path, extra_args=args)
    try:
        router.wait_ready()
        # The route port is bound (and logged) just after the client port.
        log = wait_for_log(router, "Listening for route connections on")
        assert "not supported" not in log
        assert log.count("Cluster name is site-cluster") == 1, log
        assert log.count("Listening for route connections on 127.0.0.1:") == 1, log
    finally:
        router.kill()


def test_an_unnamed_cluster_with_remotes_is_warned_about(tmp_path: Path) -> None:
    config = (
        'cluster { listen: "127.0.0.1:-1" }\n'
        'leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:1" } ] }\n'
    )
    router = RouterProcess(config, workdir=tmp_path)
    try:
        router.wait_ready()
        log = router.log_text()
        assert "Cluster name was dynamically generated" in log
        assert "cluster.name is not set: the hub links cannot name the cluster" in log
    finally:
        router.kill()
