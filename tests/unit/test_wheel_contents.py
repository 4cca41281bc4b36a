"""The wheel ships ``leafnode`` and ``services`` and nothing of tests/ or bench/.

Test support (process starters, hubs, JWT helpers, the chaos engine) lives in
``tests/support``; it used to be ``leafnode/testing`` and went out in every
installed copy. This builds the real wheel from a copy of the source tree with
the venv's setuptools (``pip wheel --no-build-isolation --no-index``: no
network, about a second) and reads its file list. It builds the pure wheel
(``LEAFNODE_COMPILE=0``); tests/unit/test_compiled.py checks the compiled one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What a build reads: the config (pyproject.toml, setup.py), the readme it
# names, and every top-level folder a careless `packages.find` could pick up
# (tests and bench included, so that the exclusion is what is tested, not
# their absence from the copy).
_SOURCES = ("pyproject.toml", "setup.py", "README.md", "leafnode", "services", "tests", "bench")


def build_wheel(source: Path, out: Path, env: dict[str, str] | None = None) -> list[str]:
    """Build the wheel of the tree at ``source`` into ``out``; its member names.

    ``env`` is added to the environment; without it the build is pure
    (``LEAFNODE_COMPILE=0``, setup.py).
    """
    src = out / "src"
    src.mkdir()
    for name in _SOURCES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out / "dist"),
            str(src),
        ],
        env={**os.environ, **(env if env is not None else {"LEAFNODE_COMPILE": "0"})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, (
        "wheel build failed (the venv needs setuptools>=77: scripts/setup --test):\n"
        + built.stdout
        + built.stderr
    )
    (wheel,) = (out / "dist").glob("leafnode-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_wheel_holds_the_product(wheel_names: list[str]) -> None:
    # Guards the test below against passing on an empty or broken wheel.
    for name in (
        "leafnode/__init__.py",
        "leafnode/py.typed",
        "leafnode/proto/__init__.py",
        "services/router/__main__.py",
        "services/store/__main__.py",
    ):
        assert name in wheel_names


def test_wheel_has_no_test_support(wheel_names: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"leafnode", "services"}
    test_parts = {"tests", "testing", "support", "bench", "conftest.py"}
    offending = [name for name in wheel_names if test_parts & set(name.split("/"))]
    assert offending == []


def test_the_pure_wheel_has_no_extension(wheel_names: list[str]) -> None:
    assert [name for name in wheel_names if name.endswith(".so")] == []
