"""Sites side by side (issue 12, point 2): private run directories, held files named by pid.

nats-server keeps no per-directory state, so test harnesses start several
from one directory; ``leafnode run`` without a ``run_dir`` gets a private one
(removed at exit). What two sites must not share (a configured run dir, a
SQLite buffer) is refused with the pid of the site that holds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.rawclient import RawClient

from .conftest import SiteStarter

SITES = 10


def _ports_file_port(path: Path, proc: subprocess.Popen[bytes], log: Path) -> int:
    """The client port from a site's ports file (written once it is ready)."""
    deadline = time.monotonic() + 60.0
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return int(json.loads(path.read_text())["nats"][0].rsplit(":", 1)[1])


@pytest.mark.e2e
def test_ten_sites_run_side_by_side_from_one_directory(tmp_path: Path) -> None:
    # Short: pytest's tmp_path can be too long a base for Unix socket paths.
    runtime = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))
    here, ports = tmp_path / "here", tmp_path / "ports"
    here.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    argv = [sys.executable, "-m", "leafnode", "run", "-p", "-1", "-a", "127.0.0.1"]
    argv += ["--ports_file_dir", str(ports)]
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(SITES):
            log = tmp_path / f"site{i}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(argv, cwd=here, env=env, stdout=out, stderr=out)
            procs.append((proc, log))
        for proc, log in procs:
            port = _ports_file_port(ports / f"nats-server_{proc.pid}.ports", proc, log)
            client = RawClient(port)
            client.send(b"CONNECT {}\r\nPING\r\n")
            client.read_until(b"PONG\r\n", timeout=30.0)
            client.close()
        assert len(list(runtime.iterdir())) == SITES  # one private run dir each
        assert list(here.iterdir()) == []  # and nothing in the working directory
    finally:
        for proc, _ in procs:
            proc.terminate()
    assert [proc.wait(30) for proc, _ in procs] == [0] * SITES
    assert list(runtime.iterdir()) == []  # removed at exit
    runtime.rmdir()


@pytest.mark.e2e
def test_a_sqlite_buffer_another_site_holds_is_refused_with_its_pid(
    start_site: SiteStarter, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    config = (
        f'store {{ url: "sqlite:///{db}" }}\n'
        'leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:1", '
        'buffer { subjects: ["tele.>"] } } ] }\n'
    )
    first = start_site(config)
    second = start_site(config, wait=False)
    assert second.proc.wait(30) == 1
    assert f"Another leafnode (pid {first.proc.pid}) buffers into {db}" in second.log_text()
    assert first.proc.poll() is None
