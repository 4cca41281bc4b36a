"""Router behaviours nats.py's own test suite relies on (issue 12 points 5-6).

Each test here pins one thing nats-server does that leafnode did differently,
found by running nats.py's suite against leafnode (``scripts/compat-natspy``):

- nats-server (Go) raises its soft RLIMIT_NOFILE to the hard limit at start,
  so a shell's default 1024 does not cap its clients; the router does too.
- Out of descriptors, nats-server's accept loop pauses twice as long after
  each failure, up to a second (one log line a second, not ten).
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING

import pytest

from tests.rawclient import RawClient

if TYPE_CHECKING:
    from tests.conftest import RouterFactory

LOW_NOFILE = 256


def test_router_raises_its_open_files_soft_limit_to_the_hard_limit(
    router_factory: RouterFactory,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LOW_NOFILE:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves nothing to raise")
    # The router inherits this process's limits at fork.
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, hard))
    try:
        router = router_factory()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert resource.prlimit(router.proc.pid, resource.RLIMIT_NOFILE) == (hard, hard)


def test_accept_backs_off_to_a_second_when_out_of_descriptors(
    router_factory: RouterFactory,
) -> None:
    router = router_factory()
    pid = router.proc.pid
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (highest + 4, limits[1]))
    clients: list[RawClient] = []
    try:
        # Fill the free descriptors until a connection waits unaccepted.
        while True:
            assert len(clients) < 20, "the router never ran out of descriptors"
            clients.append(RawClient(router.port, read_info=False))
            try:
                clients[-1].read_line(timeout=2.0)
            except AssertionError:
                break  # no INFO: it waits in the backlog
        deadline = time.monotonic() + 30
        while "sleeping 1000 ms" not in router.log_text():
            assert time.monotonic() < deadline, router.log_text()[-2000:]
            time.sleep(0.1)
        # Between failures it sleeps, doubling: 10, 20, ..., 640, then 1000 ms.
        log = router.log_text()
        assert "sleeping 10 ms" in log
        assert "sleeping 640 ms" in log
        assert router.proc.poll() is None
    finally:
        for client in clients:
            client.sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
