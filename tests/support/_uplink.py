"""Test support for the uplink: a hub with a leafnode port, the uplink process,
operator/account/user JWTs, and a throw-away CA.

Everything here starts real processes or writes real files; nothing is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nkeys

from ._procs import NatsServerProcess, _Process, free_port

__all__ = [
    "HubProcess",
    "OperatorKeys",
    "TlsFiles",
    "UplinkProcess",
    "make_tls_files",
    "restart_process",
    "wait_for_log",
]


def restart_process(proc: _Process) -> None:
    """Start ``proc`` again with the same command line (same ports), after ``stop``."""
    if proc.proc.poll() is None:
        raise RuntimeError("restart_process: the process is still running")
    proc._log = open(proc.log_path, "ab")  # noqa: SIM115 - closed in stop()
    proc.proc = subprocess.Popen(
        proc.argv, stdout=proc._log, stderr=subprocess.STDOUT, cwd=proc.workdir
    )


def wait_for_log(proc: _Process, pattern: str, *, count: int = 1, timeout: float = 15.0) -> str:
    """Block until ``pattern`` (a regex) occurs ``count`` times in the process log."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = proc.log_text()
        if len(regex.findall(text)) >= count:
            return text
        if proc.proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.proc.returncode}:\n{text}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pattern!r} x{count} not in the log after {timeout}s:\n{text}")
        time.sleep(0.02)


class HubProcess(NatsServerProcess):
    """A real nats-server acting as hub: a client port, a leafnode port, monitoring.

    Args:
        config: extra top-level config lines (accounts, authorization, ...).
        leaf_config: extra lines inside ``leafnodes { }`` (authorization, tls).
        binary: which nats-server to run.
        workdir: where the config and log go.
    """

    def __init__(
        self,
        config: str = "",
        *,
        leaf_config: str = "",
        binary: str | None = None,
        workdir: Path | None = None,
        websocket: bool = False,
    ) -> None:
        self.leaf_port = free_port()
        self.http_port = free_port()
        self.ws_port = free_port() if websocket else 0
        text = (
            f"http: 127.0.0.1:{self.http_port}\n"
            f"leafnodes {{\n  listen: 127.0.0.1:{self.leaf_port}\n{leaf_config}\n}}\n"
        )
        if websocket:
            text += f"websocket {{\n  listen: 127.0.0.1:{self.ws_port}\n  no_tls: true\n}}\n"
        super().__init__(text + config, binary=binary, workdir=workdir)

    @property
    def leaf_url(self) -> str:
        return f"nats-leaf://127.0.0.1:{self.leaf_port}"

    def wait_ready(self, timeout: float = 15.0) -> None:
        super().wait_ready(timeout)
        wait_for_log(self, r"Listening for leafnode connections", timeout=timeout)

    def monitor(self, endpoint: str) -> dict[str, object]:
        """GET a monitoring endpoint (``leafz?subs=1``) as JSON."""
        url = f"http://127.0.0.1:{self.http_port}/{endpoint}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            data: dict[str, object] = json.loads(resp.read())
            return data

    def leaf_subscriptions(self) -> set[str]:
        """Subjects every leaf connection announced, as ``/leafz?subs=1`` shows them."""
        subjects: set[str] = set()
        leafs = self.monitor("leafz?subs=1").get("leafs")
        for leaf in leafs if isinstance(leafs, list) else []:
            if isinstance(leaf, dict):
                subs = leaf.get("subscriptions_list") or []
                subjects.update(s for s in subs if isinstance(s, str))
        return subjects

    def leaf_count(self) -> int:
        count = self.monitor("varz").get("leafnodes", 0)
        return count if isinstance(count, int) else 0


