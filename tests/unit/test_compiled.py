"""Which build of the hot modules runs: mypyc-compiled or the pure-Python fallback.

scripts/test runs the suite twice (README, "Compiled hot modules"): once on
the editable install, pure Python, and once under ``scripts/compiled``, which
sets ``LEAFNODE_COMPILED_LIB`` to the unpacked compiled wheel it put first on
the module path. These tests prove that each pass runs what it claims, in
this process and in the processes tests start (services, CLIs), that the
compiled copy is the current source (never a stale shadow of an edit), that
the compiled wheel keeps the .py fallback next to each .so, and that a build
without a C compiler, or an editable install, gives the pure modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, SourceFileLoader
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.unit.test_wheel_contents import build_wheel

if TYPE_CHECKING:
    from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
_LIB = os.environ.get("LEAFNODE_COMPILED_LIB")
COMPILED_LIB = Path(_LIB) if _LIB else None


def _load_setup() -> ModuleType:
    """setup.py as a module (its ``setup()`` call runs only as ``__main__``)."""
    spec = importlib.util.spec_from_file_location("_leafnode_setup", REPO / "setup.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETUP = _load_setup()
SOURCES: list[str] = SETUP.compiled_modules()
MODULES = [source.removesuffix(".py").replace("/", ".") for source in SOURCES]
# A parse exercising every compiled module: PUB runs (_parser), a SUB (_verbs,
# _subject) and the leaf/data-link framer with a queue-group route (_framer, _route).
_PROBE = """
from leafnode.proto import Kind, MessageFramer, Parser, encode_acc, encode_lmsg
parser = Parser(Kind.CLIENT)
parser.feed(b"PUB a.b 2\\r\\nhi\\r\\nSUB a.* q 1\\r\\nPUB a.c r 0\\r\\n\\r\\nPING\\r\\n")
out = [repr(event) for event in parser.drain()]
framer = MessageFramer(Kind.INTERNAL, max_payload=1024, max_control_line=1024, accounts=True)
framer.feed(encode_acc(b"$G") + encode_lmsg(b"x.y", b"_INBOX.1", (b"q",), b"data"))
framer.drain(lambda f: out.append(repr((f.account, f.subject, f.route(), f.data))) or False, print)
print(out)
"""


def _pure_env() -> dict[str, str]:
    """The environment without scripts/compiled's settings: the editable, pure install."""
    env = dict(os.environ)
    for name in ("LEAFNODE_COMPILED_LIB", "PYTHONPATH", "PYTHONSAFEPATH"):
        env.pop(name, None)
    return env


