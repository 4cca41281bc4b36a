"""No secret is ever printed: answers, log lines at -DV, CLI output (issue 11 point 3).

Every secret-bearing setting gets a distinct sentinel string: the client
user's password and later a client token, a downstream leaf user's password
(leafnodes.authorization.users), the websocket block's own
password (and a wrong one sent in a cookie), the cluster block's route
password and a route URL's password, a remote URL's password, a
remote's bare token, a creds file (its JWT and seed), a remote nkey seed,
the api token, the PostgreSQL store URL's password. Wrong passwords and
tokens that clients present are sentinels too. Then ``leafnode run -DV -l
FILE`` runs with two real hubs (one checks a leaf user and password, one is
in operator mode for the creds), clients connect right and wrong, every
API endpoint is driven (every GET the OpenAPI document lists, PUT and POST
/config with a reloadable change, an invalid file and a restart-needing
change, SIGHUP), every CLI command runs, and no sentinel may appear in any
answer, log line or output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import nkeys
import pytest
from nats.errors import Error as NatsError

from tests.conftest import until
from tests.support import PG_USER, HubProcess, OperatorKeys, PgCluster, SiteProcess
from tests.wsclient import WsClient


def _sentinel(name: str) -> str:
    return f"sntl{name}{os.urandom(6).hex()}"


SECRET_NAMES = (
    "userpw",
    "wrongpw",
    "urlpw",
    "badurlpw",
    "remotetoken",
    "apitoken",
    "wrongapitoken",
    "dbpw",
    "otherdbpw",
    "clienttoken",
    "wrongtoken",
    "wspw",
    "wrongwspw",
    "clusterpw",
    "routepw",
    "leafuserpw",
    "otherleafuserpw",
)


@pytest.fixture
def sentinels() -> dict[str, str]:
    return {name: _sentinel(name) for name in SECRET_NAMES}


@pytest.fixture
def hubs(
    tmp_path: Path, sentinels: dict[str, str]
) -> Iterator[tuple[HubProcess, HubProcess, OperatorKeys]]:
    """A hub checking the leaf's user and password, and one in operator mode (creds)."""
    operator = OperatorKeys()
    operator.account("APP")
    leaf_auth = f'  authorization {{ user: leafuser, password: "{sentinels["urlpw"]}" }}'
    plain = HubProcess(leaf_config=leaf_auth, workdir=tmp_path / "hub-plain")
    jwt_hub = HubProcess(operator.hub_config(), workdir=tmp_path / "hub-jwt")
    try:
        plain.wait_ready()
        jwt_hub.wait_ready()
        yield plain, jwt_hub, operator
    finally:
        plain.kill()
        jwt_hub.kill()


def _cli(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "leafnode", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


async def _connect(url: str, **auth: str) -> str:
    """Connect and close; the outcome as text (an error's text is an answer too)."""
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, **auth)
    except (NatsError, OSError) as exc:
        return f"refused: {exc!r}"
    await nc.publish("tele.audit", b"x")
    await nc.flush()
    await nc.close()
    return "connected"


