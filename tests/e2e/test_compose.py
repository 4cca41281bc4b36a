"""docker-compose.yml without a container engine (issue 5, item 4).

1. Debian's ``docker-compose config`` validates the file with every profile.
2. The file is parsed (PyYAML, with compose's ``${VAR:-default}`` interpolation)
   and each service of the ``demo`` profile runs as a local process with
   exactly its command line and environment: the image's ENTRYPOINT/CMD from
   the Dockerfile, named volumes mapped to temp dirs (and each container's
   private ``/tmp`` to its own), ``depends_on`` conditions honoured by running
   the services' own healthchecks. Only the variables a user would set change:
   ports and listen address (free ports on 127.0.0.1), the hub's address (the
   ``hub`` host name is 127.0.0.1 here); the rest is the environment the
   README documents (its ``env`` block: the api token, several buffer subjects).
3. The site then works end to end: a nats-py request from the site reaches a
   responder on the real nats-server hub and back, a buffered publish on each
   documented subject shows in ``/buffer``, ``/healthz`` is ok.
4. ``migrate`` writes leaf.conf from the environment at every start: a changed
   variable (or template) applies at the next start; an edited file is kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
import yaml

from leafnode.compose import render
from leafnode.config import load
from tests.conftest import respond_ok, until_responding
from tests.e2e.test_readme import readme_compose_env
from tests.support import free_port, nats_server_binary

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
README_ENV = readme_compose_env()
TOKEN = README_ENV["LEAFNODE_API_TOKEN"]
SUBJECTS = README_ENV["LEAFNODE_BUFFER_SUBJECTS"].replace(",", " ").split()
_VAR = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: object, env: Mapping[str, str]) -> object:
    """Compose's variable substitution, applied to every string of the file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = env.get(name)
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?") and (current is None or (op == ":?" and not current)):
            raise KeyError(f"required variable {name}: {arg}")
        return current or ""

    return _VAR.sub(substitute, value)


def load_compose(env: Mapping[str, str]) -> dict[str, object]:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(raw, dict)
    result = interpolate(raw, env)
    assert isinstance(result, dict)
    return result


def image_defaults() -> tuple[list[str], list[str]]:
    """ENTRYPOINT and CMD of the Dockerfile (exec form)."""
    found: dict[str, list[str]] = {}
    for line in DOCKERFILE.read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
    return found["ENTRYPOINT"], found["CMD"]


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    assert isinstance(value, list)
    return [str(v) for v in value]


def _env_dict(value: object) -> dict[str, str]:
    if isinstance(value, list):
        return dict(str(v).split("=", 1) for v in value)
    assert isinstance(value, dict | type(None))
    return {str(k): str(v) for k, v in (value or {}).items()}


@dataclass
class LocalService:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None
    depends_on: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


def local_services(
    compose: dict[str, object], profiles: set[str], tmp: Path, bin_dir: Path
) -> dict[str, LocalService]:
    entrypoint, cmd = image_defaults()
    services = compose["services"]
    assert isinstance(services, dict)
    out: dict[str, LocalService] = {}
    for name, spec in services.items():
        assert isinstance(spec, dict)
        wanted = set(spec.get("profiles") or [])
        if wanted and not wanted & profiles:
            continue
        ours = str(spec.get("image", "")).startswith("leafnode:")
        argv = _as_list(spec.get("entrypoint")) or (entrypoint if ours else [])
        argv = argv + (_as_list(spec.get("command")) if "command" in spec else cmd)
        # Volumes -> temp dirs; the container's private /tmp -> its own dir.
        mapping = {"/tmp/": f"{tmp / name / 'tmp'}/"}
        for volume in spec.get("volumes") or []:
            source, target = str(volume).split(":")[:2]
            mapping[target] = str(tmp / "volumes" / source)
            (tmp / "volumes" / source).mkdir(parents=True, exist_ok=True)
        (tmp / name / "tmp").mkdir(parents=True, exist_ok=True)

        # One pass, longest first: a mapped path (under the host's /tmp) is
        # never mapped again.
        targets = re.compile("|".join(re.escape(t) for t in sorted(mapping, key=len)[::-1]))

        def mapped(
            text: str, targets: re.Pattern[str] = targets, mapping: dict[str, str] = mapping
        ) -> str:
            return targets.sub(lambda m: mapping[m.group(0)], text)

        env = {k: mapped(v) for k, v in _env_dict(spec.get("environment")).items()}
        env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
        env["HOME"] = str(tmp / name)
        health = spec.get("healthcheck")
        test = _as_list(health.get("test")) if isinstance(health, dict) else []
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: "service_started" for d in depends}
        assert isinstance(depends, dict)
        out[name] = LocalService(
            name=name,
            argv=[mapped(a) for a in argv],
            env=env,
            healthcheck=[mapped(a) for a in test[1:]] if test[:1] == ["CMD"] else None,
            depends_on={str(k): str(v.get("condition")) for k, v in depends.items()},
        )
    return out


