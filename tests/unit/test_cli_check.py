"""``leafnode check -c FILE`` as a real subprocess, cross-checked with ``nats-server -t``."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import hub_binaries
from tests.support._jwt import sample_creds

LEAFNODE = Path(sys.executable).parent / "leafnode"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check(
    conf: Path, *, module: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    prefix = (sys.executable, "-m", "leafnode") if module else (str(LEAFNODE),)
    return run(*prefix, "check", "-c", conf.name, cwd=conf.parent, env=env)


def write(tmp_path: Path, text: str, name: str = "leaf.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file(tmp_path: Path) -> None:
    conf = write(tmp_path, "port: 4222\nleafnodes { remotes: [{url: hub}] }\n")
    result = check(conf)
    assert result.returncode == 0
    assert result.stdout == "configuration file leaf.conf test is successful\n"
    assert result.stderr == ""


def test_bad_file(tmp_path: Path) -> None:
    conf = write(tmp_path, "port: 4222\nleafnodes {\n  remotes: [{url: 'ftp://x'}]\n}\n")
    result = check(conf)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("leaf.conf:3:14: leafnodes.remotes[0].url: unsupported")
    assert "Traceback" not in result.stderr


def test_syntax_error(tmp_path: Path) -> None:
    result = check(write(tmp_path, "a {\n"))
    assert (result.returncode, result.stderr) == (
        1,
        "leaf.conf:1:3: unterminated block: missing '}'\n",
    )


def test_error_in_include_names_it(tmp_path: Path) -> None:
    write(tmp_path, "max_payload: lots\n", "limits.conf")
    result = check(write(tmp_path, "include limits.conf\n"))
    assert result.returncode == 1
    assert result.stderr.startswith("limits.conf:1:1: max_payload: expected a size")


def test_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.conf")
    assert result.returncode == 1
    assert result.stderr.startswith("nope.conf: cannot read")
    assert "Traceback" not in result.stderr


def test_warnings_go_to_stderr(tmp_path: Path) -> None:
    result = check(write(tmp_path, "jetstream {}\nport: 1\n"))
    assert result.returncode == 0
    assert result.stderr == (
        "warning: leaf.conf:1:1: jetstream is not supported by leafnode; ignored\n"
    )
    assert "test is successful" in result.stdout


def test_environment_variables(tmp_path: Path) -> None:
    conf = write(tmp_path, "max_payload: $LEAF_TEST_MAXP\n")
    assert check(conf, env={"LEAF_TEST_MAXP": "64KB"}).returncode == 0
    result = check(conf, env={"LEAF_TEST_MAXP": "huge"})
    assert result.returncode == 1
    assert result.stderr.startswith("leaf.conf:1:1: ")


def test_python_dash_m(tmp_path: Path) -> None:
    conf = write(tmp_path, "port: 1\n")
    result = check(conf, module=True)
    assert (result.returncode, result.stdout) == (
        0,
        "configuration file leaf.conf test is successful\n",
    )


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run(str(LEAFNODE), "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "-c" in result.stderr


@dataclass(frozen=True)
class Case:
    """A config both implementations must judge the same way."""

    name: str
    text: str
    ok: bool
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # nats-server versions that decide differently (leafnode-protocol.md §10).
    differs_on: frozenset[str] = frozenset()


BCRYPT = "$2a$11$PWIFAL8RsWyGI3jVZtO9Nu8.6jOxzxfZo7c/W0eLk017hjgUKWrhy"

CASES = [
    Case(
        "forms",
        f"""# comment
