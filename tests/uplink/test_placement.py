"""The router and the uplink share one CPU while quiet, and spread when busy (``data_path_cpu``).

Placement is read back from ``/proc/PID/status`` (``Cpus_allowed_list``), as
an operator would with ``taskset -p``.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import TYPE_CHECKING

import pytest

from tests.conftest import wait_until
from tests.uplink.conftest import remote_config

if TYPE_CHECKING:
    from tests.uplink.conftest import HubStarter, Site, SiteStarter

ALLOWED = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()
HOME = frozenset({max(ALLOWED)}) if ALLOWED else frozenset()

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.e2e,
    pytest.mark.skipif(len(ALLOWED) < 2, reason="needs Linux and two CPUs to place processes on"),
]


def cpus_of(pid: int) -> frozenset[int]:
    """``Cpus_allowed_list`` of a process (``0-1``, ``0,2-3``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Cpus_allowed_list:"):
                cpus: set[int] = set()
                for part in line.split(":", 1)[1].strip().split(","):
                    low, _, high = part.partition("-")
                    cpus.update(range(int(low), int(high or low) + 1))
                return frozenset(cpus)
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


def placed(site: Site) -> tuple[frozenset[int], frozenset[int]]:
    return cpus_of(site.router.proc.pid), cpus_of(site.uplink.proc.pid)


def start_site(hub_factory: HubStarter, site_factory: SiteStarter, extra: str = "") -> Site:
    hub = hub_factory()
    return site_factory(remote_config(f'{{ url: "{hub.leaf_url}" }}', extra=extra))


async def test_quiet_router_and_uplink_share_the_highest_cpu(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    site = start_site(hub_factory, site_factory)
    await wait_until(lambda: placed(site) == (HOME, HOME), what=f"both on CPU {set(HOME)}")


async def test_a_busy_router_spreads_and_comes_back_when_quiet(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    site = start_site(hub_factory, site_factory)
    await wait_until(lambda: placed(site) == (HOME, HOME), what="both on the shared CPU")
    stop = threading.Event()
    chunk = b"PUB busy 2\r\nhi\r\n" * 20_000

    def flood() -> None:
        with socket.create_connection(("127.0.0.1", site.router.port)) as sock:
            sock.sendall(b'CONNECT {"verbose":false}\r\n')
            while not stop.is_set():
                sock.sendall(chunk)

    blaster = threading.Thread(target=flood, daemon=True)
    blaster.start()
    try:
        # The router parses the flood (one CPU's worth); the uplink has nothing to do.
        await wait_until(
            lambda: placed(site) == (ALLOWED, HOME), timeout=15, what="the router spreading"
        )
    finally:
        stop.set()
        blaster.join(timeout=10)
    await wait_until(lambda: placed(site) == (HOME, HOME), timeout=10, what="the router back")


async def test_reload_to_off_hands_placement_back_to_the_kernel(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    site = start_site(hub_factory, site_factory)
    await wait_until(lambda: placed(site) == (HOME, HOME), what="both on the shared CPU")
    site.config_path.write_text("data_path_cpu: off\n" + site.config_path.read_text())
    site.router.proc.send_signal(signal.SIGHUP)
    site.uplink.proc.send_signal(signal.SIGHUP)
    # Within one sample once the reload is applied; the reload itself (both
    # processes re-read and check the file) took more than 5 s once in a
    # loaded clean-clone CI run.
    await wait_until(
        lambda: placed(site) == (ALLOWED, ALLOWED), timeout=30.0, what="both on every CPU"
    )


async def test_a_cpu_number_pins_both_there(
    hub_factory: HubStarter, site_factory: SiteStarter
) -> None:
    cpu = min(ALLOWED)
    site = start_site(hub_factory, site_factory, extra=f"data_path_cpu: {cpu}")
    only = frozenset({cpu})
    await wait_until(lambda: placed(site) == (only, only), what=f"both on CPU {cpu}")
