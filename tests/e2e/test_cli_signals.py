"""The command line as nats-server's: ``-v`` at the top level, ``--signal``/``-sl``, SIGUSR1.

(issue 12, point 8.) Real ``leafnode run`` sites, real signals, real files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SiteStarter
from .test_run import _until


def _leafnode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leafnode", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version_at_the_top_level(flag: str) -> None:
    done = _leafnode(flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("leafnode: v")
    assert "nats-server v" in done.stdout


def _lines_of(path: Path, pid: int, text: str) -> bool:
    return path.exists() and any(
        line.startswith(f"[{pid}] ") and line.endswith(text)
        for line in path.read_text().splitlines()
    )


@pytest.mark.e2e
def test_sigusr1_reopens_the_log_file_of_every_service(
    start_site: SiteStarter, tmp_path: Path
) -> None:
    log_file, pid_file = tmp_path / "leafnode.log", tmp_path / "leafnode.pid"
    site = start_site(
        "", wait=False, extra_args=("-p", "-1", "-l", str(log_file), "-P", str(pid_file))
    )
    _until(lambda: _lines_of(log_file, site.proc.pid, "Server is ready"), "ready")
    router = site.children()["router"]
    rotated = log_file.with_name("leafnode.log.1")
    log_file.rename(rotated)

    # nats-server's `--signal reopen`, the pid from -P.
    done = _leafnode("run", "--signal", "reopen", "-P", str(pid_file))
    assert done.returncode == 0, done.stderr
    _until(lambda: _lines_of(log_file, site.proc.pid, "File log re-opened"), "the new file")
    # The router reopened too: its next line (a reload's) goes to the new file.
    done = _leafnode("-sl", f"reload={site.proc.pid}")
    assert done.returncode == 0, done.stderr
    _until(lambda: _lines_of(log_file, router, "Reloaded server configuration"), "router")
    old = rotated.read_text()
    assert "File log re-opened" not in old
    assert "Reloaded" not in old
    assert site.proc.poll() is None


@pytest.mark.e2e
def test_signal_commands_as_nats_server(start_site: SiteStarter, tmp_path: Path) -> None:
    site = start_site()
    pid_file = tmp_path / "site.pid"
    pid_file.write_text(str(site.proc.pid))
    done = _leafnode("-sl", "bogus")
    assert (done.returncode, done.stderr.strip()) == (1, 'leafnode: unknown signal "bogus"')
    done = _leafnode("-sl", "reload=notapid")
    assert (done.returncode, done.stderr.strip()) == (1, "leafnode: invalid pid: notapid")
    # quit is SIGINT: a clean stop; the pid may be a pid file's path.
    done = _leafnode("--signal", f"quit={pid_file}")
    assert done.returncode == 0, done.stderr
    assert site.proc.wait(15) == 0
    assert "Trapped SIGINT signal" in site.log_text()
    done = _leafnode("-sl", f"stop={site.proc.pid}")
    assert (done.returncode, done.stderr.strip()) == (
        1,
        f"leafnode: no such process: {site.proc.pid}",
    )
