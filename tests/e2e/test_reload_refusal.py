"""``leafnode run``: a reload that needs a restart is refused as a whole (issue 11 point 2).

The supervisor re-reads the file on SIGHUP (and for the api's reload); a
changed listen port, monitoring port or store URL is named in one log line
each (``config reload not supported for <key>: old=..., new=...``), no
service is reloaded or restarted, and the change that could have applied
with them (users) is not applied either.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from tests.conftest import until
from tests.support import HubProcess, SiteProcess, free_port, pid_alive

USERS = 'authorization { users: [ { user: alice, password: "alice-pw" } ] }'


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    proc = HubProcess(workdir=tmp_path / "hub")
    proc.wait_ready()
    yield proc
    proc.kill()


def _config(
    workdir: Path, hub: HubProcess, port: int, http_port: int, db: str, extra: str = ""
) -> str:
    return (
        f"port: {port}\nhttp_port: {http_port}\n"
        f'store {{ url: "sqlite:///{workdir}/{db}" }}\n'
        'leafnodes { reconnect: "100ms", remotes: [ { name: central, '
        f'url: "{hub.leaf_url}", buffer {{ subjects: ["tele.>"] }} }} ] }}\n{extra}\n'
    )


def _post(port: int, path: str) -> tuple[int, dict[str, object]]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _get(port: int, path: str) -> dict[str, object]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        data: dict[str, object] = json.loads(conn.getresponse().read())
        return data
    finally:
        conn.close()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_sighup_that_needs_a_restart_changes_nothing(tmp_path: Path, hub: HubProcess) -> None:
    workdir = tmp_path / "site"
    port, http_port = free_port(), free_port()
    site = SiteProcess(
        _config(workdir, hub, port, http_port, "buffer.db"), workdir=workdir, extra_args=()
    )
    try:
        site.wait_ready()
        children = site.children()
        assert set(children) == {"store", "router", "uplink", "api"}
        new_port, new_http = free_port(), free_port()
        site.config_path.write_text(
            _config(workdir, hub, new_port, new_http, "elsewhere.db", extra=USERS)
        )
        site.signal(signal.SIGHUP)
        lines = (
            f"config reload not supported for port: old={port}, new={new_port}",
            f"config reload not supported for store.url: old=sqlite:///{workdir}/buffer.db, "
            f"new=sqlite:///{workdir}/elsewhere.db",
            f"config reload not supported for http_port: old={http_port}, new={new_http}",
        )
        until(lambda: all(line in site.log_text() for line in lines), "the refusal")
        # Nothing applied: same processes, same ports, no users, old store.
        assert site.children() == children
        assert all(pid_alive(pid) for pid in children.values())
        assert "Reloaded configuration" not in site.log_text()
        nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
        await nc.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", new_port), timeout=2).close()

        # The api's reload asks the same question and answers 409 with the keys.
        status, body = _post(http_port, "/config/reload")
        assert status == 409, body
        refused = body["restart_needed"]
        assert isinstance(refused, list)
        assert [c["key"] for c in refused] == ["port", "store.url", "http_port"]
        config = _get(http_port, "/config")["config"]
        assert isinstance(config, dict)
        assert config["store"]["url"] == f"sqlite:///{workdir}/buffer.db"
        assert config["router"]["port"] == port
        assert site.children() == children
    finally:
        pids = site.children() if site.proc.poll() is None else {}
        site.stop()
        for pid in pids.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_a_file_the_uplink_refuses_is_applied_by_no_service(
    tmp_path: Path, hub: HubProcess
) -> None:
    """A creds file nobody can use (the config check, or the uplink asked
    first with reload check, says so): the router does not take new users."""
    workdir = tmp_path / "site"
    port, http_port = free_port(), free_port()
    site = SiteProcess(
        _config(workdir, hub, port, http_port, "buffer.db"), workdir=workdir, extra_args=()
    )
    try:
        site.wait_ready()
        children = site.children()
        bad_creds = tmp_path / "bad.creds"
        bad_creds.write_text("not a creds file\n")
        text = _config(workdir, hub, port, http_port, "buffer.db", extra=USERS).replace(
            "] }\n",
            f'{{ name: other, url: "nats-leaf://127.0.0.1:1", credentials: "{bad_creds}" }} ] }}\n',
            1,
        )
        text = text.replace("} } {", "} }, {", 1)
        site.config_path.write_text(text)
        site.signal(signal.SIGHUP)
        line = "Failed to reload configuration: "
        until(lambda: line in site.log_text(), "the refusal")
        assert "no user JWT" in site.log_text()
        assert "Reloaded server configuration" not in site.log_text()
        nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
        await nc.close()  # no users: the router kept its config
        status, body = _post(http_port, "/config/reload")
        assert status == 422, body
        assert "no user JWT" in str(body["error"])
        assert site.children() == children
    finally:
        pids = site.children() if site.proc.poll() is None else {}
        site.stop()
        for pid in pids.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_sighup_turns_debug_logging_on_in_every_service(
    tmp_path: Path, hub: HubProcess
) -> None:
    """As nats-server: ``debug`` reloads (here: the router's [DBG] connect lines)."""
    workdir = tmp_path / "site"
    port, http_port = free_port(), free_port()
    site = SiteProcess(
        _config(workdir, hub, port, http_port, "buffer.db"), workdir=workdir, extra_args=()
    )
    try:
        site.wait_ready()
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        await nc.close()
        assert "Client connection created" not in site.log_text()
        site.config_path.write_text(
            _config(workdir, hub, port, http_port, "buffer.db", extra="debug: true")
        )
        site.signal(signal.SIGHUP)
        until(lambda: "Reloaded configuration" in site.log_text(), "the reload")
        until(lambda: "Reloaded server configuration" in site.log_text(), "the router's reload")
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        await nc.close()
        until(lambda: "[DBG]" in site.log_text(), "a debug line")
        assert "Client connection created" in site.log_text()
    finally:
        pids = site.children() if site.proc.poll() is None else {}
        site.stop()
        for pid in pids.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_sighup_reloads_a_site_on_its_private_run_dir(tmp_path: Path) -> None:
    """No run_dir configured: the private one in use is no change needing a restart."""
    runtime = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))  # short: socket paths
    conf, ports, out = tmp_path / "leaf.conf", tmp_path / "ports", tmp_path / "run.log"
    conf.write_text("")
    argv = [sys.executable, "-m", "leafnode", "run", "-c", str(conf), "-p", "-1"]
    argv += ["-a", "127.0.0.1", "--ports_file_dir", str(ports)]
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=sink, stderr=sink)
    try:
        ports_file = ports / f"nats-server_{proc.pid}.ports"
        until(ports_file.exists, "the site to be ready")
        url = json.loads(ports_file.read_text())["nats"][0]
        conf.write_text(USERS)
        proc.send_signal(signal.SIGHUP)
        until(lambda: "Reloaded configuration" in out.read_text(), "the reload")
        assert "not supported" not in out.read_text()
        nc = await nats.connect(url, user="alice", password="alice-pw", allow_reconnect=False)
        await nc.close()
        with pytest.raises(NatsError, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(runtime, ignore_errors=True)
