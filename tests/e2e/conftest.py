"""Fixtures of the end-to-end tests: a hub, and ``leafnode run`` sites stopped after the test."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import HubProcess, SiteProcess, pid_alive

_ids = itertools.count()
SiteStarter = Callable[..., SiteProcess]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    proc = HubProcess(workdir=tmp_path / "hub")
    proc.wait_ready()
    yield proc
    proc.kill()


@pytest.fixture
def start_site(tmp_path: Path) -> Iterator[SiteStarter]:
    started: list[SiteProcess] = []

    def start(config: str = "", *, wait: bool = True, **options: object) -> SiteProcess:
        workdir = options.pop("workdir", None) or tmp_path / f"site{next(_ids)}"
        assert isinstance(workdir, Path)
        site = SiteProcess(config, workdir=workdir, **options)  # type: ignore[arg-type]
        started.append(site)
        if wait:
            site.wait_ready()
        return site

    yield start
    for site in started:
        children = site.children() if site.proc.poll() is None else {}
        site.stop()
        for pid in children.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