port: -1
server_name = "leaf-x"   // comment
max_payload 64KB; max_pending: 1GiB
'max_control_line': 8KB
authorization {{
  users = [
    {{user: a, password: b,
      permissions: {{publish: {{allow: ["a.>"], deny: "a.b"}}, subscribe: "_INBOX.>"}}}}
    {{user: c, password: {BCRYPT}}}
    {{user: "d\\te", password: (
multi-line
password
)
    }}
  ]
  timeout: 3
}}
""",
        ok=True,
    ),
    Case("json", '{\n  "port": -1,\n  "authorization": {"token": "abc"}\n}\n', ok=True),
    Case(
        "variables",
        "PAY: 2MB\nmax_payload: $PAY\nping_interval: $PING\n"
        "authorization { TOK: x, token: $TOK }\n",
        ok=True,
        env={"PING": "30s"},
    ),
    Case(
        "include",
        'port: -1\ninclude "sub/extra.conf"\n',
        ok=True,
        files={
            "sub/extra.conf": "max_connections: 100\ninclude more.conf\n",
            "sub/more.conf": "debug: true",
        },
    ),
    Case(
        "remotes",
        """leafnodes {
  remotes [
    { urls: ["nats-leaf://127.0.0.1:7422", "nats://h2:7422"], no_randomize: true,
      deny_imports: ["x.>"] }
    { url: "tls://h3:7422", hub: true, deny_exports: y }
  ]
}
""",
        ok=True,
    ),
    Case(
        "crlf ngs style",
        'port: 4111\r\nleafnodes {\r\n  remotes = [\r\n    {\r\n      url: "tls://connect.ngs.global"\r\n'
        '      credentials: "./leaf.creds"\r\n      account: "ACC"\r\n    },\r\n  ]\r\n}\r\n'
        "accounts: {\r\n  ACC: { users: [{user: leaf, password: leaf}] }\r\n}\r\n"
        "include ./more.conf\r\n",
        ok=True,
        files={"leaf.creds": sample_creds(), "more.conf": "debug: true; trace: false\n"},
    ),
    Case(
        "garbage creds",
        'leafnodes { remotes: [ { url: "nats://h:1", credentials: "./leaf.creds" } ] }\n',
        ok=False,
        files={"leaf.creds": "x"},
        # nats-server -t does not read the file; leafnode run's uplink refuses it.
        differs_on=frozenset({"latest", "debian"}),
    ),
    Case(
        "duration reconnect",
        'leafnodes { reconnect: "5s", remotes: [{url: "nats://h:1"}] }\n',
        ok=True,
        differs_on=frozenset({"debian"}),  # 2.9 wants integer seconds
    ),
    Case(
        "integer seconds",
        "ping_interval: 30\n",
        ok=True,
        # A deprecated form: nats-server -t turns its warning into an error.
        differs_on=frozenset({"latest", "debian"}),
    ),
    Case("unknown field", "port: 1\ncolour: red\n", ok=False),
    Case("unused variable", "X: 1\nport: 4222\n", ok=False),
    Case("undefined variable", "port: $LEAF_TEST_UNDEFINED_VAR\n", ok=False),
    Case("unterminated block", "authorization {\n  user: a\n", ok=False),
    Case("bad escape", 'server_name: "a\\qb"\n', ok=False),
    Case("two values", "port: 4222 4223\n", ok=False),
    Case("unquoted float duration", "ping_interval: 1.5s\n", ok=False),
    Case(
        "user and users", "authorization { user: a, password: b, users: [{user: c}] }\n", ok=False
    ),
    Case(
        "remote reconnect", "leafnodes { remotes: [{url: 'nats://h:1', reconnect: 1}] }\n", ok=False
    ),
    Case("missing include", "include nope.conf\n", ok=False),
    Case("max_payload too big", "max_payload: 1T\n", ok=False),
    Case("key typo brace", "authorization{ user: a }\n", ok=False),
    Case("array comma", "authorization { users: [{user: a},,{user: b}] }\n", ok=False),
]


def _materialize(case: Case, tmp_path: Path) -> Path:
    for rel, text in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return write(tmp_path, case.text, "case.conf")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_verdicts(case: Case, tmp_path: Path) -> None:
    result = check(_materialize(case, tmp_path), env=case.env)
    assert result.returncode == (0 if case.ok else 1), result.stderr
    assert "Traceback" not in result.stderr
    if not case.ok:
        assert result.stderr.startswith("case.conf:")


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("label", sorted(hub_binaries()) or ["none"])
def test_same_verdict_as_nats_server(case: Case, label: str, tmp_path: Path) -> None:
    binaries = hub_binaries()
    if label not in binaries:
        pytest.skip("no nats-server binary found")
    conf = _materialize(case, tmp_path)
    result = run(binaries[label], "-t", "-c", conf.name, cwd=tmp_path, env=case.env)
    expected = case.ok != (label in case.differs_on)
    assert (result.returncode == 0) == expected, result.stdout + result.stderr


def test_service_table_matches_the_entry_points() -> None:
    from importlib.metadata import entry_points

    from leafnode.entrypoints import SERVICE_GROUP, SERVICE_MAINS

    declared = {ep.name: ep.value for ep in entry_points(group=SERVICE_GROUP)}
    assert declared == SERVICE_MAINS


# Issue 11 point 5: values `leafnode run` refuses, or misreads, fail `leafnode check`.
NONSENSE = [
    (
        "leafnodes {\n  remotes: [{url: hub, buffer {subjects: a,\n    max_bytes: -5}}]\n}\n",
        "leaf.conf:3:5: leafnodes.remotes[0].buffer.max_bytes: expected a size of at least 1, "
        "or -1 for unlimited, got -5",
    ),
    (
        "leafnodes {\n  remotes: [{url: hub, buffer {subjects: a,\n    max_bytes: 5XB}}]\n}\n",
        "leaf.conf:3:5: leafnodes.remotes[0].buffer.max_bytes: expected a size in bytes such as "
        "1048576, 512MB or 1GiB (units K, M, G, T = 1000^n; KB, MB, GB, TB, KiB, MiB, GiB, "
        "TiB = 1024^n), or -1 for unlimited, got a string ('5XB')",
    ),
    (
        'store {\n  url: "mysql://leaf:hunter2@db/leaf"\n}\n',
        "leaf.conf:2:3: store.url: unsupported database scheme 'mysql://' (use sqlite:///PATH "
        "(relative) or sqlite:////PATH (absolute), or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE)",
    ),
    ("tls {\n  verify: true\n}\n", "leaf.conf:1:1: tls: the client port's TLS needs"),
]


@pytest.mark.parametrize(("text", "message"), NONSENSE, ids=["negative", "unit", "mysql", "tls"])
def test_check_refuses_nonsense(text: str, message: str, tmp_path: Path) -> None:
    result = check(write(tmp_path, text))
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(message), result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_store_flag_is_checked(tmp_path: Path) -> None:
    result = run(str(LEAFNODE), "run", "-t", "--store", "mysql://u:hunter2@db/x", cwd=tmp_path)
    assert result.returncode == 1
    assert "command line: --store: unsupported database scheme 'mysql://'" in result.stderr
    assert "hunter2" not in result.stderr


def test_tls_flag_files_are_loaded(tmp_path: Path) -> None:
    # `leafnode run -t` refuses what the router would fail to load at start-up.
    (tmp_path / "bad.pem").write_text("SECRET-ISH not a certificate\n")
    result = run(
        str(LEAFNODE), "run", "-t", "--tlscert", "bad.pem", "--tlskey", "bad.pem", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr == (
        "leafnode run: command line: --tlscert/--tlskey/--tlscacert: cannot load cert_file "
        "and key_file: not in PEM format (expected a PEM certificate and the PEM private key "
        "that matches it)\n"
    )
