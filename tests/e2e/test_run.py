"""``leafnode run``: start order and readiness, restarts, signals, files (issues 5 and 6).

Every test runs the real supervisor with real children; a hub is a real
nats-server. Pids come from /proc, signals are real signals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from tests.support import (
    HubProcess,
    free_port,
    http_get,
    pid_alive,
    site_processes,
)

from .conftest import SiteStarter


def site_config(workdir: Path, hub: HubProcess | None = None, extra: str = "") -> str:
    text = f'store {{ url: "sqlite:///{workdir}/buffer.db" }}\n{extra}\n'
    if hub is not None:
        text += (
            'leafnodes { reconnect: "100ms", remotes: [ { name: central, '
            f'url: "{hub.leaf_url}", buffer {{ subjects: ["tele.>"] }} }} ] }}\n'
        )
    return text


def _until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


async def _until_async(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """``_until`` for async tests: the event loop (and the NATS client) keeps running."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_client_port_accepts_at_once_and_ready_means_every_service_answers(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path
) -> None:
    port, http_port = free_port(), free_port()
    workdir = tmp_path / "ordered"
    site = start_site(
        site_config(workdir, hub),
        wait=False,
        workdir=workdir,
        extra_args=("-p", str(port), "-m", str(http_port)),
    )
    _until(lambda: _accepts(port) or site.proc.poll() is not None, "the client port", 30)
    assert site.proc.poll() is None, site.log_text()
    site.wait_ready()
    assert set(site.children()) == {"store", "router", "uplink", "api"}

    # "Server is ready" (the supervisor's) comes once every service answers.
    log = site.log_text()
    ready = log.rindex("Server is ready")
    assert log.index("Listening for store clients") < ready
    assert log.index("Listening for monitoring on http://127.0.0.1") < ready
    assert log.index("Listening for client connections") < ready
    status, body = http_get(http_port, "/varz")
    assert status == 200
    assert json.loads(body)["port"] == port
    status, body = http_get(http_port, "/healthz")
    assert status == 200, body

    nc = await nats.connect(site.url)
    await nc.publish("tele.x", b"durable from the first connection")
    await nc.flush()
    await nc.close()


def test_ports_and_pid_files(start_site: SiteStarter, tmp_path: Path) -> None:
    pid_file = tmp_path / "leafnode.pid"
    site = start_site(extra_args=("-p", "-1", "-m", "-1", "-P", str(pid_file)))
    ports = json.loads(site.ports_file.read_text())
    assert ports == {
        "nats": [f"nats://127.0.0.1:{site.port}"],
        "monitoring": [f"http://127.0.0.1:{site.http_port}"],
    }
    assert pid_file.read_text() == str(site.proc.pid)
    # Only the supervisor's ports file: the children got no -P/--ports_file_dir.
    assert [p.name for p in site.ports_dir.iterdir()] == [site.ports_file.name]
    site.signal(signal.SIGTERM)
    assert site.proc.wait(5) == 0
    assert not site.ports_file.exists()


def test_ports_file_names_the_websocket_port(start_site: SiteStarter) -> None:
    """nats-server writes ``websocket`` URLs in its ports file; tools read them
    to find a ``port: -1`` websocket (nats.js's test harness does)."""
    site = start_site("websocket { port: -1, no_tls: true }\n", extra_args=("-p", "-1"))
    ports = json.loads(site.ports_file.read_text())
    (url,) = ports["websocket"]
    assert url.startswith("ws://127.0.0.1:")
    ws_port = int(url.rsplit(":", 1)[1])
    assert ws_port not in (0, site.port)
    assert f"Listening for websocket clients on ws://0.0.0.0:{ws_port}" in site.log_text()
    # Ready, and so in the ports file, only once the websocket port listens.
    assert site.log_text().index("Listening for websocket") < site.log_text().index(
        "Server is ready"
    )


def test_without_a_monitoring_port_only_the_router_runs(start_site: SiteStarter) -> None:
    site = start_site(extra_args=("-p", "-1"))
    assert set(site.children()) == {"router"}
    assert "monitoring" not in json.loads(site.ports_file.read_text())


@pytest.mark.asyncio
async def test_a_crashed_child_is_restarted_on_the_same_ports(start_site: SiteStarter) -> None:
    site = start_site()
    old = site.children()
    os.kill(old["router"], signal.SIGKILL)
    _until(lambda: site.children().get("router", old["router"]) != old["router"], "new router")
    _until(lambda: "Service router restarted" in site.log_text(), "the restart")
    nc = await nats.connect(site.url)  # same port as before the crash
    await nc.close()

    os.kill(old["api"], signal.SIGKILL)
    _until(lambda: "Service api restarted" in site.log_text(), "the api restart")
    assert http_get(site.http_port, "/varz")[0] == 200
    assert "exited with status -9; restarting" in site.log_text()