def _run_python(code: str, env: dict[str, str] | None, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", MODULES)
def test_the_requested_mode_is_in_effect(name: str) -> None:
    module = importlib.import_module(name)
    file = module.__file__
    assert file is not None
    if COMPILED_LIB is None:
        assert isinstance(module.__loader__, SourceFileLoader)
        assert Path(file) == REPO / f"{name.replace('.', '/')}.py"
    else:
        assert isinstance(module.__loader__, ExtensionFileLoader)
        assert file.endswith(tuple(EXTENSION_SUFFIXES))
        # mypyc sets some modules' __file__ to a path under the shared
        # library's folder; the extension itself is in the compiled tree.
        stem = COMPILED_LIB / name.replace(".", "/")
        assert any(Path(f"{stem}{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def test_the_other_modules_are_the_sources() -> None:
    # Only the configured modules are compiled: the rest of leafnode (and all
    # of services) is imported from the tree or its exact copy.
    import leafnode.proto._events
    import services.router.routing

    for module in (leafnode.proto._events, services.router.routing):
        assert isinstance(module.__loader__, SourceFileLoader)
    assert services.router.routing.__file__ == str(REPO / "services/router/routing.py")


def test_processes_started_by_tests_run_the_same_mode(tmp_path: Path) -> None:
    # Services are started as `python -m leafnode ...` from a temporary working
    # directory, with the test process's environment.
    code = "\n".join(f"import {name} as m; print(m.__file__)" for name in MODULES)
    files = _run_python(code, None, tmp_path).split()
    assert len(files) == len(MODULES)
    for file in files:
        assert file.endswith(tuple(EXTENSION_SUFFIXES) if COMPILED_LIB else (".py",))


def test_compiled_and_pure_parse_alike(tmp_path: Path) -> None:
    # The fallback is the same source: in the compiled pass, a pure process
    # (the editable install) parses the probe exactly as this pass does.
    check = "import leafnode.proto._parser as m; assert m.__file__.endswith('.py'), m.__file__\n"
    pure = _run_python(check + _PROBE, _pure_env(), tmp_path)
    this = _run_python(_PROBE, None, tmp_path)
    assert pure == this
    assert "Pub(subject=b'a.b', reply=None, payload=b'hi')" in pure
    assert "(b'$G', b'x.y', (b'_INBOX.1', (b'q',)), b'data')" in pure


@pytest.mark.skipif(COMPILED_LIB is None, reason="the compiled pass only (scripts/compiled)")
def test_the_compiled_tree_is_the_current_source() -> None:
    # A stale copy would shadow edits: every .py must be the tree's, byte for byte.
    assert COMPILED_LIB is not None
    source = {p.relative_to(REPO): p.read_bytes() for p in (REPO / "leafnode").rglob("*.py")}
    copied = {
        p.relative_to(COMPILED_LIB): p.read_bytes()
        for p in (COMPILED_LIB / "leafnode").rglob("*.py")
    }
    assert copied.keys() == source.keys()
    assert [name for name in source if copied[name] != source[name]] == []


@pytest.mark.skipif(COMPILED_LIB is None, reason="the compiled pass only (scripts/compiled)")
def test_the_compiled_wheel_ships_the_fallback_beside_each_extension() -> None:
    assert COMPILED_LIB is not None
    (wheel,) = (COMPILED_LIB.parent / "dist").glob("leafnode-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert tops == {"leafnode", "services"}
    extensions = {name.split(".", 1)[0] for name in names if name.endswith(".so")}
    # The modules, and their group's shared library inside the leafnode package.
    assert extensions == {source.removesuffix(".py") for source in SOURCES} | {
        "leafnode/_hot__mypyc"
    }
    assert set(SOURCES) <= set(names)


@pytest.mark.slow
def test_a_build_without_a_c_compiler_is_pure(tmp_path: Path) -> None:
    # Compiling is requested and mypyc generates the C code, but the compiler
    # is missing: the wheel still builds, with every module as .py only.
    names = build_wheel(REPO, tmp_path, {"LEAFNODE_COMPILE": "1", "CC": str(tmp_path / "no-cc")})
    assert [name for name in names if name.endswith(".so")] == []
    assert set(SOURCES) <= set(names)


@pytest.mark.parametrize(
    ("env", "argv", "wanted"),
    [
        ({}, ["setup.py", "bdist_wheel", "--dist-dir", "d"], True),
        ({"LEAFNODE_COMPILE": "1"}, ["setup.py", "bdist_wheel"], True),
        ({"LEAFNODE_COMPILE": "0"}, ["setup.py", "bdist_wheel"], False),
        ({"LEAFNODE_COMPILE": "yes"}, ["setup.py", "bdist_wheel"], False),
        # pip install -e (scripts/setup): never, not even on request.
        ({}, ["setup.py", "editable_wheel", "--dist-dir", "d"], False),
        ({"LEAFNODE_COMPILE": "1"}, ["setup.py", "editable_wheel"], False),
        ({"LEAFNODE_COMPILE": "1"}, ["setup.py", "develop"], False),
        # Listing the build requirements does not compile.
        ({"LEAFNODE_COMPILE": "1"}, ["setup.py", "egg_info"], False),
    ],
)
def test_when_setup_compiles(env: dict[str, str], argv: list[str], wanted: bool) -> None:
    assert SETUP.compile_wanted(env, argv)[0] is wanted
