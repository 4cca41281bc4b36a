"""A site under faults, and the figures that say whether its promises held.

Theory of operation
-------------------
``ChaosRun`` starts a hub ``nats-server`` with JetStream (a stream ``TELE``
on ``tele.>`` whose duplicate window drops copies with the same
``Nats-Msg-Id``), a ``FaultProxy`` in front of the hub's leafnode port, and a
site under ``leafnode run`` whose remote dials the proxy and buffers
``tele.>``. ``CountingPublisher`` threads publish flushed batches into the
site; a ``HubSubscriber`` on the hub, and the stream, count what arrived.

Each fault method breaks one thing while the publishers keep publishing,
waits for the break to be seen, repairs it, and records how long the site
took from the repair to a drained backlog (``drains``):

* ``link_fault(kind)``: the proxy closes, resets, blackholes or refuses;
* ``kill_service(name)``: SIGKILL of the router, uplink or store (the
  supervisor restarts it);
* ``restart_hub(signum)``: the hub stops (SIGTERM or SIGKILL) and starts again;
* ``database_outage()``: the PostgreSQL cluster stops and starts again;
* ``disk_full()``: a filler file takes every free byte of the SQLite disk
  while the hub link is refused (so the backlog must grow), then goes.

``finish()`` stops the publishers, waits until the site is drained and the
hub has what was acknowledged (or a deadline passed), reads the stream and
computes ``Figures``: acknowledged-but-lost (at neither the subscriber nor
the stream: must be 0), order of first arrivals per publisher, duplicates
(each must carry one ``Nats-Msg-Id``, and the stream must hold each message
once), acknowledged messages the stream lacks (by the outage they were sent
after), the worst drain time, and each service's memory (PSS) over the run.

``SiteChaosRun`` (``_site_chaos``) runs the same on a three-node site: it
starts its site in ``_start_site``, picks each publisher's node in
``_publish_port`` and looks at every node where this class looks at one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Self

from leafnode.ipc import STORE_SOCKET, IpcError

from ._procs import free_port
from ._proxy import FaultKind, FaultProxy
from ._site import SiteProcess, ping_socket
from ._traffic import CountingPublisher, HubSubscriber, ipc_request, memory_kb, parse_id
from ._uplink import HubProcess, restart_process, wait_for_log

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ._postgres import PgCluster

__all__ = ["SERVICES", "ChaosRun", "Figures"]

SERVICES: Final = ("router", "uplink", "store")
STREAM: Final = "TELE"
# Longer than any run: a resent copy must meet the first one in the window.
DUPLICATE_WINDOW_S: Final = 3600.0
SOCKETS: Final = {"router": "router.ctl", "uplink": "uplink.ctl", "store": STORE_SOCKET}
# Everything waits for effects, with deadlines generous for a loaded 2-core machine.
RECOVERY_TIMEOUT_S: Final = 90.0
POLL_S: Final = 0.05


def _wait(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_S)


@dataclass
class Figures:
    """The outcome of a run (see the module doc); ``ok`` when every promise held."""

    faults: Counter[str] = field(default_factory=Counter)
    published: int = 0
    acked: int = 0
    unacked: int = 0
    arrived: int = 0
    lost: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    duplicates: int = 0
    foreign_ids: int = 0
    stream_msgs: int = 0
    stream_duplicates: int = 0
    stream_missing: int = 0
    stream_missing_ids: list[str] = field(default_factory=list)
    # Outage -> acknowledged messages missing from the stream, sent since it began.
    stream_missing_by_fault: Counter[str] = field(default_factory=Counter)
    worst_drain_s: float = 0.0
    largest_backlog: int = 0
    worst_flush_s: float = 0.0
    memory_kb: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    duration_s: float = 0.0
    # A redundant site's subscriber on another node than the publishers' (SiteChaosRun).
    local_arrived: int = 0
    local_lost: list[str] = field(default_factory=list)
    local_duplicates: int = 0
    local_out_of_order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.out_of_order or self.foreign_ids or self.stream_duplicates)

    def render(self) -> str:
        """The figures as text, one per line."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        lines = [
            f"outages                      {sum(self.faults.values())} ({faults})",
            f"run time                     {self.duration_s:.0f} s",
            f"published                    {self.published}",
            f"acknowledged (flush)         {self.acked}",
            f"unacknowledged (conn lost)   {self.unacked}",
            f"arrived at the hub (unique)  {self.arrived}",
            f"acknowledged but lost        {len(self.lost)}",
            f"publishers out of order      {len(self.out_of_order)}",
            f"duplicates (subscriber)      {self.duplicates}",
            f"  with another Nats-Msg-Id   {self.foreign_ids}",
            f"stream messages (dedup)      {self.stream_msgs}",
            f"  duplicates in the stream   {self.stream_duplicates}",
            f"  acknowledged, not in it    {self.stream_missing}"
            + "".join(f"; {n} after {k}" for k, n in self.stream_missing_by_fault.items()),
            f"worst link-back-to-drained   {self.worst_drain_s:.2f} s",
            f"largest backlog at a repair  {self.largest_backlog}",
            f"worst flush                  {self.worst_flush_s:.2f} s",
            "memory PSS kB (first, last, max; restarts):",
        ]
        for name, (first, last, peak, restarts) in sorted(self.memory_kb.items()):
            lines.append(f"  {name:<8} {first:>8} {last:>8} {peak:>8}  {restarts}")
        if self.local_arrived:
            lines += [
                f"at a subscriber on n2 (unique) {self.local_arrived}",
                f"  acknowledged, not there    {len(self.local_lost)}",
                f"  duplicates                 {self.local_duplicates}",
                f"  publishers out of order    {len(self.local_out_of_order)}",
            ]
        if self.lost:
            lines.append(f"lost (first 20): {self.lost[:20]}")
        if self.stream_missing_ids:
            lines.append(f"not in the stream (first 20): {self.stream_missing_ids[:20]}")
        if self.out_of_order:
            lines.append(f"out of order: {self.out_of_order}")
        return "\n".join(lines)


