"""``loads(..., include_root=DIR)``: a config text from someone who may not read the host's files.

Includes stay inside ``DIR`` (by path, ``..`` or symlink); once an include or
a ``$VARIABLE`` brought content in, errors withhold the values they quote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from leafnode.config import ConfigError, Settings, loads

if TYPE_CHECKING:
    from pathlib import Path


def sandboxed(text: str, conf_dir: Path, **env: str) -> Settings:
    return loads(
        text,
        source=str(conf_dir / "leaf.conf"),
        base_dir=conf_dir,
        environ=env,
        include_root=conf_dir,
    )


def refused(text: str, conf_dir: Path, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        sandboxed(text, conf_dir, **env)
    return info.value


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text("first-token-secret rest of it\n")
    inside = tmp_path / "conf"
    (inside / "conf.d").mkdir(parents=True)
    return inside


@pytest.mark.parametrize(
    "include",
    ["../secret.txt", "conf.d/../../secret.txt", "ABS", "link.conf", "conf.d/nested.conf"],
)
def test_includes_outside_are_refused_unread(conf_dir: Path, include: str) -> None:
    secret = conf_dir.parent / "secret.txt"
    (conf_dir / "link.conf").symlink_to(secret)
    (conf_dir / "conf.d" / "nested.conf").write_text(f"include '{secret}'\n")
    name = str(secret) if include == "ABS" else include
    err = refused(f"port: 4222\ninclude '{name}'\n", conf_dir)
    assert "outside the config directory" in err.reason
    assert "first-token-secret" not in str(err)
    if include != "conf.d/nested.conf":
        assert (err.source, err.line, err.column) == (str(conf_dir / "leaf.conf"), 2, 1)


def test_without_include_root_nothing_changes(conf_dir: Path) -> None:
    # A file the operator wrote may include anything (nats-server does the same).
    with pytest.raises(ConfigError) as info:
        loads("include '../secret.txt'", base_dir=conf_dir, environ={})
    assert info.value.source == str(conf_dir / "../secret.txt")
    assert "found 'o'" in info.value.reason


def test_includes_inside_work(conf_dir: Path) -> None:
    (conf_dir / "conf.d" / "limits.conf").write_text("max_payload: 2KB\n")
    assert sandboxed("include conf.d/limits.conf", conf_dir).router.max_payload == 2048


def test_error_in_included_file_names_it_but_not_its_tokens(conf_dir: Path) -> None:
    auth = conf_dir / "auth.conf"
    auth.write_text("authorization {\n  user: a\n  password: 123456\n}\n")
    err = refused("include auth.conf\n", conf_dir)
    assert (err.source, err.line, err.column) == (str(auth), 3, 3)
    assert err.reason == "authorization.password: expected a string (quote it), got an integer"
    auth.write_text("colour_secret_key: 'value'\n")
    err = refused("include auth.conf\n", conf_dir)
    assert (err.source, err.line, err.column) == (str(auth), 1, 1)
    assert err.reason == "unknown field '\u2026'"
    auth.write_text("port: [1, 2\n")
    err = refused("include auth.conf\n", conf_dir)
    assert err.source == str(auth)
    assert "unterminated array" in err.reason


def test_values_from_environment_are_withheld(conf_dir: Path) -> None:
    err = refused("port: $DB_PASSWORD\n", conf_dir, DB_PASSWORD="env-secret-5e1")
    assert "env-secret-5e1" not in str(err)
    assert err.reason == "port: expected an integer, got a string"
    err = refused("port: $BROKEN\n", conf_dir, BROKEN="[env-secret-5e1")
    assert "env-secret-5e1" not in str(err)
    assert "is not a valid value" in err.reason


def test_values_of_the_sent_text_are_still_quoted(conf_dir: Path) -> None:
    err = refused('port: "eighty"\n', conf_dir)
    assert err.reason == "port: expected an integer, got a string ('eighty')"
    err = refused(
        "leafnodes { remotes: [{url: hub, buffer {subjects: a, max_bytes: -5}}] }\n", conf_dir
    )
    assert err.reason.endswith("got -5")
