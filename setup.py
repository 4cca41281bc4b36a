"""Optional mypyc compilation of leafnode's hot modules; everything else is in pyproject.toml.

Theory of operation
-------------------
The modules named in pyproject's ``[tool.leafnode.compile] modules`` (the
wire parser, the message framer and the helpers they call per message) are
compiled by mypyc from the very same source files the wheel also ships as
``.py``: Python imports an extension module before a source module of the
same name, so a compiled install runs the ``.so`` and a pure one the ``.py``,
and the two pass the same test suite (scripts/test runs it both ways).

Compiling is optional and can only ever add ``.so`` files:

* ``LEAFNODE_COMPILE=0`` never compiles; ``1`` compiles when it can; unset
  (``auto``) compiles when it can, in a regular (non-editable) build.
* An editable install (``pip install -e .``, scripts/setup) never compiles:
  setuptools would put the ``.so`` next to the ``.py`` in the source tree,
  where a later edit of the ``.py`` would be silently shadowed by the stale
  extension. Development compiles into a separate tree instead
  (``scripts/compile``).
* No mypyc (the build environment lacks mypy), a type error mypyc refuses,
  no C compiler, no ``Python.h``: a warning, and the build goes on pure. A
  failed C build removes every extension it produced, so a shim never loads
  without its shared library.

The modules form one mypyc group whose shared library is
``leafnode/_hot__mypyc*.so`` (``_GROUP``), so the wheel's only top-level
packages stay ``leafnode`` and ``services`` (tests/unit/test_wheel_contents.py).
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Final

from setuptools import setup
from setuptools.command.build_ext import build_ext

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from setuptools import Extension

HERE: Final = Path(__file__).resolve().parent
# The mypyc group's shared library lands inside the leafnode package, not at
# the top level of site-packages (mypyc's default is a hash-named module there).
_GROUP: Final = "leafnode._hot"
# setuptools' command for PEP 660 editable builds, and the legacy one.
_EDITABLE_COMMANDS: Final = frozenset({"editable_wheel", "develop"})
# Commands that compile C extensions; egg_info and friends (run to list the
# build requirements) must not pay for mypyc.
_BUILD_COMMANDS: Final = frozenset({"bdist_wheel", "build", "build_ext", "install"})


def compiled_modules(pyproject: Path = HERE / "pyproject.toml") -> list[str]:
    """The source files to compile, relative to the project root."""
    with pyproject.open("rb") as f:
        config = tomllib.load(f)
    modules: list[str] = config["tool"]["leafnode"]["compile"]["modules"]
    return modules


def compile_wanted(env: Mapping[str, str], argv: Sequence[str]) -> tuple[bool, str]:
    """Whether this setup.py run should compile, and why not when it should not.

    Args:
        env: the environment (``LEAFNODE_COMPILE``).
        argv: setup.py's command line (setuptools' backend passes the commands).
    """
    mode = env.get("LEAFNODE_COMPILE", "auto").strip().lower() or "auto"
    if mode not in ("0", "1", "auto"):
        return False, f"LEAFNODE_COMPILE={mode!r} is not 0, 1 or auto"
    commands = set(argv[1:])
    if mode == "0":
        return False, "LEAFNODE_COMPILE=0"
    if commands & _EDITABLE_COMMANDS:
        return False, "an editable install stays pure (a stale .so would shadow edited sources)"
    if not commands & _BUILD_COMMANDS:
        return False, "no build command"
    return True, ""


def _note(message: str) -> None:
    print(f"leafnode: {message}", file=sys.stderr)


def mypyc_extensions() -> list[Extension]:
    """mypyc's extensions for the hot modules, or ``[]`` (pure) with a note why."""
    wanted, reason = compile_wanted(os.environ, sys.argv)
    if not wanted:
        if reason != "no build command":
            _note(f"pure-Python build: {reason}")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _note("pure-Python build: mypyc is not installed (pip install mypy)")
        return []
    try:
        return mypycify(
            compiled_modules(), group_name=_GROUP, target_dir=str(Path("build") / "mypyc")
        )
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        _note(f"pure-Python build: mypyc could not compile the hot modules ({exc!r})")
        return []


class OptionalBuildExt(build_ext):
    """``build_ext`` that falls back to the pure-Python modules when the C build fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # the compiler's or setuptools' error, whichever it is
            self._remove_outputs()
            _note(f"pure-Python build: compiling the hot modules failed ({exc})")

    def _remove_outputs(self) -> None:
        for ext in self.extensions:
            for path in (
                Path(self.get_ext_fullpath(ext.name)),
                Path(self.build_lib) / self.get_ext_filename(ext.name),
            ):
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    setup(ext_modules=mypyc_extensions(), cmdclass={"build_ext": OptionalBuildExt})