class UplinkProcess(_Process):
    """``leafnode uplink`` reading ``config_path`` and attaching to ``run_dir``."""

    def __init__(
        self,
        config_path: Path,
        run_dir: Path,
        *,
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        python: str | None = None,
    ) -> None:
        """``python``: the interpreter to run (another worktree's venv, for A/B benches)."""
        workdir = workdir or Path(tempfile.mkdtemp(prefix="leafnode-uplink-"))
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            python or sys.executable,
            "-m",
            "leafnode",
            "uplink",
            "-c",
            str(config_path),
            "--run-dir",
            str(run_dir),
            *extra_args,
        ]
        super().__init__(argv, workdir, 0)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until every process start so far has logged a connected remote."""
        wait_for_log(self, r": connected to ", timeout=timeout)

    def wait_connected(self, count: int = 1, timeout: float = 15.0) -> str:
        """Wait for the ``count``-th "connected" line (reconnects count too)."""
        return wait_for_log(self, r": connected to ", count=count, timeout=timeout)


# -- operator mode (leafnode-protocol.md §5 "Hand-made JWTs") --------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_keys(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _encode_jwt(claims: dict[str, object], issuer: nkeys.KeyPair) -> str:
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = dict(claims)
    body["iat"] = int(time.time())
    body["iss"] = issuer.public_key.decode()
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    body["jti"] = base64.b32encode(digest).decode().rstrip("=")
    payload = _b64(json.dumps(body).encode())
    signature: bytes = issuer.sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{_b64(signature)}"


_UNLIMITED = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
}


@dataclass
class _Account:
    name: str
    keys: nkeys.KeyPair
    jwt: str

    @property
    def public_key(self) -> str:
        key: bytes = self.keys.public_key
        return key.decode()


class OperatorKeys:
    """An operator with a system account; makes account JWTs and user creds."""

    def __init__(self) -> None:
        self.keys = _new_keys(nkeys.PREFIX_BYTE_OPERATOR)
        self.accounts: dict[str, _Account] = {}
        self.system = self.account("SYS")
        public = self.keys.public_key.decode()
        self.jwt = _encode_jwt(
            {
                "sub": public,
                "name": "test-operator",
                "nats": {
                    "type": "operator",
                    "version": 2,
                    "system_account": self.system.public_key,
                },
            },
            self.keys,
        )

    def account(self, name: str, *, leaf: int = -1) -> _Account:
        """Create (or return) an account whose limits allow ``leaf`` leaf connections."""
        existing = self.accounts.get(name)
        if existing is not None:
            return existing
        keys = _new_keys(nkeys.PREFIX_BYTE_ACCOUNT)
        public = keys.public_key.decode()
        limits = dict(_UNLIMITED, leaf=leaf)
        jwt = _encode_jwt(
            {
                "sub": public,
                "name": name,
                "nats": {"type": "account", "version": 2, "limits": limits},
            },
            self.keys,
        )
        account = _Account(name, keys, jwt)
        self.accounts[name] = account
        return account

    def user_creds(
        self, account: str, name: str = "leaf", *, connection_types: tuple[str, ...] = ()
    ) -> str:
        """A ``.creds`` file text for a new user of ``account``."""
        acc = self.account(account)
        user = _new_keys(nkeys.PREFIX_BYTE_USER)
        nats: dict[str, object] = {
            "pub": {},
            "sub": {},
            "subs": -1,
            "data": -1,
            "payload": -1,
            "type": "user",
            "version": 2,
        }
        if connection_types:
            nats["allowed_connection_types"] = list(connection_types)
        jwt = _encode_jwt({"sub": user.public_key.decode(), "name": name, "nats": nats}, acc.keys)
        seed = user.seed.decode()
        return (
            "-----BEGIN NATS USER JWT-----\n"
            f"{jwt}\n"
            "------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{seed}\n"
            "------END USER NKEY SEED------\n"
        )

    def hub_config(self) -> str:
        """Top-level hub config lines: operator, system account, MEMORY resolver."""
        preload = "\n".join(f"    {a.public_key}: {a.jwt}" for a in self.accounts.values())
        return (
            f"operator: {self.jwt}\n"
            f"system_account: {self.system.public_key}\n"
            "resolver: MEMORY\n"
            f"resolver_preload {{\n{preload}\n}}\n"
        )


# -- TLS --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A CA and the certificates it signed (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    # A cluster node's certificate: routes are mutual TLS, so it serves both
    # ends (server and client auth) for 127.0.0.1/localhost.
    route_cert: Path
    route_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a CA, a server certificate for 127.0.0.1/localhost, a client certificate
    and a route certificate (both usages, 127.0.0.1/localhost)."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=leafnode test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
        (
            "route",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
    ):
        (directory / f"{name}.ext").write_text(ext)
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=directory,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            "-extfile",
            f"{name}.ext",
            cwd=directory,
        )
    return TlsFiles(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        route_cert=directory / "route.pem",
        route_key=directory / "route.key",
    )
