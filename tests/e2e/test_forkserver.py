"""The fork server that starts ``leafnode run``'s services (leafnode.forkserver).

Each case runs the supervisor's side in a fresh interpreter (a fork from a
pytest worker would copy its threads' locks), forks real service mains, and
reports what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support import pid_alive

DRIVER = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from leafnode.forkserver import ForkServer, ForkServerError

    async def main(forks):
        exits, lost = {}, asyncio.Event()
        done = asyncio.Event()
        def on_exit(pid, code):
            exits[pid] = code
            done.set()
        forks.attach(on_exit, lost.set)
        out = {"fork": forks.pid}
        for label, argv in (("help", ["--help"]), ("bad", ["--no-such-flag"])):
            pid = await forks.spawn("migrate", argv)
            while pid not in exits:
                done.clear()
                await asyncio.wait_for(done.wait(), 20)
            out[label] = {"pid": pid, "code": exits[pid]}
        # A service that runs until told to stop: the store, in a temp dir.
        pid = await forks.spawn("store", sys.argv[1:])
        out["store"] = pid
        for _ in range(1000):  # the child names itself right after the fork
            out["comm"] = open(f"/proc/{pid}/comm").read().strip()
            if out["comm"] != "leafnode-fork":
                break
            await asyncio.sleep(0.01)
        out["store_ppid"] = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        os.kill(pid, signal.SIGKILL)
        while pid not in exits:
            done.clear()
            await asyncio.wait_for(done.wait(), 20)
        out["store_code"] = exits[pid]
        os.kill(forks.pid, signal.SIGKILL)
        await asyncio.wait_for(lost.wait(), 20)
        try:
            await forks.spawn("migrate", ["--help"])
        except ForkServerError as exc:
            out["after_loss"] = str(exc)
        print(json.dumps(out))

    forks = ForkServer.start(["services.store.__main__"])
    try:
        asyncio.run(main(forks))
    finally:
        forks.close()
    """
)


def test_forks_service_mains_and_reports_their_exits(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    conf.write_text(f'store {{ url: "sqlite:///{tmp_path}/b.db" }}\nrun_dir: "{tmp_path}"\n')
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, "-c", str(conf), "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["help"]["code"] == 0  # argparse's --help exits 0 through SystemExit
    assert out["bad"]["code"] == 2  # and a bad flag exits 2, as an exec'd command would
    assert "usage: leafnode migrate" in proc.stdout + proc.stderr
    assert out["comm"] == "leafnode-store"
    assert out["store_ppid"] == out["fork"]  # the fork server's child, not the driver's
    assert out["store_code"] == -signal.SIGKILL  # as subprocess reports a signal
    assert out["after_loss"] == "the fork server is gone"
    assert not pid_alive(out["store"])


def test_a_killed_fork_server_takes_its_services_along(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a service gets SIGTERM when the fork server dies."""
    conf = tmp_path / "leaf.conf"
    conf.write_text(f'store {{ url: "sqlite:///{tmp_path}/b.db" }}\nrun_dir: "{tmp_path}"\n')
    driver = textwrap.dedent(
        """
        import asyncio, json, os, sys, time
        from leafnode.forkserver import ForkServer

        async def main(forks):
            forks.attach(lambda pid, code: None, lambda: None)
            pid = await forks.spawn("store", sys.argv[1:])
            print(json.dumps({"fork": forks.pid, "store": pid}), flush=True)
            await asyncio.sleep(3600)  # the test kills us

        asyncio.run(main(ForkServer.start([])))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", driver, "-c", str(conf), "--run-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        pids = json.loads(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)  # the supervisor: the fork server dies with it
        proc.wait(10)
        deadline = time.monotonic() + 5
        while pid_alive(pids["fork"]) or pid_alive(pids["store"]):
            assert time.monotonic() < deadline, "fork server or service outlived the supervisor"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