def _start_order(services: dict[str, LocalService]) -> list[str]:
    order: list[str] = []
    while len(order) < len(services):
        ready = [
            n
            for n, s in services.items()
            if n not in order and all(d in order for d in s.depends_on)
        ]
        assert ready, f"dependency cycle among {set(services) - set(order)}"
        order += ready
    return order


def _healthy(service: LocalService) -> bool:
    assert service.healthcheck is not None
    done = subprocess.run(
        service.healthcheck, env=service.env, capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


def _wait(service: LocalService, condition: str, timeout: float = 60.0) -> None:
    assert service.proc is not None
    deadline = time.monotonic() + timeout
    while True:
        if condition == "service_completed_successfully":
            code = service.proc.poll()
            if code is not None:
                assert code == 0, f"{service.name} exited {code}:\n{service.log_text()}"
                return
        else:
            assert service.proc.poll() is None, f"{service.name} died:\n{service.log_text()}"
            if condition == "service_started" or _healthy(service):
                return
        assert time.monotonic() < deadline, f"{service.name}: {condition}:\n{service.log_text()}"
        time.sleep(0.1)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """``leafnode``, ``python`` and ``nats-server`` as the images have them on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    # Wrappers, not symlinks: a symlinked venv python would not find its venv.
    for name, target in (
        ("python", f'"{sys.executable}"'),
        ("leafnode", f'"{sys.executable}" -m leafnode'),
        ("nats-server", f'"{nats_server_binary()}"'),
    ):
        script = directory / name
        script.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        script.chmod(0o755)
    return directory


@pytest.fixture
def demo_env() -> dict[str, str]:
    ports = {
        name: str(free_port())
        for name in (
            "LEAFNODE_CLIENT_PORT",
            "LEAFNODE_HTTP_PORT",
            "HUB_CLIENT_PORT",
            "HUB_HTTP_PORT",
            "HUB_LEAF_PORT",
        )
    }
    hub_url = README_ENV["LEAFNODE_HUB_URL"]
    assert hub_url == "nats-leaf://hub:7422"  # the demo profile's hub
    return {
        **README_ENV,
        **ports,
        "LEAFNODE_LISTEN_HOST": "127.0.0.1",
        "HUB_LISTEN_HOST": "127.0.0.1",
        "LEAFNODE_HUB_URL": f"nats-leaf://127.0.0.1:{ports['HUB_LEAF_PORT']}",
    }


@pytest.fixture
def running(
    tmp_path: Path, bin_dir: Path, demo_env: dict[str, str]
) -> Iterator[dict[str, LocalService]]:
    services = local_services(load_compose(demo_env), {"demo"}, tmp_path, bin_dir)
    assert set(services) == {"migrate", "store", "router", "uplink", "api", "hub"}
    try:
        for name in _start_order(services):
            service = services[name]
            for dependency, condition in service.depends_on.items():
                _wait(services[dependency], condition)
            service.log = tmp_path / f"{name}.log"
            with open(service.log, "wb") as log:
                service.proc = subprocess.Popen(
                    service.argv,
                    env=service.env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for service in services.values():
            if service.healthcheck is not None:
                _wait(service, "service_healthy")
        yield services
    finally:
        for service in services.values():
            if service.proc is not None and service.proc.poll() is None:
                service.proc.terminate()
        for service in services.values():
            if service.proc is not None:
                try:
                    service.proc.wait(10)
                except subprocess.TimeoutExpired:
                    service.proc.kill()
                    service.proc.wait(5)


@pytest.mark.parametrize("profiles", [(), ("demo",), ("postgres",), ("demo", "postgres")])
def test_docker_compose_config_validates(profiles: tuple[str, ...]) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    args = [binary, "-f", str(COMPOSE)]
    for profile in profiles:
        args += ["--profile", profile]
    env = {**os.environ, "LEAFNODE_API_TOKEN": TOKEN}
    done = subprocess.run([*args, "config", "-q"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_the_api_token_is_required() -> None:
    with pytest.raises(KeyError, match="LEAFNODE_API_TOKEN"):
        load_compose({})


def test_the_leaf_config_it_writes_is_valid(demo_env: dict[str, str]) -> None:
    from leafnode.config import loads

    compose = load_compose(demo_env)
    services = compose["services"]
    assert isinstance(services, dict)
    env = _env_dict(services["migrate"]["environment"])
    settings = loads(render(env["LEAFNODE_CONF"], env), environ=env)
    assert settings.run_dir == "/run/leafnode"
    assert settings.api.token == TOKEN
    (remote,) = settings.leafnodes.remotes
    assert remote.buffer is not None
    assert remote.buffer.subjects == tuple(SUBJECTS)
    assert len(SUBJECTS) > 1  # the README shows that several work


def _run_migrate(
    env: dict[str, str], tmp: Path, bin_dir: Path, *, template: str | None = None
) -> LocalService:
    migrate = local_services(load_compose(env), {"demo"}, tmp, bin_dir)["migrate"]
    if template is not None:
        migrate.env["LEAFNODE_CONF"] = template
    done = subprocess.run(
        migrate.argv, env=migrate.env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return migrate


def test_a_changed_environment_applies_at_the_next_start(
    tmp_path: Path, bin_dir: Path, demo_env: dict[str, str]
) -> None:
    first = _run_migrate(demo_env, tmp_path, bin_dir)
    conf = tmp_path / "volumes" / "config" / "leaf.conf"
    (remote,) = load(conf, environ=first.env).leafnodes.remotes
    assert remote.buffer is not None
    assert remote.buffer.subjects == tuple(SUBJECTS)

    changed = {**demo_env, "LEAFNODE_BUFFER_SUBJECTS": "metrics.>,logs.>", "LEAFNODE_NAME": "b"}
    template = first.env["LEAFNODE_CONF"].replace('retain: "24h"', 'retain: "48h"')
    second = _run_migrate(changed, tmp_path, bin_dir, template=template)
    settings = load(conf, environ=second.env)
    assert settings.router.server_name == "b"
    (remote,) = settings.leafnodes.remotes
    assert remote.buffer is not None
    assert remote.buffer.subjects == ("metrics.>", "logs.>")
    assert remote.buffer.retain_s == 48 * 3600

    # An operator's edit (by hand or PUT /config) is theirs: kept.
    conf.write_text(conf.read_text().replace('retain: "48h"', 'retain: "1h"'))
    third = _run_migrate(demo_env, tmp_path, bin_dir)
    (remote,) = load(conf, environ=third.env).leafnodes.remotes
    assert remote.buffer is not None
    assert remote.buffer.retain_s == 3600
    assert remote.buffer.subjects == ("metrics.>", "logs.>")


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_demo_profile_is_a_working_site(
    running: dict[str, LocalService], demo_env: dict[str, str]
) -> None:
    site_url = f"nats://127.0.0.1:{demo_env['LEAFNODE_CLIENT_PORT']}"
    hub_url = f"nats://127.0.0.1:{demo_env['HUB_CLIENT_PORT']}"
    api = f"http://127.0.0.1:{demo_env['LEAFNODE_HTTP_PORT']}"
    hub = await nats.connect(hub_url)
    site = await nats.connect(site_url)
    try:
        await hub.subscribe("svc.>", cb=respond_ok)
        await until_responding(site, "svc.echo", timeout=20)  # site -> hub -> site

        for subject in SUBJECTS:
            await site.publish(subject.replace(">", "t1").replace("*", "x"), b"for the hub")
        await site.flush()
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            deadline = time.monotonic() + 10
            while (await http.get("/buffer")).json()["total"]["msgs"] < len(SUBJECTS):
                assert time.monotonic() < deadline, "the buffered messages never showed"
                await asyncio.sleep(0.05)
            health = await http.get("/healthz")
            assert health.status_code == 200, health.text
            services = health.json()["services"]
            assert {name: s["status"] for name, s in services.items()} == {
                "router": "ok",
                "store": "ok",
                "uplink": "ok",
            }
            assert (await http.get("/buffer", headers={"Authorization": ""})).status_code == 401
    finally:
        await site.close()
        await hub.close()
    assert running["migrate"].proc is not None
    assert running["migrate"].proc.returncode == 0