@pytest.mark.e2e
def test_sigterm_stops_everything_within_5s(start_site: SiteStarter, hub: HubProcess) -> None:
    site = start_site(site_config(Path(hub.workdir), hub))
    children = site_processes(site.proc.pid)
    assert set(children) == {"fork", "store", "router", "uplink", "api"}
    site.signal(signal.SIGTERM)
    assert site.proc.wait(5) == 0
    assert [name for name, pid in children.items() if pid_alive(pid)] == []


@pytest.mark.e2e
def test_sigkill_of_the_supervisor_leaves_no_child(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path
) -> None:
    port = free_port()
    workdir = tmp_path / "killed"
    site = start_site(
        site_config(workdir, hub), workdir=workdir, extra_args=("-p", str(port), "-m", "-1")
    )
    children = site_processes(site.proc.pid)
    assert set(children) == {"fork", "store", "router", "uplink", "api"}
    site.proc.kill()
    site.proc.wait(5)
    deadline = time.monotonic() + 2.0
    while any(pid_alive(pid) for pid in children.values()):
        alive = [name for name, pid in children.items() if pid_alive(pid)]
        assert time.monotonic() < deadline, f"still running 2 s after SIGKILL: {alive}"
        time.sleep(0.02)
    # Nothing keeps the port: a new site starts on it at once.
    again = start_site(
        site_config(workdir, hub), workdir=tmp_path / "again", extra_args=("-p", str(port))
    )
    assert again.port == port


@pytest.mark.e2e
def test_sighup_reloads_and_starts_what_the_new_config_needs(
    start_site: SiteStarter, hub: HubProcess
) -> None:
    site = start_site()
    assert set(site.children()) == {"router", "api"}
    site.config_path.write_text(site_config(site.workdir, hub))
    site.signal(signal.SIGHUP)
    _until(lambda: set(site.children()) == {"store", "router", "uplink", "api"}, "new services")
    _until(lambda: http_get(site.http_port, "/healthz")[0] == 200, "a healthy site")

    # The api's reload goes through the supervisor (supervisor.ctl).
    conn_status, body = _post(site.http_port, "/config/reload")
    assert conn_status == 200, body
    result = json.loads(body)
    assert result["services"]["router"]["reloaded"] is True
    assert "api" in result["services"]


