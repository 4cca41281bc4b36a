"""Property tests of the config loader: any text gives settings or a positioned ConfigError.

Random token soups, and valid files with bytes changed, inserted or deleted,
go through ``loads`` (the path ``leafnode check``, ``leafnode run`` and the
api's ``PUT /config`` share). The answer must be ``Settings`` or a
``ConfigError`` whose text is ``<source>:line:column: reason`` with a real
position inside the text, never another exception. Includes resolve in an
empty directory and ``$VARS`` in an empty environment, so nothing outside
the test is read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leafnode.config import ConfigError, Settings, loads

FUZZ = settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
SOURCE = "fuzz.conf"

VALID = [
    Path(__file__).parents[2].joinpath("examples", "leaf.conf").read_text(),
    """
    server_name: site-b
    listen: 127.0.0.1:4333
    http: "127.0.0.1:8333"
    max_payload: 2MB
    ping_interval: "30s"
    authorization { users = [ { user: a, password: "s3cr3t", permissions: { publish: ["x.>"] } } ] }
    store { url: "sqlite:///tmp/b.db", sync: normal }
    leafnodes {
      reconnect: "250ms"
      remotes = [
        { name: central, urls: ["nats-leaf://h1:7422", "nats-leaf://h2:7422"], account: "$G",
          buffer { subjects: ["tele.>", "logs.*"], max_msgs: 1000, max_bytes: 10MB,
                   max_age: "1h", discard: new } }
        { url: "nats-leaf://hub2:7422", no_randomize: true }
      ]
    }
    """,
    """
    accounts {
      A: { users: [ { user: u1, pass: p1 } ], exports: [ { stream: "a.>" } ] }
      B: { users: [ { nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4 } ],
           imports: [ { stream: { account: A, subject: "a.>" } } ] }
    }
    no_auth_user: u1
    debug: true; trace = false
    # comment
    // another
    lame_duck_duration: 30s
    write_deadline: "2s"
    api { listen: "127.0.0.1:8444", token: "t0k3n" }
    """,
]

fragments = st.sampled_from(
    [
        "port", "listen", "server_name", "leafnodes", "remotes", "buffer", "store", "url",
        "subjects", "max_bytes", "max_msgs", "max_age", "discard", "authorization", "users",
        "accounts", "tls", "api", "token", "include", "ping_interval", "http", "sync",
        "{", "}", "[", "]", ":", "=", ",", ";", " ", "\t", "\n", "\r\n", "#", "//", '"', "'",
        "$X", "${X}", "1", "-5", "0x1f", "1.5", "1e3", "4222", "1GB", "5XB", "30s", "-1s",
        "true", "no", "null", "nats-leaf://h:7422", "sqlite:///x.db", "mysql://x", "a.b.>",
        "\\", "\\u00e9", "\x00", "é", "\ufeff", "<<", ">>", "include 'x.conf'",
    ]
)  # fmt: skip
token_soup = st.lists(fragments | st.text(max_size=4), max_size=50).map("".join)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid file with a few characters overwritten, inserted or deleted."""
    text = list(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        insert = draw(fragments | st.characters(blacklist_categories=["Cs"]))
        match draw(st.sampled_from(["set", "insert", "delete"])):
            case "set" if at < len(text):
                text[at : at + 1] = insert
            case "insert":
                text[at:at] = insert
            case _:
                del text[at : at + draw(st.integers(1, 12))]
    return "".join(text)


def check(text: str, empty_dir: Path) -> None:
    error: ConfigError | None = None
    try:
        result = loads(text, source=SOURCE, base_dir=empty_dir, environ={})
    except ConfigError as exc:
        error = exc
    if error is None:
        assert isinstance(result, Settings)
        return
    lines = text.splitlines() or [""]
    assert error.source == SOURCE, error
    assert 1 <= error.line <= len(lines) + 1, (error, len(lines))
    assert error.column >= 1, error
    assert error.reason, error
    assert str(error) == f"{SOURCE}:{error.line}:{error.column}: {error.reason}"


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where includes resolve: nothing to find there."""
    return tmp_path_factory.mktemp("empty")


def test_the_valid_corpus_loads(empty_dir: Path) -> None:
    for text in VALID:
        assert isinstance(loads(text, source=SOURCE, base_dir=empty_dir, environ={}), Settings)


@FUZZ
@given(token_soup | st.text(max_size=200))
def test_random_text_gives_settings_or_a_positioned_error(empty_dir: Path, text: str) -> None:
    check(text, empty_dir)


@FUZZ
@given(mutated())
def test_mutated_files_give_settings_or_a_positioned_error(empty_dir: Path, text: str) -> None:
    check(text, empty_dir)
