"""Every example in README.md is run, so none leads a user astray (issue 11 item 7).

Each fenced block says what it is in its info string, and each kind is run:

* ``conf``: a config file; ``leafnode check`` must accept it without a warning,
  and a SQLite URL in it names a bare file name or an absolute path (three
  slashes and a directory is a path relative to the working directory, which
  an example naming ``/var/lib/...`` never means).
* ``sh``: ``leafnode run ...`` command lines; run with ``-t`` (test the
  configuration, as nats-server's ``-t``), with the files they name made.
* ``env``: the docker-compose variables; ``tests/e2e/test_compose.py`` starts
  the compose services with exactly these (``readme_compose_env``).
* ``text``: output shown (log lines, figures), not an example to run.
* no info string: only ``scripts/run`` and ``scripts/test``; ``scripts/run``
  reads ``examples/leaf.conf``, which is checked here.

A new block of any other kind fails ``test_every_block_is_of_a_kind_that_is_run``:
an example must say what it is, so that it is run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from leafnode.config import load
from tests.support._jwt import JwtOperator

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_SQLITE = re.compile(r"sqlite:///([^\"'\s]*)")
# Blocks without an info string: commands of this repository, not examples.
PLAIN_COMMANDS = {"scripts/run", "scripts/test"}


@dataclass(frozen=True)
class Block:
    kind: str
    text: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.kind or 'plain'})"


def readme_blocks(kind: str | None = None) -> list[Block]:
    """The fenced blocks of README.md (of one ``kind``), indentation removed."""
    text = README.read_text()
    out = []
    for m in _FENCE.finditer(text):
        indent = len(m.group(1))
        body = "".join(line[indent:] for line in m.group(3).splitlines(keepends=True))
        block = Block(m.group(2), body, text.count("\n", 0, m.start()) + 1)
        if kind is None or block.kind == kind:
            out.append(block)
    return out


def readme_compose_env() -> dict[str, str]:
    """The docker-compose variables the README documents (its ``env`` block)."""
    (block,) = readme_blocks("env")
    env = {}
    for line in block.text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def _check(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leafnode", "check", "-c", str(path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_block_is_of_a_kind_that_is_run() -> None:
    blocks = readme_blocks()
    assert blocks
    for block in blocks:
        assert block.kind in ("conf", "sh", "env", "text", ""), block
        if block.kind == "":
            assert block.text.strip() in PLAIN_COMMANDS, block
    assert readme_blocks("conf"), "the README shows no config"


@pytest.mark.parametrize("block", readme_blocks("conf"), ids=str)
def test_config_blocks_pass_leafnode_check(block: Block, tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    conf.write_text(block.text)
    done = _check(conf, tmp_path)
    assert done.returncode == 0, f"{block}: {done.stdout}{done.stderr}"
    assert "test is successful" in done.stdout
    assert "warn" not in (done.stdout + done.stderr).lower(), f"{block}: {done.stderr}"
    for path in _SQLITE.findall(block.text):
        assert path.startswith("/") or "/" not in path, (
            f"{block}: sqlite:///{path} is relative to the working directory; "
            f"an absolute path takes four slashes (sqlite:////{path})"
        )


@pytest.mark.parametrize("block", readme_blocks("sh"), ids=str)
def test_command_lines_are_valid(block: Block, tmp_path: Path) -> None:
    commands = [line for line in block.text.splitlines() if line.startswith("leafnode ")]
    assert commands, block
    user = JwtOperator().account("SITE").user("site")
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["leafnode", "run"], block
        if "--creds" in argv:
            user.write_creds(tmp_path / argv[argv.index("--creds") + 1])
        done = subprocess.run(
            [sys.executable, "-m", "leafnode", "run", "-t", *argv[2:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{block}: {command}: {done.stdout}{done.stderr}"


def test_the_example_config_scripts_run_reads_is_valid(tmp_path: Path) -> None:
    done = _check(REPO / "examples" / "leaf.conf", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_documented_compose_variables_are_complete() -> None:
    env = readme_compose_env()
    assert env["LEAFNODE_API_TOKEN"]
    compose = (REPO / "docker-compose.yml").read_text()
    readme = README.read_text()
    # Every variable the compose file reads for the site is named in the README.
    for name in set(re.findall(r"\$\{(LEAFNODE_\w+)", compose)) - {"LEAFNODE_IMAGE_TAG"}:
        assert f"`{name}`" in readme or name in env, name


def test_the_walkthrough_config_resolves_an_absolute_store(tmp_path: Path) -> None:
    (block,) = [b for b in readme_blocks("conf") if "http_port" in b.text]
    conf = tmp_path / "leaf.conf"
    conf.write_text(block.text)
    settings = load(conf)
    assert settings.store.url == "sqlite:////var/lib/leafnode/buffer.db"