class ChaosRun:
    """Hub, proxy, site and traffic (see the module doc). Use as a context manager.

    Args:
        workdir: where every process keeps its files.
        store_url: the site's database (a SQLite file in ``workdir`` by default).
        pg: the cluster behind ``store_url``, for ``database_outage``.
        publishers: how many publisher threads.
        rate: messages per second per publisher.
        batch: messages per flush.
        hub_binary: which nats-server runs the hub.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        store_url: str | None = None,
        pg: PgCluster | None = None,
        publishers: int = 2,
        rate: float = 300.0,
        batch: int = 30,
        hub_binary: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.pg = pg
        self.figures = Figures()
        self.drains: list[float] = []
        self.held: list[int] = []
        self.last_fault = ""
        # (outage, each publisher's next sequence number when it began)
        self._timeline: list[tuple[str, dict[str, int]]] = []
        self._memory: dict[str, list[tuple[int, int]]] = {}
        self._started = time.monotonic()
        proxy_port = free_port()
        self.hub = HubProcess(
            f'jetstream {{ store_dir: "{workdir / "js"}" }}\n',
            # The hub advertises the proxy, or the site would learn the hub's own
            # leafnode URL and go around it.
            leaf_config=f"advertise: 127.0.0.1:{proxy_port}",
            binary=hub_binary,
            workdir=workdir / "hub",
        )
        self.hub_starts = 1
        self.proxy: FaultProxy | None = None
        self.site: SiteProcess | None = None
        self.subscriber: HubSubscriber | None = None
        self.publishers: list[CountingPublisher] = []
        try:
            self.hub.wait_ready()
            asyncio.run(_add_stream(self.hub.url))
            self.proxy = FaultProxy(self.hub.leaf_port, port=proxy_port)
            self._start_site(store_url or f"sqlite:///{workdir / 'buffer.db'}")
            self.subscriber = HubSubscriber(self.hub.port)
            _wait(self._link_ready, timeout=30, what="the hub link and its interest")
            self.publishers = [
                CountingPublisher(f"p{i}", self._publish_port(i), rate=rate, batch=batch)
                for i in range(publishers)
            ]
            for pub in self.publishers:
                pub.start()
            for pub in self.publishers:
                pub.wait_acked(batch)
            self.sample_memory()
        except BaseException:
            self.close()
            raise

    def _start_site(self, store_url: str) -> None:
        """Start the site on ``store_url``, its remote dialing the proxy; wait until ready."""
        assert self.proxy is not None
        config = site_config(self.proxy.url, store_url)
        if store_url.startswith("postgresql"):
            migrate(self.workdir / "migrate.conf", config)
        self.site = SiteProcess(config, workdir=self.workdir / "site", extra_args=("-p", "-1"))
        self.site.wait_ready(timeout=60)

    def _publish_port(self, index: int) -> int:
        """The client port publisher ``index`` publishes to."""
        assert self.site is not None
        return self.site.port

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def run_dir(self) -> Path:
        assert self.site is not None
        return self.site.run_dir

    # -- looking ------------------------------------------------------------------

    def link_status(self) -> dict[str, object]:
        """The remote's ``uplink.ctl`` status (empty while the uplink is away)."""
        return link_status_at(self.run_dir)

    def backlog(self) -> int | None:
        """The store's pending messages (None while the store cannot say)."""
        return backlog_at(self.run_dir)

    def _link_ready(self) -> bool:
        return link_ready(self.link_status())

    def drained(self) -> bool:
        """Link up, nothing waiting in the router, no more backlog than in flight."""
        if self.link_status().get("connected") is not True or self.waiting_in_router():
            return False
        backlog = self.backlog()
        in_flight = sum(p.batch for p in self.publishers) * 2
        return backlog is not None and backlog <= in_flight

    def services(self) -> dict[str, int]:
        assert self.site is not None
        return self.site.children()

    def sample_memory(self) -> None:
        """Record each service's pid and PSS."""
        for name, pid in self.services().items():
            _, pss = memory_kb(pid)
            if pss:
                self._memory.setdefault(name, []).append((pid, pss))

    def _begin(self, label: str) -> None:
        self.figures.faults[label] += 1
        self.last_fault = label
        self._timeline.append((label, {p.name: p.next_seq for p in self.publishers}))

    def _hold(self, seconds: float) -> None:
        """Keep an outage going ``seconds`` (its length), then note the backlog it left."""
        time.sleep(max(0.0, seconds))
        self.held.append(self.backlog() or 0)

    def _recovered(self) -> None:
        """From now (the repair), wait for a drained backlog and record how long it took."""
        start = time.monotonic()
        _wait(self.drained, timeout=RECOVERY_TIMEOUT_S, what="a drained backlog after the repair")
        self.drains.append(time.monotonic() - start)
        self.sample_memory()

    def _link_down(self) -> bool:
        return self.link_status().get("connected") is not True

    # -- faults -------------------------------------------------------------------

    def link_fault(self, kind: FaultKind, *, hold_s: float = 1.0) -> None:
        """Break the hub link the ``kind`` way until the uplink sees it, ``hold_s`` at least."""
        assert self.proxy is not None
        self._begin(f"link {kind}")
        self.proxy.fault(kind)
        began = time.monotonic()
        _wait(self._link_down, timeout=30, what=f"the uplink to notice the {kind}")
        self._hold(hold_s - (time.monotonic() - began))
        self.proxy.heal()
        self._recovered()

    def kill_service(self, name: str) -> None:
        """SIGKILL ``name`` under load; the supervisor restarts it."""
        self._begin(f"kill -9 {name}")
        old = self.services()[name]
        os.kill(old, signal.SIGKILL)

        def restarted() -> bool:
            pid = self.services().get(name)
            return pid not in (None, old) and ping_socket(self.run_dir / SOCKETS[name])

        _wait(restarted, timeout=60, what=f"the supervisor to restart {name}")
        self._recovered()

    def restart_hub(self, signum: int = signal.SIGTERM, *, hold_s: float = 0.5) -> None:
        """Stop the hub with ``signum``, keep it down ``hold_s``, start it on the same ports."""
        self._begin(f"hub {signal.Signals(signum).name}")
        self.hub.stop(signum)
        _wait(self._link_down, timeout=30, what="the uplink to notice the hub is gone")
        self._hold(hold_s)
        restart_process(self.hub)
        self.hub_starts += 1
        wait_for_log(self.hub, r"Listening for leafnode connections", count=self.hub_starts)
        self._recovered()

    def database_outage(self, *, hold_s: float = 2.0) -> None:
        """Stop the PostgreSQL cluster (fast shutdown), keep it down ``hold_s``, start it."""
        assert self.pg is not None, "database_outage needs the run's PgCluster"
        self._begin("postgresql stop")
        self.pg.shutdown("fast")
        time.sleep(hold_s)  # the outage's length (the store cannot count meanwhile)
        self.pg.start()
        self._recovered()

    def waiting_in_router(self) -> int:
        """Buffered messages the router holds in memory because the store refused them."""
        return waiting_at(self.run_dir)

    def disk_full(self, disk: Path, *, hold_s: float = 2.0) -> None:
        """Fill ``disk`` (the SQLite file's) while the backlog grows; ``hold_s``; free it.

        With the link up, the store reuses the pages of delivered rows and
        never needs a new byte, so the hub link is refused meanwhile: the
        backlog must grow, the store's next commit fails (SQLITE_FULL), and
        the router holds the messages in memory (``waiting``), which is the
        sign awaited before the hold.
        """
        assert self.proxy is not None
        self._begin("disk full")
        self.proxy.fault("refuse")
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as fh:
            chunk = b"\0" * (1 << 16)
            try:
                while fh.write(chunk):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        try:
            _wait(lambda: self.waiting_in_router() > 0, timeout=30, what="a store refusing")
            self._hold(hold_s)
        finally:
            filler.unlink()
            self.proxy.heal()
        self._recovered()

    # -- the end ------------------------------------------------------------------

    def finish(self, *, timeout: float = RECOVERY_TIMEOUT_S) -> Figures:
        """Stop publishing, wait for the hub to have it all (or ``timeout``), count."""
        assert self.subscriber is not None
        figures = self.figures
        for pub in self.publishers:
            pub.stop()
        acked = {(p.name, i) for p in self.publishers for i in p.acked_ids()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = {parse_id(payload) for payload, _ in self.subscriber.snapshot()}
            if acked <= got and self.backlog() == 0:
                break
            time.sleep(POLL_S)
        self.sample_memory()
        arrivals = self.subscriber.snapshot()
        stream = asyncio.run(_read_stream(self.hub.url))
        seen = [parse_id(payload) for payload, _ in arrivals]
        in_stream = [parse_id(payload) for payload in stream]
        figures.published = sum(p.stats.sent for p in self.publishers)
        figures.acked = len(acked)
        figures.unacked = sum(len(r) for p in self.publishers for r in p.stats.unacked)
        figures.arrived = len(set(seen) | set(in_stream))
        figures.lost = sorted(f"{n}-{s}" for n, s in acked - set(seen) - set(in_stream))
        figures.duplicates = len(seen) - len(set(seen))
        figures.foreign_ids = sum(1 for payload, ident in arrivals if ident != payload)
        figures.stream_msgs = len(in_stream)
        figures.stream_duplicates = len(in_stream) - len(set(in_stream))
        missing = acked - set(in_stream)
        figures.stream_missing = len(missing)
        figures.stream_missing_ids = sorted(f"{n}-{s}" for n, s in missing)
        for name, seq in missing:
            began = [label for label, at in self._timeline if at[name] <= seq]
            figures.stream_missing_by_fault[began[-1] if began else "the start"] += 1
        figures.out_of_order = sorted(
            {f"{n} ({where})" for where, ids in (("subscriber", seen), ("stream", in_stream))
             for n in out_of_order(ids)}
        )  # fmt: skip
        figures.worst_drain_s = max(self.drains, default=0.0)
        figures.largest_backlog = max(self.held, default=0)
        figures.worst_flush_s = max((p.stats.worst_flush_s for p in self.publishers), default=0.0)
        for name, samples in self._memory.items():
            pss = [s for _, s in samples]
            restarts = len({pid for pid, _ in samples}) - 1
            figures.memory_kb[name] = (pss[0], pss[-1], max(pss), restarts)
        figures.duration_s = time.monotonic() - self._started
        return figures

    def close(self) -> None:
        for pub in self.publishers:
            with contextlib.suppress(RuntimeError):
                pub.stop(timeout=5)
        if self.subscriber is not None:
            self.subscriber.close()
        if self.site is not None:
            self.site.stop()
        if self.proxy is not None:
            self.proxy.close()
        self.hub.kill()


def link_status_at(run_dir: Path) -> dict[str, object]:
    """The first remote's status from the uplink in ``run_dir`` (empty while it is away)."""
    try:
        frame = ipc_request(run_dir / "uplink.ctl", "status")
    except (OSError, IpcError):
        return {}
    remotes = frame.fields.get("remotes")
    first = remotes[0] if isinstance(remotes, list) and remotes else {}
    return first if isinstance(first, dict) else {}


def link_ready(status: dict[str, object]) -> bool:
    """The link is up and has told the hub about the buffered subjects."""
    subs = status.get("subscriptions")
    return status.get("ready") is True and isinstance(subs, list) and "tele.>" in subs


def backlog_at(run_dir: Path) -> int | None:
    """Pending messages of the store in ``run_dir`` (None while it cannot say)."""
    try:
        frame = ipc_request(run_dir / STORE_SOCKET, "stats")
    except (OSError, IpcError):
        return None
    remotes = frame.fields.get("remotes")
    mine = remotes.get("central") if isinstance(remotes, dict) else None
    msgs = mine.get("msgs", 0) if isinstance(mine, dict) else 0
    return msgs if isinstance(msgs, int) else None


def waiting_at(run_dir: Path) -> int:
    """Buffered messages the router in ``run_dir`` holds because the store refused them."""
    try:
        frame = ipc_request(run_dir / "router.ctl", "bufferz")
    except (OSError, IpcError):
        return 0
    data = frame.fields.get("data")
    waiting = data.get("waiting") if isinstance(data, dict) else 0
    return waiting if isinstance(waiting, int) else 0


def out_of_order(ids: list[tuple[str, int]]) -> set[str]:
    """Publishers whose first arrivals are not in publish order."""
    seen: set[tuple[str, int]] = set()
    last: dict[str, int] = {}
    bad: set[str] = set()
    for ident in ids:
        if ident in seen:
            continue
        seen.add(ident)
        name, seq = ident
        if seq < last.get(name, -1):
            bad.add(name)
        last[name] = seq
    return bad


def site_config(hub_url: str, store_url: str) -> str:
    # ping_interval: a blackholed link is found stale in about a second.
    return f"""
        ping_interval: "500ms"
        store {{ url: "{store_url}", sync: normal }}
        leafnodes {{
          reconnect: "100ms"
          remotes: [
            {{ name: central, url: "{hub_url}", buffer {{ subjects: ["tele.>"] }} }}
          ]
        }}
        """


def migrate(path: Path, config: str) -> None:
    """``leafnode migrate``: a PostgreSQL store needs its schema first (SQLite makes it)."""
    path.write_text(config)
    subprocess.run(
        [sys.executable, "-m", "leafnode", "migrate", "-c", str(path)],
        check=True,
        capture_output=True,
    )


async def _add_stream(url: str) -> None:
    import nats
    from nats.js.api import StreamConfig

    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(
            StreamConfig(name=STREAM, subjects=["tele.>"], duplicate_window=DUPLICATE_WINDOW_S)
        )
    finally:
        await nc.close()


async def _read_stream(url: str) -> list[bytes]:
    """Every payload the stream holds, in stream order."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(STREAM)).state.messages
        sub = await js.pull_subscribe(
            "tele.>", stream=STREAM, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        out: list[bytes] = []
        while len(out) < total:
            msgs = await sub.fetch(min(1000, total - len(out)), timeout=10)
            out.extend(m.data for m in msgs)
        return out
    finally:
        await nc.close()
