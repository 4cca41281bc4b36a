"""``leafnode run`` starts like nats-server (issue 12, points 1 and 4).

The client port is bound before anything else and served at once; a
publisher's PING on a buffered subject is still answered only once the store
committed; a SIGKILL of the started pid closes every client connection; the
default host listens on IPv4 and IPv6. The ``websocket { }`` port is bound
with the client port and kept while a router restarts. Real sites, a real
hub, real sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import until
from tests.rawclient import RawClient
from tests.support import HubProcess, free_port, pid_alive, site_processes
from tests.wsclient import WsClient

from .conftest import SiteStarter
from .test_run import _until, site_config

# How long a refused connection is retried: the first attempt may come
# before `leafnode run` has even bound (the process was just exec'd).
CONNECT_DEADLINE_S = 30.0


def _first_client(port: int, proc: subprocess.Popen[bytes], host: str = "127.0.0.1") -> RawClient:
    """A RawClient on ``port`` as soon as it accepts (INFO read)."""
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:
        try:
            client = RawClient(port, host, read_info=False)
            break
        except ConnectionRefusedError:
            assert proc.poll() is None, "leafnode run exited"
            assert time.monotonic() < deadline, f"{host}:{port} never accepted"
            time.sleep(0.005)
    # The router may still be starting (a busy machine): INFO comes once it runs.
    line = client.read_line(timeout=CONNECT_DEADLINE_S)
    assert line.startswith(b"INFO "), line
    client.info = json.loads(line[5:])
    return client


def _buffered(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM buffered_messages ORDER BY seq").fetchall()
    return [bytes(row[0]) for row in rows]


@pytest.mark.e2e
def test_a_buffered_publish_during_start_up_is_answered_once_the_store_committed(
    start_site: SiteStarter, hub: HubProcess, tmp_path: Path
) -> None:
    workdir = tmp_path / "early"
    workdir.mkdir()
    db = workdir / "buffer.db"
    # Hold the database: the store cannot start (nor commit) until we let go.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    port = free_port()
    site = start_site(
        site_config(workdir, hub), wait=False, workdir=workdir, extra_args=("-p", str(port))
    )
    try:
        client = _first_client(port, site.proc)
        # Served before the site is ready (the store cannot be).
        assert "Server is ready" not in site.log_text()
        client.send(b'CONNECT {"verbose":false}\r\nPUB tele.x 5\r\nearly\r\nPING\r\n')
        # No PONG while the store cannot commit: the PING is the publisher's barrier.
        with pytest.raises(AssertionError, match="not seen"):
            client.read_until(b"PONG\r\n", timeout=1.0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.read_until(b"PONG\r\n", timeout=30.0).endswith(b"PONG\r\n")
    assert _buffered(db) == [b"early"]
    site.wait_ready()
    client.close()


@pytest.mark.e2e
def test_sigkill_of_the_run_pid_closes_client_connections_at_once(
    start_site: SiteStarter,
) -> None:
    site = start_site()
    client = RawClient(site.port)
    client.send(b"CONNECT {}\r\nPING\r\n")
    client.read_until(b"PONG\r\n")
    ours = _site_pids(site.proc.pid)
    site.proc.kill()
    site.proc.wait(5)
    # The router, the supervisor's child, got SIGKILL when it died: it answers
    # nothing once the run pid is gone, and the connection ends within 1 s.
    out = client.read_until_closed(timeout=1.0) if _send_ping(client) else b""
    assert b"PONG" not in out
    # The port was released before the connections: no process of the site listens.
    _assert_released(site.port, ours)


@pytest.mark.e2e
def test_sigkill_of_the_run_pid_kills_the_api_at_once(start_site: SiteStarter) -> None:
    site = start_site()
    api = site.children()["api"]
    ours = _site_pids(site.proc.pid)
    site.proc.kill()
    site.proc.wait(5)
    _until(lambda: not pid_alive(api), "the api to die with the run pid", timeout=10.0)
    # Killed, not asked to stop: an api that stops on SIGTERM holds the
    # monitoring port through its shutdown (40 ms or more, or for good when
    # the signal comes while it starts), and nats.js's harness starts a new
    # server on the same ports the moment the pid it killed is gone.
    assert "Api exiting" not in site.log_text()
    _assert_released(site.http_port, ours)


@pytest.mark.e2e
def test_sigkill_of_the_run_pid_removes_its_ports_file(start_site: SiteStarter) -> None:
    site = start_site()
    assert site.ports_file.exists()
    site.proc.kill()
    site.proc.wait(5)
    # Left behind, a later process that gets the same pid would be taken
    # for this one by a harness polling for nats-server_<pid>.ports.
    _until(lambda: not site.ports_file.exists(), "the ports file to go", timeout=10.0)


def _site_pids(supervisor: int) -> set[int]:
    """The supervisor, its fork server and its services, while they run."""
    return {supervisor, *site_processes(supervisor).values()}


def _listening_pids(port: int) -> set[int]:
    """Pids holding a socket that listens on TCP ``port`` (IPv4 or IPv6), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    pids: set[int] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
    return pids


