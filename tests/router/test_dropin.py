"""leafnode starts and behaves like nats-server from the client side (issue: drop-in).

Flags, the ports file, log format, TLS, signals (reload, lame duck, stop) and
restarting on the same port, each against real processes and nats-py clients.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from tests.conftest import RouterFactory, respond_ok, until_responding, wait_until
from tests.rawclient import RawClient
from tests.support import RouterProcess, free_port, wait_for_port
from tests.support._uplink import make_tls_files

LEAFNODE = [sys.executable, "-m", "leafnode"]
LOG_LINE = re.compile(r"^\[\d+\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} \[(INF|DBG|TRC|WRN|ERR)\] ")


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LEAFNODE, "router", "--run-dir", str(cwd / "run"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_file(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not written within {timeout}s")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def test_random_port_and_ports_file(tmp_path: Path) -> None:
    proc = _start(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(tmp_path)], tmp_path)
    ports_file = tmp_path / f"nats-server_{proc.pid}.ports"
    try:
        _wait_file(ports_file)
        urls = json.loads(ports_file.read_text())["nats"]
        port = int(urls[0].rsplit(":", 1)[1])
        client = RawClient(port)
        assert client.info["port"] == port
        assert client.exchange(b"CONNECT {}\r\n") == (b"+OK\r\nPONG\r\n", False)
    finally:
        out = _stop(proc)
    assert proc.returncode == 0
    assert not ports_file.exists(), "the ports file is removed on a clean stop"
    assert "Listening for client connections on 127.0.0.1:" in out


def test_flags_override_the_file_name_and_auth(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    file_port, flag_port = free_port(), free_port()
    conf.write_text(f"port: {file_port}\nserver_name: from-file\n")
    proc = _start(
        [
            "-c",
            str(conf),
            "-a",
            "127.0.0.1",
            "-p",
            str(flag_port),
            "-n",
            "from-flag",
            "--user",
            "u",
            "--pass",
            "p",
        ],
        tmp_path,
    )
    try:
        wait_for_port(flag_port, proc=proc)  # type: ignore[arg-type]
        client = RawClient(flag_port)
        assert client.info["server_name"] == "from-flag"
        assert client.info["auth_required"] is True
        assert client.exchange(b'CONNECT {"user":"u","pass":"p","verbose":false}\r\n') == (
            b"PONG\r\n",
            False,
        )
        bad = RawClient(flag_port)
        assert bad.exchange(b'CONNECT {"user":"u","pass":"x"}\r\n') == (
            b"-ERR 'Authorization Violation'\r\n",
            True,
        )
    finally:
        _stop(proc)


def test_token_flag(tmp_path: Path) -> None:
    port = free_port()
    proc = _start(["-a", "127.0.0.1", "-p", str(port), "--auth", "s3cr3t"], tmp_path)
    try:
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        ok = RawClient(port)
        assert ok.exchange(b'CONNECT {"auth_token":"s3cr3t","verbose":false}\r\n') == (
            b"PONG\r\n",
            False,
        )
        assert RawClient(port).exchange(b"CONNECT {}\r\n")[1] is True
    finally:
        _stop(proc)


def test_test_config_version_and_unknown_flag(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text("port: 4222\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("port: 4222\nbogus: 1\n")
    run = subprocess.run(
        [*LEAFNODE, "router", "-t", "-c", str(good)], capture_output=True, text=True
    )
    assert run.returncode == 0
    assert f"configuration file {good} is valid" in run.stderr
    run = subprocess.run(
        [*LEAFNODE, "router", "-t", "-c", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 1
    assert f"{bad}:2:" in run.stderr
    run = subprocess.run([*LEAFNODE, "router", "-v"], capture_output=True, text=True)
    assert run.returncode == 0
    assert run.stdout.startswith("leafnode: v")
    run = subprocess.run([*LEAFNODE, "router", "--no-such-flag"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in run.stderr


def test_log_file_pid_file_debug_and_trace(tmp_path: Path) -> None:
    port = free_port()
    log_file, pid_file = tmp_path / "leaf.log", tmp_path / "leaf.pid"
    proc = _start(
        ["-a", "127.0.0.1", "-p", str(port), "-DV", "-l", str(log_file), "-P", str(pid_file)],
        tmp_path,
    )
    try:
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        assert pid_file.read_text().strip() == str(proc.pid)
        client = RawClient(port)
        client.exchange(b'CONNECT {"verbose":false}\r\nSUB t 1\r\nPUB t 2\r\nhi\r\n')
        deadline = time.monotonic() + 10
        while "->> [MSG t 1 2]" not in log_file.read_text():
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.02)
    finally:
        _stop(proc)
    lines = log_file.read_text().splitlines()
    assert lines
    assert all(LOG_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert "[INF] Listening for client connections on 127.0.0.1:" in text
    assert "[INF] Server is ready" in text
    assert "[DBG] 127.0.0.1:" in text
    assert "Client connection created" in text
    assert "[TRC] 127.0.0.1:" in text
    assert "<<- [SUB t 1]" in text


def test_restart_on_the_same_port_after_sigkill(tmp_path: Path) -> None:
    port = free_port()
    for _ in range(2):
        proc = _start(["-a", "127.0.0.1", "-p", str(port)], tmp_path)
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        client = RawClient(port)  # an established connection at kill time
        proc.kill()
        proc.wait(10)
        client.close()


def test_sigterm_stops_cleanly(router: RouterProcess) -> None:
    assert router.stop(signal.SIGTERM) == 0
    assert "Server Exiting.." in router.log_text()


@pytest.mark.asyncio
async def test_tls_with_client_certificate_verification(
    router_factory: RouterFactory, tmp_path: Path
) -> None:
    certs = make_tls_files(tmp_path / "certs")
    router = router_factory(
        f"""tls {{
          cert_file: "{certs.server_cert}"
          key_file: "{certs.server_key}"
          ca_file: "{certs.ca_cert}"
          verify: true
        }}"""
    )
    info = RawClient(router.port).info
    assert info["tls_required"] is True
    assert info["tls_verify"] is True
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    nc = await nats.connect(f"tls://127.0.0.1:{router.port}", tls=ctx)
    await nc.subscribe("secure", cb=respond_ok)
    assert (await nc.request("secure", b"", timeout=2)).data == b"ok"
    await nc.close()
    no_cert = ssl.create_default_context(cafile=str(certs.ca_cert))
    # nats-py either raises or hands back a closed client when the server
    # drops the handshake; either way it must not end up connected.
    try:
        refused = await nats.connect(
            f"tls://127.0.0.1:{router.port}",
            tls=no_cert,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )
    except Exception:
        pass
    else:
        assert not refused.is_connected
        await refused.close()
    await wait_until(
        lambda: "TLS handshake error" in router.log_text(), what="handshake error logged"
    )


@pytest.mark.asyncio
async def test_tls_handshake_first(router_factory: RouterFactory, tmp_path: Path) -> None:
    certs = make_tls_files(tmp_path / "certs")
    router = router_factory(
        f"""tls {{
          cert_file: "{certs.server_cert}"
          key_file: "{certs.server_key}"
          handshake_first: true
        }}"""
    )
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    nc = await nats.connect(f"tls://127.0.0.1:{router.port}", tls=ctx, tls_handshake_first=True)
    await nc.subscribe("first", cb=respond_ok)
    assert (await nc.request("first", b"", timeout=2)).data == b"ok"
    await nc.close()


@pytest.mark.asyncio
async def test_sighup_reloads_users(router_factory: RouterFactory) -> None:
    router = router_factory(
        "authorization { users: [ {user: a, password: one}, {user: b, password: b} ] }"
    )
    keep = await nats.connect(router.url, user="b", password="b")
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    doomed = await nats.connect(
        router.url, user="a", password="one", closed_cb=on_closed, allow_reconnect=False
    )
    conf = router.workdir / "leaf.conf"
    conf.write_text(
        "authorization { users: [ {user: a2, password: two}, {user: b, password: b} ] }"
    )
    router.proc.send_signal(signal.SIGHUP)
    await wait_until(lambda: "Reloaded server configuration" in router.log_text(), what="reload")
    await asyncio.wait_for(closed.wait(), 5)
    fresh = await nats.connect(router.url, user="a2", password="two")
    await fresh.subscribe("after.reload", cb=respond_ok)
    await until_responding(keep, "after.reload")
    await fresh.close()
    await keep.close()
    assert not doomed.is_connected


@pytest.mark.asyncio
async def test_lame_duck_mode_seen_by_client(router_factory: RouterFactory) -> None:
    router = router_factory('lame_duck_duration: "30s"\nlame_duck_grace_period: "300ms"\n')
    entered = asyncio.Event()

    async def on_ldm() -> None:
        entered.set()

    nc = await nats.connect(router.url, lame_duck_mode_cb=on_ldm, allow_reconnect=False)
    router.proc.send_signal(signal.SIGUSR2)
    await asyncio.wait_for(entered.wait(), 5)
    await wait_until(lambda: not nc.is_connected, timeout=10, what="client closed by lame duck")
    assert router.proc.wait(15) == 0
    log = router.log_text()
    assert "Entering lame duck mode" in log
    assert "Server Exiting.." in log
    await nc.close()


def test_listen_and_host_keys(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "listen.conf"
    conf.write_text(f'listen: "127.0.0.1:{port}"\n')
    proc = _start(["-c", str(conf)], tmp_path)
    try:
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        assert RawClient(port).info["host"] == "127.0.0.1"
    finally:
        _stop(proc)
    port = free_port()
    conf.write_text(f"host: 127.0.0.1\nport: {port}\n")
    proc = _start(["-c", str(conf)], tmp_path)
    try:
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        assert RawClient(port).info["port"] == port
    finally:
        _stop(proc)


@pytest.mark.asyncio
async def test_tls_flags(tmp_path: Path) -> None:
    certs = make_tls_files(tmp_path / "certs")
    port = free_port()
    proc = _start(
        [
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "--tlsverify",
            "--tlscert",
            str(certs.server_cert),
            "--tlskey",
            str(certs.server_key),
            "--tlscacert",
            str(certs.ca_cert),
        ],
        tmp_path,
    )
    try:
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        info = RawClient(port).info
        assert info["tls_required"] is True
        assert info["tls_verify"] is True
        ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        nc = await nats.connect(f"tls://127.0.0.1:{port}", tls=ctx)
        await nc.subscribe("flags", cb=respond_ok)
        assert (await nc.request("flags", b"", timeout=2)).data == b"ok"
        await nc.close()
    finally:
        _stop(proc)
    bad = subprocess.run(
        [*LEAFNODE, "router", "--tls", "--tlscert", str(certs.server_cert)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1
    assert "TLS needs a certificate and a key" in bad.stderr


def test_lame_duck_info_only_to_clients_past_their_first_pong(
    router_factory: RouterFactory,
) -> None:
    """As nats-server's sendAsyncInfoToClients: the lame duck INFO goes to
    protocol-1 clients whose first PONG is out. A client between its CONNECT
    and its first PING must still get PONG as the next line (nats-py reads that
    line as the PONG), and a protocol-0 client gets no INFO at all."""
    router = router_factory('lame_duck_duration: "60s"\nlame_duck_grace_period: "300ms"\n')
    ready = RawClient(router.port)
    early = RawClient(router.port)
    old = RawClient(router.port)
    try:
        ready.send(b'CONNECT {"protocol":1,"verbose":false}\r\nPING\r\n')
        assert ready.read_line(timeout=20) == b"PONG"
        # verbose: the +OK proves the CONNECT was processed, with no PING sent.
        early.send(b'CONNECT {"protocol":1,"verbose":true}\r\n')
        assert early.read_line(timeout=20) == b"+OK"
        old.send(b'CONNECT {"protocol":0,"verbose":false}\r\nPING\r\n')
        assert old.read_line(timeout=20) == b"PONG"
        router.proc.send_signal(signal.SIGUSR2)
        info = ready.read_line(timeout=20)
        assert info.startswith(b"INFO "), info
        assert json.loads(info[5:]).get("ldm") is True, info
        early.send(b"PING\r\n")
        assert early.read_line(timeout=20) == b"PONG"
        old.send(b"PING\r\n")
        assert old.read_line(timeout=20) == b"PONG"
    finally:
        for client in (ready, early, old):
            client.close()
