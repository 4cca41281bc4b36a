"""scripts/check-import-cycles on tiny synthetic packages (issue 13 point 4).

The checker is what CI trusts to say "no cycles", so it is shown to catch the
kinds of cycle that a run-time import check misses: one leg under ``if
TYPE_CHECKING:``, one leg inside a function, and a cycle through three
modules; and to pass a package whose imports only go one way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKER = Path(__file__).resolve().parents[2] / "scripts" / "check-import-cycles"


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)


def _check(root: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), name],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_type_only_cycle_is_a_cycle(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "knot",
        {
            "conn": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from knot.server import Server\n"
            ),
            "server": "from knot.conn import *\n",
        },
    )
    result = _check(tmp_path, "knot")
    assert result.returncode == 1, result
    assert "import cycle: knot.conn:4 -> knot.server:1 -> knot.conn" in result.stdout


def test_a_function_local_import_is_a_cycle(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "late",
        {
            "cli": "def main() -> None:\n    from late import supervisor\n",
            "supervisor": "from late.forks import fork\n",
            "forks": "from late.cli import main\n",
        },
    )
    result = _check(tmp_path, "late")
    assert result.returncode == 1, result
    assert (
        "import cycle: late.cli:2 -> late.supervisor:1 -> late.forks:1 -> late.cli" in result.stdout
    )


def test_one_way_imports_pass(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "layered",
        {
            "proto": "X = 1\n",
            "shapes": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from layered.proto import X\n"
            ),
            "conn": "from layered.shapes import *\n",
            "server": "from layered.conn import *\nfrom layered.proto import X\n",
        },
    )
    result = _check(tmp_path, "layered")
    assert result.returncode == 0, result
    assert result.stdout == "no import cycles in layered (5 modules)\n"