def _assert_released(port: int, ours: set[int]) -> None:
    """No process of the killed site listens on ``port`` any more.

    A refused connect would say less: another test's server may have bound
    the port since (ports are picked free, not reserved).
    """
    held = _listening_pids(port) & ours
    assert not held, f"port {port} still held by the site's pids {held}"


def _send_ping(client: RawClient) -> bool:
    """PING on a connection that may already be closed; False when it is."""
    try:
        client.send(b"PING\r\n")
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.e2e
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_the_default_host_listens_on_ipv4_and_ipv6(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leafnode", "run", "-p", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for host in ("::1", "127.0.0.1"):
            client = _first_client(port, proc, host)
            assert client.info["port"] == port
            client.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Listening for client connections on 0.0.0.0" in log.read_text()


@pytest.mark.e2e
def test_the_port_accepts_while_a_router_restarts(start_site: SiteStarter) -> None:
    site = start_site()
    router = site.children()["router"]
    os.kill(router, signal.SIGKILL)
    # Refused never: the supervisor holds the port; the new router serves the backlog.
    client = RawClient(site.port)
    client.send(b"CONNECT {}\r\nPING\r\n")
    client.read_until(b"PONG\r\n", timeout=30.0)
    _until(lambda: site.children().get("router", router) != router, "a new router")
    client.close()


def _websocket_ping(ws_port: int, sock: socket.socket | None = None) -> None:
    """A WebSocket client on ``ws_port`` gets INFO and a PONG (the router may be starting)."""
    client = WsClient(ws_port, timeout=CONNECT_DEADLINE_S, sock=sock)
    assert client.status == 101
    info = client.info()
    assert "server_id" in info
    # An IPv4 client of the dual-stack port, shown as IPv4 (INFO and /connz), as nats-server.
    assert info["client_ip"] == "127.0.0.1"
    client.send(b"CONNECT {}\r\nPING\r\n")
    assert client.read_until(b"PONG\r\n", timeout=CONNECT_DEADLINE_S).endswith(b"PONG\r\n")
    client.close()


@pytest.mark.e2e
def test_the_websocket_port_accepts_before_the_router_runs(start_site: SiteStarter) -> None:
    ws_port = free_port()
    site = start_site(
        f"websocket {{ port: {ws_port}, no_tls: true }}\n", wait=False, extra_args=("-p", "-1")
    )
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:  # refused until `leafnode run` has read its config
        try:
            sock = socket.create_connection(("127.0.0.1", ws_port), timeout=CONNECT_DEADLINE_S)
            break
        except ConnectionRefusedError:
            assert site.proc.poll() is None, "leafnode run exited"
            assert time.monotonic() < deadline, f"{ws_port} never accepted"
            time.sleep(0.005)
    # Accepted before the router bound anything: the supervisor bound the
    # port right after reading the config (the router runs 0.1-2 s later).
    assert "Listening for websocket clients" not in site.log_text()
    # The router serves the connection from the backlog once it runs.
    _websocket_ping(ws_port, sock)
    site.wait_ready()


@pytest.mark.e2e
def test_the_websocket_port_accepts_while_a_router_restarts(start_site: SiteStarter) -> None:
    ws_port = free_port()
    site = start_site(f"websocket {{ port: {ws_port}, no_tls: true }}\n")
    router = site.children()["router"]
    os.kill(router, signal.SIGKILL)
    # Refused never: the supervisor holds the port; the new router serves the backlog.
    _websocket_ping(ws_port)
    _until(lambda: site.children().get("router", router) != router, "a new router")


def _run(argv: list[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``leafnode run ARGV`` in ``tmp_path``; its output goes to ``tmp_path/run.log``."""
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leafnode", "run", *argv],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def _accepted(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    """A connection to 127.0.0.1:``port`` as soon as it is accepted (retried while refused)."""
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=CONNECT_DEADLINE_S)
        except ConnectionRefusedError:
            assert proc.poll() is None, "leafnode run exited"
            assert time.monotonic() < deadline, f"{port} never accepted"
            time.sleep(0.005)


def _http_get(sock: socket.socket, path: str) -> bytes:
    """``GET path`` on ``sock`` (HTTP/1.0: the answer ends when the server closes)."""
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: leafnode\r\n\r\n".encode())
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["flags", "config"])
def test_the_monitoring_port_accepts_with_the_client_port(tmp_path: Path, source: str) -> None:
    port, http_port = free_port(), free_port()
    if source == "flags":  # bound before the heavy imports, as the client port
        argv = ["-a", "127.0.0.1", "-p", str(port), "-m", str(http_port)]
    else:  # bound right after reading the config, before the client port
        conf = tmp_path / "leaf.conf"
        conf.write_text(f'host: 127.0.0.1\nport: {port}\nhttp: "127.0.0.1:{http_port}"\n')
        argv = ["-c", str(conf)]
    proc, log = _run([*argv, "--ports_file_dir", str(tmp_path)], tmp_path)
    try:
        _accepted(port, proc).close()
        # The client port accepts: so does the monitoring port, though the api
        # (FastAPI, a second of imports) runs later; the connection waits in
        # the backlog, is never refused, and is answered once the api runs.
        try:
            early = socket.create_connection(("127.0.0.1", http_port), timeout=CONNECT_DEADLINE_S)
        except ConnectionRefusedError:
            pytest.fail("the monitoring port refused a connection the client port accepted")
        with early:  # answered (503 while the router starts: any status line will do)
            assert _http_get(early, "/healthz").startswith(b"HTTP/1.1 ")
        ports_file = tmp_path / f"nats-server_{proc.pid}.ports"
        until(ports_file.exists, "the ports file")
        ports = json.loads(ports_file.read_text())
        assert ports["monitoring"] == [f"http://127.0.0.1:{http_port}"]
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()


@pytest.mark.e2e
def test_the_client_port_answers_while_the_api_still_imports(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    proc, log = _run(["-a", "127.0.0.1", "-p", str(port), "-m", str(http_port)], tmp_path)
    try:
        client = _first_client(port, proc)
        # The router runs once the shared modules are in (0.3 s); the api,
        # forked with it, imports its web stack (FastAPI: half a second or
        # more) before it says anything.
        assert "Starting leafnode api" not in log.read_text()
        client.close()
        _until(lambda: "Server is ready" in log.read_text(), "the site to be ready", timeout=60.0)
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()


@pytest.mark.e2e
def test_a_random_monitoring_port_is_the_one_in_the_ports_file(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    # As nats.js's harness writes it.
    conf.write_text('host: 127.0.0.1\nport: -1\nhttp: "127.0.0.1:-1"\n')
    proc, log = _run(["-c", str(conf), "--ports_file_dir", str(tmp_path)], tmp_path)
    try:
        ports_file = tmp_path / f"nats-server_{proc.pid}.ports"
        until(ports_file.exists, "the ports file")
        (url,) = json.loads(ports_file.read_text())["monitoring"]
        host, _, http_port = url.removeprefix("http://").rpartition(":")
        assert host == "127.0.0.1"
        assert int(http_port) > 0
        with socket.create_connection((host, int(http_port)), timeout=CONNECT_DEADLINE_S) as sock:
            assert _http_get(sock, "/healthz").startswith(b"HTTP/1.1 200 ")
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["flags", "config"])
def test_a_monitoring_port_in_use_is_a_clear_error(tmp_path: Path, source: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        http_port = holder.getsockname()[1]
        if source == "flags":
            argv = ["-a", "127.0.0.1", "-p", "-1", "-m", str(http_port)]
        else:
            conf = tmp_path / "leaf.conf"
            conf.write_text(f'host: 127.0.0.1\nport: -1\nhttp: "127.0.0.1:{http_port}"\n')
            argv = ["-c", str(conf)]
        proc, log = _run(argv, tmp_path)
        assert proc.wait(30) == 1
    text = log.read_text()
    assert (
        f"[ERR] Can't start monitoring: can't listen to the monitor port 127.0.0.1:{http_port}: "
        in text
    ), text
    assert "Address already in use" in text
    assert "Traceback" not in text
    assert "Starting leafnode api" not in text  # nothing was started


def _maps_any(pid: int, needles: tuple[str, ...]) -> bool:
    """Whether process ``pid`` maps a file whose path holds one of ``needles``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any(needle in maps for needle in needles)


@pytest.mark.e2e
def test_sqlalchemy_and_fastapi_are_in_their_own_service_only(tmp_path: Path) -> None:
    # A library with one user is imported by that service once forked, not
    # preloaded (leafnode.forkserver, "Memory"): preloaded, the fork server
    # and every process forked after it mapped it, and its user copied the
    # pages it wrote anyway. Their compiled extensions show in /proc/PID/maps.
    sqlalchemy, fastapi = ("/sqlalchemy/",), ("/pydantic_core/",)
    conf = tmp_path / "leaf.conf"
    conf.write_text(
        f'store {{ url: "sqlite:///{tmp_path}/buffer.db" }}\n'
        "leafnodes { remotes: [ { name: hub, "
        f'url: "nats-leaf://127.0.0.1:{free_port()}", buffer {{ subjects: ["b.>"] }} }} ] }}\n'
    )
    proc, log = _run(["-c", str(conf), "-a", "127.0.0.1", "-p", "-1", "-m", "-1"], tmp_path)
    try:
        _until(lambda: "Server is ready" in log.read_text(), "the site to be ready", timeout=60.0)
        pids = {"supervisor": proc.pid, **site_processes(proc.pid)}
        assert set(pids) == {"supervisor", "fork", "store", "router", "uplink", "api"}
        holders = {
            name: [lib for lib, needles in (("sqlalchemy", sqlalchemy), ("fastapi", fastapi))
                   if _maps_any(pid, needles)]
            for name, pid in pids.items()
        }  # fmt: skip
        assert holders == {
            "supervisor": [],
            "fork": [],
            "router": [],
            "uplink": [],
            "store": ["sqlalchemy"],
            "api": ["fastapi"],
        }
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