def _ws_connect(port: int, fields: dict[str, object], cookie: str = "") -> str:
    """A websocket client's INFO, then the answer to its CONNECT and PING (PONG or -ERR)."""
    client = WsClient(port, headers=[(b"Cookie", cookie.encode())] if cookie else [])
    out = b""
    try:
        out += client.read_until(b"\r\n")
        client.send(b"CONNECT %b\r\nPING\r\n" % json.dumps(fields).encode())
        out += client.read_until(b"\r\n")
    except AssertionError as exc:
        out += str(exc).encode()
    finally:
        client.close()
    return out.decode(errors="replace")


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_no_secret_in_any_answer_log_line_or_output(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    sentinels: dict[str, str],
    hubs: tuple[HubProcess, HubProcess, OperatorKeys],
) -> None:
    plain, jwt_hub, operator = hubs
    s = dict(sentinels)
    creds = operator.user_creds("APP")
    creds_jwt = re.search(r"(eyJ[\w.-]+)", creds)
    creds_seed = re.search(r"(SU[A-Z2-7]{56})", creds)
    assert creds_jwt is not None
    assert creds_seed is not None
    s["credsjwt"], s["credsseed"] = creds_jwt.group(1), creds_seed.group(1)
    s["nkeyseed"] = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    creds_path = tmp_path / "site.creds"
    creds_path.write_text(creds)

    if PgCluster.available():
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        # The cluster trusts local connections: the password is carried, never checked.
        store_url = cluster.create_database().replace(f"{PG_USER}@", f"{PG_USER}:{s['dbpw']}@")
    else:
        s.pop("dbpw")
        store_url = f"sqlite:///{tmp_path}/buffer.db"
    host = "127.0.0.1"
    config = f"""
authorization {{ user: alice, password: "{s["userpw"]}" }}
websocket {{
  port: -1, no_tls: true, user_cookie: wu, pass_cookie: wp
  authorization {{ user: wsuser, password: "{s["wspw"]}" }}
}}
api {{ token: "{s["apitoken"]}" }}
cluster {{
  port: -1
  routes: ["nats-route://ruser:{s["routepw"]}@127.0.0.1:1"]
  authorization {{ user: ruser, password: "{s["clusterpw"]}" }}
}}
store {{ url: "{store_url}" }}
leafnodes {{
  reconnect: "250ms"
  authorization {{ account: "$G", users: [ {{ user: down, password: "{s["leafuserpw"]}" }} ] }}
  remotes: [
    {{ name: central, url: "nats-leaf://leafuser:{s["urlpw"]}@{host}:{plain.leaf_port}",
       buffer {{ subjects: ["tele.>"] }} }},
    {{ name: badpw, url: "nats-leaf://leafuser:{s["badurlpw"]}@{host}:{plain.leaf_port}" }},
    {{ name: bytoken, url: "nats-leaf://{s["remotetoken"]}@{host}:{plain.leaf_port}" }},
    {{ name: bynkey, url: "nats-leaf://{host}:{plain.leaf_port}", nkey: "{s["nkeyseed"]}" }},
    {{ name: bycreds, url: "nats-leaf://{host}:{jwt_hub.leaf_port}", credentials: "{creds_path}" }}
  ]
}}
"""
    outputs: list[str] = []

    # -- CLI before the run --------------------------------------------------------
    conf = tmp_path / "leaf.conf"
    conf.write_text(config)
    outputs.append(_cli("check", "-c", str(conf), cwd=tmp_path))
    outputs.append(_cli("migrate", "-c", str(conf), cwd=tmp_path))
    outputs.append(_cli("-v", cwd=tmp_path))
    broken = tmp_path / "broken.conf"
    broken.write_text(config + "port: [1\n")
    outputs.append(_cli("check", "-c", str(broken), cwd=tmp_path))
    broken.write_text(config.replace(f"{host}:{plain.leaf_port}", f"{host}:notaport", 1))
    outputs.append(_cli("check", "-c", str(broken), cwd=tmp_path))
    assert "invalid URL" in outputs[-1]
    assert "exit 0" in outputs[0], outputs[0]
    assert "exit 0" in outputs[1], outputs[1]

    # -- leafnode run -DV with a log file ------------------------------------------
    log_file = tmp_path / "leafnode.log"
    site = SiteProcess(
        config,
        workdir=tmp_path / "site",
        extra_args=("-p", "-1", "-m", "-1", "-DV", "-l", str(log_file)),
    )
    try:
        until(lambda: site.ports_file.exists(), "the site to be ready")
        ports = json.loads(site.ports_file.read_text())
        port = int(ports["nats"][0].rsplit(":", 1)[1])
        http_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
        url = f"nats://127.0.0.1:{port}"
        until(lambda: plain.leaf_count() >= 1, "central to connect to the plain hub")
        until(lambda: jwt_hub.leaf_count() >= 1, "the creds remote to connect")
        text = log_file.read_text
        refused = [f'remote "{n}": error connecting' for n in ("badpw", "bytoken", "bynkey")]
        until(lambda: all(line in text() for line in refused), "the hub to refuse the others")

        # Clients: right, wrong password, no password.
        assert await _connect(url, user="alice", password=s["userpw"]) == "connected"
        outputs.append(await _connect(url, user="alice", password=s["wrongpw"]))
        outputs.append(await _connect(url))
        # Websocket clients: right in CONNECT, wrong in a cookie.
        ws_port = int(ports["websocket"][0].rsplit(":", 1)[1])
        right = {"verbose": False, "user": "wsuser", "pass": s["wspw"]}
        outputs.append(_ws_connect(ws_port, right))
        assert outputs[-1].endswith("PONG\r\n"), outputs[-1]
        outputs.append(_ws_connect(ws_port, {}, f"wu=wsuser; wp={s['wrongwspw']}"))
        assert "Authorization Violation" in outputs[-1], outputs[-1]

        base = f"http://127.0.0.1:{http_port}"
        auth = {"Authorization": f"Bearer {s['apitoken']}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as http:

            def record(resp: httpx.Response) -> httpx.Response:
                outputs.append(f"{resp.request.method} {resp.request.url} {resp.status_code}")
                outputs.append(str(resp.headers))
                outputs.append(resp.text)
                return resp

            # Every GET the api documents, with the token, without it, with a wrong one.
            spec = record(http.get("/openapi.json")).json()
            gets = [p for p, ops in spec["paths"].items() if "get" in ops and "{" not in p]
            assert {"/config", "/varz", "/leafz", "/buffer", "/healthz"} <= set(gets)
            for path in gets:
                record(http.get(path))
            for path in ("/connz?auth=1&subs=1", "/leafz?subs=1", "/subsz?subs=1", "/docs", "/"):
                record(http.get(path))
            record(http.get("/config", headers={"Authorization": ""}))
            wrong = {"Authorization": f"Bearer {s['wrongapitoken']}"}
            assert record(http.get("/config", headers=wrong)).status_code == 403

            # PUT the running config back with every secret as [REDACTED], one change.
            redacted = config
            secrets = (
                "userpw",
                "wspw",
                "urlpw",
                "badurlpw",
                "remotetoken",
                "apitoken",
                "nkeyseed",
                "leafuserpw",
            )
            for name in secrets:
                redacted = redacted.replace(s[name], "[REDACTED]")
            if "dbpw" in s:
                redacted = redacted.replace(s["dbpw"], "[REDACTED]")
            put = {"Content-Type": "text/plain"}
            changed = redacted + "max_payload: 2MB\n"
            assert record(http.put("/config", content=changed, headers=put)).status_code == 200
            # An invalid file, with every secret in it.
            invalid = config + "port: [1\n"
            assert record(http.put("/config", content=invalid, headers=put)).status_code == 422
            # A change that needs a restart: refused, old and new store URL masked.
            if "dbpw" in s:
                moved = config.replace(s["dbpw"], s["otherdbpw"]).replace("/t_", "/u_")
                assert record(http.put("/config", content=moved, headers=put)).status_code == 409
            # A downstream leaf user's new password needs a restart: refused, never shown.
            moved = config.replace(s["leafuserpw"], s["otherleafuserpw"])
            assert record(http.put("/config", content=moved, headers=put)).status_code == 409
            moved = config + "server_name: moved\n"
            assert record(http.put("/config", content=moved, headers=put)).status_code == 409
            assert record(http.post("/config/reload")).status_code == 200
            record(http.post("/replay", json={"action": "pause"}))
            record(http.post("/replay", json={"action": "resume"}))

            # SIGHUP reloads too.
            reloads = text().count("Reloaded configuration")
            site.signal(signal.SIGHUP)
            until(lambda: text().count("Reloaded configuration") > reloads, "SIGHUP reload")

            # Token auth for clients now, and a wrong token.
            tokened = re.sub(
                r"authorization \{.*\}\n",
                f'authorization {{ token: "{s["clienttoken"]}" }}\n',
                config,
                count=1,
            )
            assert record(http.put("/config", content=tokened, headers=put)).status_code == 200
            assert await _connect(url, token=s["clienttoken"]) == "connected"
            outputs.append(await _connect(url, token=s["wrongtoken"]))
            record(http.get("/config"))
            record(http.get("/connz?auth=1"))
    finally:
        site.signal(signal.SIGTERM)
        site.proc.wait(timeout=30)
    outputs.append(_cli("check", "-c", str(tmp_path / "site" / "leaf.conf"), cwd=tmp_path))

    everything = {
        "log file": log_file.read_text(),
        "run output": site.log_text(),
        "answers and CLI": "\n".join(outputs),
    }
    assert "Server is ready" in everything["log file"]
    assert "config reload not supported for server_name" in everything["log file"]
    # Each leak shown as the line it is in, with the secret replaced by its name.
    leaks = [
        f"{where}: {line.replace(secret, f'<{name}>')[:300]}"
        for where, content in everything.items()
        for name, secret in s.items()
        for line in content.splitlines()
        if secret in line
    ]
    assert leaks == [], "\n".join(leaks)