def _post(port: int, path: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_lame_duck_ends_the_site(start_site: SiteStarter) -> None:
    site = start_site('lame_duck_grace_period: "100ms"\n')
    children = site.children()
    site.signal(signal.SIGUSR2)
    assert site.proc.wait(15) == 0
    assert "Entering lame duck mode" in site.log_text()
    assert [name for name, pid in children.items() if pid_alive(pid)] == []


def test_a_service_that_cannot_start_fails_the_run(start_site: SiteStarter, tmp_path: Path) -> None:
    # A valid URL whose directory does not exist: only the store finds out.
    config = (
        f'store {{ url: "sqlite:///{tmp_path}/no/such/dir/buffer.db" }}\n'
        'leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:1", '
        'buffer { subjects: ["a"] } } ] }\n'
    )
    site = start_site(config, wait=False)
    assert site.proc.wait(30) == 1
    assert "Startup failed: store exited with status 1" in site.log_text()


def test_a_second_site_on_the_same_run_dir_is_refused(
    start_site: SiteStarter, tmp_path: Path
) -> None:
    first = start_site()
    second = start_site(wait=False, extra_args=("-p", "-1", "--run-dir", str(first.run_dir)))
    assert second.proc.wait(15) == 1
    assert f"Another leafnode (pid {first.proc.pid}) runs with run_dir" in second.log_text()
    assert first.proc.poll() is None


def test_flags_are_checked_like_nats_server(tmp_path: Path) -> None:
    conf = tmp_path / "ok.conf"
    conf.write_text("port: 4222\n")
    run = [sys.executable, "-m", "leafnode", "run"]
    checked = subprocess.run([*run, "-c", str(conf), "-t"], capture_output=True, timeout=30)
    assert checked.returncode == 0
    assert b"is valid" in checked.stderr
    bad = subprocess.run([*run, "--no-such-flag"], capture_output=True, timeout=30)
    assert bad.returncode == 2


def test_log_file_collects_every_service(start_site: SiteStarter, tmp_path: Path) -> None:
    log_file = tmp_path / "leafnode.log"
    config = (
        f'store {{ url: "sqlite:///{tmp_path}/b.db" }}\n'
        'leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:1", '
        'buffer { subjects: ["a"] } } ] }\n'
    )
    site = start_site(config, wait=False, extra_args=("-p", "-1", "-m", "-1", "-l", str(log_file)))
    _until(lambda: log_file.exists() and "Server is ready" in log_file.read_text(), "ready")
    text = log_file.read_text()
    for line in (
        "Starting leafnode store",
        "Starting leafnode router",
        "Starting leafnode uplink",
        "Starting leafnode api",
        "Listening for client connections",
        "Listening for monitoring on",
    ):
        assert line in text
    pids = {line.split("]", 1)[0] for line in text.splitlines() if line.startswith("[")}
    assert len(pids) == 5  # the supervisor and its four children
    assert site.proc.poll() is None


def test_config_keys_for_ports_and_pid_file(start_site: SiteStarter, tmp_path: Path) -> None:
    """The same as the flags, from the file: port -1, http_port -1, pid_file."""
    pid_file = tmp_path / "from-config.pid"
    site = start_site(
        f'port: -1\nhttp_port: -1\nhost: 127.0.0.1\npid_file: "{pid_file}"\n', extra_args=()
    )
    ports = json.loads(site.ports_file.read_text())
    nats_port = int(ports["nats"][0].rsplit(":", 1)[1])
    http_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
    assert nats_port != 4222
    assert _accepts(nats_port)
    assert http_get(http_port, "/healthz")[0] == 200
    assert pid_file.read_text() == str(site.proc.pid)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_leaf_flags_make_a_buffering_site_without_a_config_file(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path
) -> None:
    """DESIGN §5: --remote URL, --buffer SUBJECT, --store URL reach every service."""
    site = start_site(
        "",
        extra_args=(
            "-p", "-1", "-m", "-1",
            "--remote", hub.leaf_url,
            "--buffer", "tele.>",
            "--store", f"sqlite:///{tmp_path}/flags.db",
        ),
    )  # fmt: skip
    assert set(site.children()) == {"store", "router", "uplink", "api"}
    status, body = http_get(site.http_port, "/buffer")
    assert status == 200
    (remote,) = json.loads(body)["remotes"]
    assert remote["name"] == f"$G@127.0.0.1:{hub.leaf_port}"  # DESIGN §8's default name

    hub_nc = await nats.connect(hub.url)
    arrived: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await hub_nc.subscribe("tele.>", cb=arrived.put)
    leaf_nc = await nats.connect(site.url)
    try:
        # Buffered: stored at once, released to the hub once its interest is
        # in, stamped with the store's Nats-Msg-Id on the way.
        await leaf_nc.publish("tele.a", b"x")
        msg = await asyncio.wait_for(arrived.get(), 15)
        assert msg.data == b"x"
        assert msg.headers is not None
        assert msg.headers["Nats-Msg-Id"].endswith("-1")
    finally:
        await sub.unsubscribe()
        await leaf_nc.close()
        await hub_nc.close()


def test_bad_leaf_flags_are_a_clear_error(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "leafnode", "run", "--run-dir", str(tmp_path)]
    for flags, reason in (
        (["--remote", "http://hub:7422"], "command line: --remote: unsupported URL scheme"),
        (["--buffer", "a..b"], "command line: --buffer: 'a..b' is not a valid subject"),
        (["--remote", "hub", "--creds", str(tmp_path / "none.creds")], "--creds: file"),
    ):
        done = subprocess.run([*run, *flags], capture_output=True, text=True, timeout=30)
        assert done.returncode == 1, done.stderr
        assert reason in done.stderr
        assert "Traceback" not in done.stderr


def _put_config(port: int, text: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("PUT", "/config", body=text.encode(), headers={"Content-Type": "text/plain"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_put_config_lowers_buffer_limits_without_a_restart(
    start_site: SiteStarter, tmp_path: Path
) -> None:
    """Issue 5: buffer limits change through the API; the store applies them (no restart)."""
    dead_hub = f"nats-leaf://127.0.0.1:{free_port()}"  # nothing listens: the backlog stays

    def config(max_msgs: int) -> str:
        return (
            f'store {{ url: "sqlite:///{tmp_path}/limits.db" }}\n'
            'leafnodes { reconnect: "100ms", remotes: [ { name: central, '
            f'url: "{dead_hub}", buffer {{ subjects: ["tele.>"], max_msgs: {max_msgs} }} }} ] }}\n'
        )

    site = start_site(config(10))
    pids = site.children()

    def backlog() -> dict[str, object]:
        status, body = http_get(site.http_port, "/buffer")
        assert status == 200, body
        remote: dict[str, object] = json.loads(body)["remotes"][0]
        return remote

    nc = await nats.connect(site.url)
    try:
        for i in range(10):
            await nc.publish(f"tele.{i}", b"x")
        await _until_async(lambda: backlog()["backlog"]["msgs"] == 10, "10 buffered")  # type: ignore[index]
        status, body = _put_config(site.http_port, config(5))
        assert status == 200, body
        result = json.loads(body)
        assert result["services"]["store"]["reloaded"] is True, result
        await nc.publish("tele.new", b"x")
        # Housekeeping may apply the limit before tele.new arrives (5 dropped,
        # then 1 more): wait for the count that includes tele.new.
        await _until_async(lambda: backlog()["dropped"] == {"max_msgs": 6}, "the new limit")
        assert backlog()["backlog"]["msgs"] == 5  # type: ignore[index]
    finally:
        await nc.close()
    assert site.children() == pids  # nothing restarted
