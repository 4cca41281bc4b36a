"""What the config loader checks of a ``.creds`` file: the shape the uplink needs.

A creds file (leafnode-protocol.md §5) holds dash-framed blocks: the user JWT
first, the user nkey seed second; text outside the frames is ignored. The
uplink re-reads the file on every connection attempt (a rotated file is
picked up without a restart) and refuses to start when it is unusable; the
loader applies the same rules so that ``leafnode check`` refuses it too.
Problems are described, never quoted: the file holds a secret.
"""

from __future__ import annotations

import nkeys

__all__ = ["creds_problem"]


def _is_frame(line: str) -> bool:
    text = line.strip()
    return len(text) >= 6 and text.startswith("---") and text.endswith("---")


def creds_problem(text: str) -> str | None:
    """Why ``text`` is not a usable creds file, or None when it is."""
    blocks: list[str] = []
    inside = False
    content: str | None = None
    for line in text.splitlines():
        if _is_frame(line):
            if inside and content is not None:
                blocks.append(content)
            content = None
            inside = not inside
            continue
        if inside and content is None and line.strip():
            content = line.strip()
    if not blocks:
        return "no user JWT block (-----BEGIN NATS USER JWT-----) found"
    if blocks[0].count(".") != 2:
        return "the first block is not a JWT"
    if len(blocks) < 2:
        return "no user seed block (-----BEGIN USER NKEY SEED-----) found"
    seed = blocks[1]
    if not seed.startswith("SU"):
        return "the second block is not a user nkey seed (SU...)"
    try:
        nkeys.from_seed(seed.encode())
    except Exception:  # nkeys raises several unrelated types for a bad seed
        return "the second block is not a valid user nkey seed"
    return None
