"""The import-linter layers contract places every module of leafnode/ (issue 13 point 4).

A module named in no layer is not checked by the contract at all, so a new
module would silently sit outside the layers; this test makes adding one a
decision about where it belongs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return {name.strip("() ") for layer in layers for name in re.split(r"[|:]", layer)}


def test_every_leafnode_module_is_in_a_layer() -> None:
    modules = {
        f"leafnode.{path.stem}"
        for path in (ROOT / "leafnode").iterdir()
        if (path.suffix == ".py" and not path.stem.startswith("__"))
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - _layered_modules() == set()


def test_every_service_is_in_a_layer() -> None:
    services = {
        f"services.{path.name}"
        for path in (ROOT / "services").iterdir()
        if (path / "__init__.py").exists()
    }
    assert services - _layered_modules() == set()
