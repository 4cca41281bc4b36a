"""``--remote``, ``--creds``, ``--buffer`` (DESIGN §5): checked as the config file is."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from leafnode.config import ConfigError, Settings, loads
from leafnode.flags import add_leaf_flags, apply_leaf_flags, leaf_flag_argv

CREDS = """-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUAAVAKA3I3KRCRBASSVCFI5BGPPPMZF5QP4ZGIJGYIKVBZP4FIBRJCH7M
------END USER NKEY SEED------
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_leaf_flags(parser)
    return parser.parse_args(argv)


FILE = loads(
    'leafnodes { remotes: [ { name: a, url: "nats-leaf://hub-a:7422" },'
    ' { name: b, url: "hub-b", buffer { subjects: ["x.>"], max_msgs: 5 } } ] }'
)


def test_no_flags_change_nothing() -> None:
    assert apply_leaf_flags(FILE, parse()) is FILE


def test_each_remote_flag_adds_a_remote_named_by_its_url() -> None:
    settings = apply_leaf_flags(
        Settings(), parse("--remote", "hub1", "--remote", "tls://hub2:7000", "--buffer", "t.>")
    )
    one, two = settings.leafnodes.remotes
    assert (one.name, one.urls, one.account) == ("$G@hub1:7422", ("nats-leaf://hub1:7422",), "$G")
    assert two.name == "$G@hub2:7000"
    assert one.buffer is not None
    assert two.buffer is not None
    assert one.buffer.subjects == two.buffer.subjects == ("t.>",)


def test_without_remote_flags_creds_and_buffer_go_to_every_file_remote(tmp_path: Path) -> None:
    creds = tmp_path / "site.creds"
    creds.write_text(CREDS)
    settings = apply_leaf_flags(FILE, parse("--creds", str(creds), "--buffer", "y.>"))
    a, b = settings.leafnodes.remotes
    assert a.credentials == b.credentials == str(creds)
    assert a.buffer is not None
    assert b.buffer is not None
    assert a.buffer.subjects == ("y.>",)
    assert (b.buffer.subjects, b.buffer.max_msgs) == (("x.>", "y.>"), 5)  # limits kept


def test_remote_flags_add_to_the_file_remotes_and_names_stay_unique() -> None:
    settings = apply_leaf_flags(FILE, parse("--remote", "hub-c"))
    assert [r.name for r in settings.leafnodes.remotes] == ["a", "b", "$G@hub-c:7422"]
    twice = parse("--remote", "hub-c", "--remote", "nats-leaf://hub-c:7422")
    with pytest.raises(ConfigError, match="duplicate remote name '\\$G@hub-c:7422'"):
        apply_leaf_flags(FILE, twice)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--remote", "http://hub"), "command line: --remote: unsupported URL scheme 'http'"),
        (("--remote", "hub:notaport"), "command line: --remote: invalid URL"),
        (("--buffer", "a b"), "command line: --buffer: 'a b' is not a valid subject"),
        (("--creds", "/nonexistent/x.creds"), "command line: --creds: file"),
    ],
)
def test_bad_flags_say_which_and_why(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_leaf_flags(FILE, parse(*argv))
    assert str(caught.value).startswith(message), str(caught.value)


def test_flags_pass_on_to_a_service_unchanged() -> None:
    argv = ("--remote", "h1", "--remote", "h2", "--creds", "/c", "--buffer", "a", "--buffer", "b")
    assert leaf_flag_argv(parse(*argv)) == list(argv)
