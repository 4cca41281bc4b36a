"""``cluster { }`` and the cluster flags as nats-server reads them (issue 14 point 1).

The block and ``--cluster``/``--routes``/``--cluster_name`` land in
``Settings.cluster`` with nats-server's keys, aliases, defaults and errors
(``file:line:col: reason``, no password in any of them); the router serves
them, so only the keys leafnode does not use are warned about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import TlsFiles

from leafnode.config import ClusterSettings, ConfigError, loads
from leafnode.flags import load_with_flags


def cluster_of(text: str) -> ClusterSettings:
    cluster = loads(text).cluster
    assert cluster is not None
    return cluster


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(text)
    return info.value


def test_no_block_no_cluster() -> None:
    settings = loads("port: 4222")
    assert settings.cluster is None
    assert settings.warnings == ()


def test_every_key() -> None:
    cluster = cluster_of(
        """
        cluster {
          name: site-a
          listen: "127.0.0.1:6222"
          routes: ["nats-route://ruser:rpass@10.0.0.2:6222", "nats://10.0.0.3:6222"]
          authorization { user: ruser, password: rpass, timeout: 0.5 }
          no_advertise: true
          cluster_advertise: "10.0.0.1:6222"
          connect_retries: 5
          pool_size: 5
        }
        """
    )
    assert cluster == ClusterSettings(
        name="site-a",
        host="127.0.0.1",
        port=6222,
        routes=("nats-route://ruser:rpass@10.0.0.2:6222", "nats://10.0.0.3:6222"),
        user="ruser",
        password="rpass",
        auth_timeout_s=0.5,
        advertise="10.0.0.1:6222",
        no_advertise=True,
        connect_retries=5,
        pool_size=5,
    )


def test_defaults_and_host_port_aliases() -> None:
    cluster = cluster_of("CLUSTER { NET: 127.0.0.2, Port: -1 }")
    assert (cluster.host, cluster.port, cluster.pool_size, cluster.routes) == (
        "127.0.0.2",
        -1,
        3,
        (),
    )
    assert cluster_of("cluster { port: 1, pool_size: 0 }").pool_size == 3
    assert cluster_of("cluster { port: 1, pool_size: -1 }").pool_size == -1


def test_a_served_cluster_warns_only_about_unused_keys() -> None:
    settings = loads("port: 1\ncluster {\n  port: 6222\n  compression: s2_auto\n}\n")
    assert settings.warnings == (
        "<string>:4:3: cluster.compression is not supported by leafnode; ignored",
    )


def test_tls_is_served_without_a_warning(tls_files: TlsFiles) -> None:
    settings = loads(
        "cluster {\n  port: 6222\n  tls {\n"
        f'    cert_file: "{tls_files.route_cert}"\n    key_file: "{tls_files.route_key}"\n'
        f'    ca_file: "{tls_files.ca_cert}"\n    timeout: 3\n    handshake_first: true\n'
        "  }\n}\n"
    )
    assert settings.warnings == ()
    assert settings.cluster is not None
    tls = settings.cluster.tls
    assert tls is not None
    assert (tls.cert_file, tls.ca_file, tls.timeout_s) == (
        str(tls_files.route_cert),
        str(tls_files.ca_cert),
        3.0,
    )
    # Routes' TLS needs the node's own certificate (it is presented both ways).
    problem = error(f'cluster {{\n  port: 6222\n  tls {{ ca_file: "{tls_files.ca_cert}" }}\n}}\n')
    assert "cert_file" in str(problem)


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ('cluster {\n name: "a b"\n}', 2, 2, "cluster.name: cluster name cannot contain spaces"),
        (
            "cluster {\n authorization { users: [{user: a, password: b}] }\n}",
            2,
            2,
            "Cluster authorization does not allow multiple users",
        ),
        (
            "cluster {\n authorization { token: t }\n}",
            2,
            2,
            "Cluster authorization does not support tokens",
        ),
        ("cluster {\n port: 70000\n}", 2, 2, "port 70000 is out of range"),
        ("cluster {\n colour: red\n}", 2, 2, "unknown field 'cluster.colour'"),
        ('cluster {\n routes: [\n  "h:6222"\n ]\n}', 3, 3, "needs a scheme"),
        ('cluster {\n routes: ["nats://:6222"]\n}', 2, 11, "has no host"),
        ('cluster {\n routes: ["nats://h"]\n}', 2, 11, "needs a port"),
        ('cluster {\n routes: ["nats://h:x"]\n}', 2, 11, "error parsing route url"),
        ("cluster {\n connect_retries: -1\n}", 2, 2, "connect_retries"),
        ("cluster: 5", 1, 1, "cluster"),
    ],
)
def test_errors_name_the_place(text: str, line: int, column: int, reason: str) -> None:
    err = error(text)
    assert (err.line, err.column) == (line, column), str(err)
    assert reason in err.reason, str(err)


def test_route_errors_never_show_the_password() -> None:
    err = error('cluster { routes: ["nats://u:topsecret@h"] }')
    assert "needs a port" in str(err)
    assert "topsecret" not in str(err)


def test_duplicate_route_is_dropped_with_a_warning() -> None:
    settings = loads('cluster { routes: ["nats://u:pw1@h:1", "nats://u:pw1@h:1"] }')
    assert settings.cluster is not None
    assert settings.cluster.routes == ("nats://u:pw1@h:1",)
    assert "Duplicate route entry detected" in settings.warnings[0]
    assert "pw1" not in " ".join(settings.warnings)


def flags(*argv: str) -> ClusterSettings:
    loaded = load_with_flags("leafnode run", list(argv))
    assert not isinstance(loaded, int)
    cluster = loaded[0].cluster
    assert cluster is not None
    return cluster


def test_flags_parse_as_nats_server() -> None:
    cluster = flags(
        "--cluster",
        "nats://ruser:rpass@127.0.0.1:-1",
        "--routes",
        "nats://127.0.0.1:6223, nats://127.0.0.1:6224",
        "--cluster_name",
        "site-cluster",
        "--cluster_advertise",
        "10.0.0.1:6222",
        "--no_advertise",
        "--connect_retries",
        "4",
    )
    assert cluster == ClusterSettings(
        name="site-cluster",
        host="127.0.0.1",
        port=-1,
        routes=("nats://127.0.0.1:6223", "nats://127.0.0.1:6224"),
        user="ruser",
        password="rpass",
        advertise="10.0.0.1:6222",
        no_advertise=True,
        connect_retries=4,
    )


def test_flags_override_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(
        'cluster { name: a, port: 6222, routes: ["nats://h:1"],'
        " authorization { user: u, password: p } }"
    )
    loaded = load_with_flags(
        "leafnode run",
        ["-c", str(conf), "--cluster", "nats://0.0.0.0:7000", "--routes", "nats://g:2"],
    )
    assert not isinstance(loaded, int)
    cluster = loaded[0].cluster
    assert cluster is not None
    # As overrideCluster: --cluster without userinfo clears the file's route user.
    assert (cluster.name, cluster.port, cluster.routes, cluster.user, cluster.password) == (
        "a",
        7000,
        ("nats://g:2",),
        None,
        None,
    )


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (
            ["--routes", "nats://h:1"],
            "solicited routes require cluster capabilities, e.g. --cluster",
        ),
        (["--cluster", "nats://u@h:1"], "--cluster: expected cluster password to be set"),
        (["--cluster", "nowhere"], "--cluster: expected nats://host:port"),
        (["--cluster", "nats://h:1", "--routes", "h:2"], "--routes: route url"),
        (["--cluster_name", "a b"], "--cluster_name: cluster name cannot contain spaces"),
    ],
)
def test_flag_errors(argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_with_flags("leafnode run", argv) == 1
    err = capsys.readouterr().err
    assert f"leafnode run: command line: {reason}" in err, err


def test_flag_errors_never_show_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_with_flags("leafnode run", ["--cluster", "nats://u:sekrit@h"]) == 1
    err = capsys.readouterr().err
    assert "--cluster" in err
    assert "sekrit" not in err
