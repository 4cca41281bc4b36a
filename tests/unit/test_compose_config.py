"""``python -m leafnode.compose``: docker-compose's leaf.conf, written from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from leafnode.compose import main, render, split_subjects, write_config
from leafnode.config import load

TEMPLATE = """server_name: $LEAFNODE_NAME
api { token: $LEAFNODE_API_TOKEN }
leafnodes { remotes: [ { name: hub, url: "nats-leaf://127.0.0.1:7422",
  buffer { subjects: [$LEAFNODE_BUFFER_SUBJECTS], retain: "24h" } } ] }
"""


def _env(**values: str) -> dict[str, str]:
    return {
        "LEAFNODE_CONF": TEMPLATE,
        "LEAFNODE_NAME": "site-a",
        "LEAFNODE_API_TOKEN": "token-1",
        "LEAFNODE_BUFFER_SUBJECTS": "telemetry.>",
        **values,
    }


@pytest.mark.parametrize(
    ("value", "subjects"),
    [
        ("telemetry.>", ["telemetry.>"]),
        ("telemetry.>,metrics.>", ["telemetry.>", "metrics.>"]),
        ("telemetry.>, metrics.*.cpu", ["telemetry.>", "metrics.*.cpu"]),
        ("  telemetry.>   metrics.>\tlogs.> ", ["telemetry.>", "metrics.>", "logs.>"]),
    ],
)
def test_subjects_are_comma_or_space_separated(value: str, subjects: list[str]) -> None:
    assert split_subjects(value) == subjects


def test_the_written_file_buffers_every_subject(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    env = _env(LEAFNODE_BUFFER_SUBJECTS="telemetry.>, metrics.>")
    assert main([str(conf)], env) == 0
    text = conf.read_text()
    # The secret stays a reference; only the subjects are written out.
    assert "$LEAFNODE_API_TOKEN" in text
    assert "token-1" not in text
    (remote,) = load(conf, environ=env).leafnodes.remotes
    assert remote.buffer is not None
    assert remote.buffer.subjects == ("telemetry.>", "metrics.>")


def test_no_subject_is_an_error() -> None:
    with pytest.raises(ValueError, match="LEAFNODE_BUFFER_SUBJECTS is empty"):
        render(TEMPLATE, _env(LEAFNODE_BUFFER_SUBJECTS=" , "))


def test_a_changed_environment_applies_at_the_next_start(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    assert main([str(conf)], _env()) == 0
    changed = _env(LEAFNODE_BUFFER_SUBJECTS="metrics.>", LEAFNODE_NAME="site-b")
    assert main([str(conf)], changed) == 0
    settings = load(conf, environ=changed)
    assert settings.router.server_name == "site-b"
    (remote,) = settings.leafnodes.remotes
    assert remote.buffer is not None
    assert remote.buffer.subjects == ("metrics.>",)


def test_an_edited_file_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "leaf.conf"
    assert main([str(conf)], _env()) == 0
    edited = conf.read_text().replace('retain: "24h"', 'retain: "48h"')
    conf.write_text(edited)
    assert main([str(conf)], _env(LEAFNODE_BUFFER_SUBJECTS="metrics.>")) == 0
    assert conf.read_text() == edited
    assert "was changed since it was written: kept" in capsys.readouterr().out
    # Deleted: written again from the environment.
    conf.unlink()
    assert main([str(conf)], _env(LEAFNODE_BUFFER_SUBJECTS="metrics.>")) == 0
    assert '["metrics.>"]' in conf.read_text()


def test_a_file_from_before_is_kept_when_nothing_says_it_was_ours(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    conf.write_text("port: 4222\n")
    assert write_config(conf, TEMPLATE) is False
    assert conf.read_text() == "port: 4222\n"


def test_a_bad_value_stops_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "leaf.conf"
    assert main([str(conf)], _env(LEAFNODE_BUFFER_SUBJECTS="telemetry..>")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{conf}:4:")
    assert "telemetry..>" in err
