"""Pieces of ``leafnode run``'s start-up (issue 12): the early bind's flag reading, store paths."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from leafnode.clientport import DEFAULT_MONITOR_HOST, bind_early, bind_early_monitor, take_socket
from leafnode.config import ApiSettings
from leafnode.supervisor import sqlite_path


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "leaf.conf"],  # the file may name the address
        ["-c", "leaf.conf", "-p", "4222"],  # ... or the host
        ["-v"],
        ["--help"],
        ["-t", "-c", "leaf.conf"],
        ["--signal", "reload"],
        ["-p", "not-a-number"],  # argparse reports it
    ],
)
def test_no_early_bind_when_the_flags_do_not_decide(argv: list[str]) -> None:
    assert bind_early(argv) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["-p", "-1", "-a", "127.0.0.1"],
        ["--port=-1", "--addr=127.0.0.1"],
        ["-p-1", "--net", "127.0.0.1", "-c", "leaf.conf"],
    ],
)
def test_early_bind_from_the_flags(argv: list[str]) -> None:
    early = bind_early(argv)
    assert early is not None
    assert early.sock is not None
    try:
        assert (early.host, early.port) == ("127.0.0.1", -1)
        assert early.sock.getsockname()[0] == "127.0.0.1"
        # The config agrees: the same socket; it does not: a new one.
        assert take_socket(early, "127.0.0.1", -1) is early.sock
    finally:
        early.sock.close()


def test_an_early_socket_the_config_contradicts_is_replaced() -> None:
    early = bind_early(["-p", "-1", "-a", "127.0.0.1"])
    assert early is not None
    assert early.sock is not None
    sock = take_socket(early, "127.0.0.1", 0)
    try:
        assert sock is not early.sock
        assert early.sock.fileno() == -1  # closed
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass
    finally:
        sock.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["-p", "-1"],  # no monitoring port asked for
        ["-c", "leaf.conf", "-m", "-1"],  # the file may name the host
        ["-m", "not-a-number"],  # argparse reports it
        ["-m", "-1", "--signal", "reload"],
        ["-t", "-m", "-1"],
    ],
)
def test_no_early_monitoring_bind_when_the_flags_do_not_decide(argv: list[str]) -> None:
    assert bind_early_monitor(argv) is None


@pytest.mark.parametrize("argv", [["-m", "-1"], ["--http_port=-1", "-p", "4222"], ["-m-1"]])
def test_early_monitoring_bind_from_the_flags(argv: list[str]) -> None:
    early = bind_early_monitor(argv)
    assert early is not None
    assert early.sock is not None
    try:
        assert (early.host, early.port) == ("127.0.0.1", -1)
        assert early.sock.getsockname()[0] == "127.0.0.1"
        assert take_socket(early, "127.0.0.1", -1) is early.sock
    finally:
        early.sock.close()


def test_the_early_monitoring_host_is_the_config_default() -> None:
    assert ApiSettings().host == DEFAULT_MONITOR_HOST


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///leafnode-buffer.db", "leafnode-buffer.db"),
        ("sqlite:////var/lib/leafnode/b.db", "/var/lib/leafnode/b.db"),
        ("sqlite+pysqlite:///b.db?timeout=5", "b.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_sqlite_path(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


def test_the_preloaded_services_import_wsproto_only_for_a_websocket() -> None:
    # leafnode run's supervisor imports the router's and the uplink's modules
    # before it forks (the start-up's critical path); wsproto with h11 was a
    # third of that, for a websocket port or a ws:// hub few sites have.
    code = (
        "import sys, services.router.__main__, services.uplink.__main__; "
        "print(sorted(m for m in ('wsproto', 'h11', 'leafnode.websocket') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
