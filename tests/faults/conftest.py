"""Fault-injection fixtures: chaos runs and a small disk, each cleaned up after its test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ChaosRun, Figures, TmpfsUnavailable, small_tmpfs

ChaosFactory = Callable[..., ChaosRun]


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosFactory]:
    """Start ``ChaosRun``s (hub, proxy, site, publishers); all are closed after the test."""
    runs: list[ChaosRun] = []

    def start(**kwargs: object) -> ChaosRun:
        run = ChaosRun(tmp_path / f"run{len(runs)}", **kwargs)  # type: ignore[arg-type]
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def assert_promises_held(figures: Figures, *, hub_stopped: bool = False) -> None:
    """Every acknowledged message arrived, in order, each copy under one Nats-Msg-Id.

    The stream must hold every acknowledged message too, unless the hub was
    stopped: a hub that is shutting down (SIGTERM) or killed still routes and
    confirms what arrives to its core subscribers while its JetStream no longer
    stores it (seen in bench.chaos: whole batches published just before a hub
    stop are at the plain subscriber and not in the stream).
    """
    text = figures.render()
    assert figures.acked > 0, text
    assert figures.lost == [], text
    assert figures.out_of_order == [], text
    assert figures.foreign_ids == 0, text
    assert figures.stream_duplicates == 0, text
    if not hub_stopped:
        assert figures.stream_missing == 0, text


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs on a fresh dir (root only); unmounted afterwards."""
    try:
        with small_tmpfs(tmp_path / "disk", "8m") as mnt:
            yield mnt
    except TmpfsUnavailable as exc:
        pytest.skip(str(exc))
