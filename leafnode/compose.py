"""``python -m leafnode.compose FILE``: docker-compose's config writer (the ``migrate`` one-shot).

docker-compose.yml keeps the site's config as a template (``x-leaf-conf``,
passed to ``migrate`` as ``LEAFNODE_CONF``) whose ``$NAME`` references each
service resolves from its own environment when it loads the file. This
writes it to ``FILE`` at every start, so a changed environment (or a changed
template) takes effect at the next ``docker-compose up``; it used to be
written only when the file was absent, and every later change was ignored.

``$LEAFNODE_BUFFER_SUBJECTS`` is replaced when writing: a config variable
holds one value, and the variable takes several subjects, separated by
commas or spaces (``telemetry.>, metrics.>``). The other references stay, so
the token and the store URL's password are never written to the volume.

A file someone changed since it was written (an operator's edit, a
``PUT /config``) is theirs: it is kept, with a line saying so. What was
written last is remembered as its SHA-256 in ``FILE.written``.

The result is then checked as ``leafnode check`` does, with this process's
environment: a bad value stops the one-shot with ``file:line:col: reason``
before any service starts. Exit status 0 when the file is usable, 1 if not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .config import ConfigError, load

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["main", "render", "split_subjects", "write_config"]

TEMPLATE_VAR: Final = "LEAFNODE_CONF"
SUBJECTS_VAR: Final = "LEAFNODE_BUFFER_SUBJECTS"
# The reference replaced by the subjects, with or without brackets around it.
_SUBJECTS_REF: Final = re.compile(r"\[\s*\$" + SUBJECTS_VAR + r"\s*\]|\$" + SUBJECTS_VAR + r"\b")
_SEPARATORS: Final = re.compile(r"[\s,]+")


def split_subjects(value: str) -> list[str]:
    """``"a.>, b.*  c"`` -> ``["a.>", "b.*", "c"]`` (commas and/or spaces)."""
    return [s for s in _SEPARATORS.split(value) if s]


def render(template: str, environ: Mapping[str, str]) -> str:
    """The file's text: ``template`` with the buffer subjects written out as an array.

    Raises:
        ValueError: the template names the subjects variable and it is unset or empty.
    """
    if not _SUBJECTS_REF.search(template):
        return template
    subjects = split_subjects(environ.get(SUBJECTS_VAR, ""))
    if not subjects:
        raise ValueError(f"{SUBJECTS_VAR} is empty: name at least one subject to buffer")
    array = "[" + ", ".join(json.dumps(s) for s in subjects) + "]"
    return _SUBJECTS_REF.sub(lambda _m: array, template)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_config(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless someone changed the file since it was last written.

    Returns:
        True when written (or already equal), False when an edited file was kept.
    """
    mark = path.with_name(path.name + ".written")
    data = text.encode()
    if path.exists():
        current = path.read_bytes()
        written = mark.read_text().strip() if mark.exists() else None
        if current == data:
            mark.write_text(_digest(data) + "\n")
            return True
        if _digest(current) != written:
            return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    mark.write_text(_digest(data) + "\n")
    return True


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Write and check the config file named by the single argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if len(args) != 1:
        print("usage: python -m leafnode.compose FILE", file=sys.stderr)
        return 2
    path = Path(args[0])
    template = env.get(TEMPLATE_VAR)
    if not template:
        print(f"leafnode.compose: {TEMPLATE_VAR} is not set", file=sys.stderr)
        return 1
    try:
        text = render(template, env)
    except ValueError as exc:
        print(f"leafnode.compose: {exc}", file=sys.stderr)
        return 1
    if write_config(path, text):
        print(f"leafnode.compose: wrote {path} from the environment")
    else:
        print(
            f"leafnode.compose: {path} was changed since it was written: kept as it is "
            f"(the environment's {TEMPLATE_VAR} and {SUBJECTS_VAR} do not apply; delete the "
            "file to have it written again)"
        )
    try:
        load(path, environ=env)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
