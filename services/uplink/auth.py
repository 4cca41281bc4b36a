"""Credentials for the hub's CONNECT (leafnode-protocol.md §5).

* user/password from the URL userinfo -> ``user``, ``pass``;
* a lone userinfo token (``nats-leaf://TOKEN@host``) -> ``user`` *and*
  ``auth_token``, as 2.11+ leafs send it: a 2.15 token hub checks
  ``auth_token``, a 2.9 hub ignores tokens on its leaf port, and a hub that
  knows ``TOKEN`` as a user name without password still finds it in ``user``;
* a ``.creds`` file -> ``jwt`` plus ``sig``, the Ed25519 signature of the
  hub's nonce (its ASCII bytes as received, not base64-decoded) with the user
  seed, URL-safe base64 without padding;
* an nkey seed -> ``nkey`` (the public key) plus ``sig``.

The creds file is re-read on every connection attempt, so a rotated file is
picked up without a restart; ``check_credentials`` validates it at start-up.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import nkeys

if TYPE_CHECKING:
    from leafnode.config import RemoteSettings

__all__ = [
    "Credentials",
    "CredentialsError",
    "check_credentials",
    "connect_fields",
    "parse_creds",
    "sign_nonce",
    "url_userinfo",
]


class CredentialsError(Exception):
    """A creds file or seed is unusable.

    Attributes:
        path: the file at fault, or "" for an inline seed.
        line: 1-based line of the problem in ``path`` (1 when unknown).
    """

    def __init__(self, path: str, reason: str, line: int = 1) -> None:
        super().__init__(reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:1: {self.reason}" if self.path else self.reason


@dataclass(frozen=True)
class Credentials:
    """A user JWT and the seed that signs nonces for it."""

    jwt: str
    seed: bytes


def _is_frame(line: str) -> bool:
    """``-----BEGIN NATS USER JWT-----`` and friends: dashes at both ends."""
    text = line.strip()
    return len(text) >= 6 and text.startswith("---") and text.endswith("---")


def parse_creds(text: str, path: str = "") -> Credentials:
    """Split a ``.creds`` file into its JWT (first framed block) and seed (second).

    Text outside the dash-framed blocks is ignored (§5).

    Raises:
        CredentialsError: a block is missing, or the seed is not a user seed.
    """
    blocks: list[tuple[str, int]] = []
    inside = False
    content: str | None = None
    start = 1
    for number, line in enumerate(text.splitlines(), 1):
        if _is_frame(line):
            if inside:
                if content is not None:
                    blocks.append((content, start))
                content = None
            inside = not inside
            continue
        if inside and content is None and line.strip():
            content = line.strip()
            start = number
    if not blocks:
        raise CredentialsError(path, "no user JWT block (-----BEGIN NATS USER JWT-----) found")
    jwt, _ = blocks[0]
    if jwt.count(".") != 2:
        raise CredentialsError(path, "the first block is not a JWT", blocks[0][1])
    if len(blocks) < 2:
        raise CredentialsError(path, "no user seed block (-----BEGIN USER NKEY SEED-----) found")
    seed, seed_line = blocks[1]
    if not seed.startswith("SU"):
        raise CredentialsError(path, "the second block is not a user nkey seed (SU...)", seed_line)
    try:
        nkeys.from_seed(seed.encode())
    except Exception as exc:  # nkeys raises several unrelated types for a bad seed
        raise CredentialsError(path, f"invalid user nkey seed: {exc}", seed_line) from None
    return Credentials(jwt=jwt, seed=seed.encode())


def read_creds(path: str) -> Credentials:
    """Read and parse a ``.creds`` file.

    Raises:
        CredentialsError: unreadable or malformed.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(path, f"cannot read credentials: {exc}") from None
    return parse_creds(text, path)


def check_credentials(remote: RemoteSettings) -> None:
    """Validate a remote's creds file at start-up.

    Raises:
        CredentialsError: the file is unusable.
    """
    if remote.credentials is not None:
        read_creds(remote.credentials)


def sign_nonce(seed: bytes, nonce: str) -> str:
    """Ed25519 signature of the nonce's ASCII bytes, URL-safe base64 without padding."""
    signature: bytes = nkeys.from_seed(bytes(seed)).sign(nonce.encode())
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def url_userinfo(url: str) -> tuple[str | None, str | None]:
    """``(user, password)`` from a URL's userinfo, percent-decoded."""
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return user or None, password


def connect_fields(
    remote: RemoteSettings, userinfo: tuple[str | None, str | None], nonce: str
) -> dict[str, object]:
    """The credential fields of CONNECT for one attempt.

    Raises:
        CredentialsError: the creds file became unreadable since start-up.
    """
    fields: dict[str, object] = {}
    user, password = userinfo
    if user is not None and password is not None:
        fields["user"] = user
        fields["pass"] = password
    elif user is not None:
        fields["user"] = user
        fields["auth_token"] = user
    if remote.credentials is not None:
        creds = read_creds(remote.credentials)
        fields["jwt"] = creds.jwt
        fields["sig"] = sign_nonce(creds.seed, nonce)
    elif remote.nkey is not None:
        seed = remote.nkey.encode()
        public: bytes = nkeys.from_seed(bytes(seed)).public_key
        fields["nkey"] = public.decode()
        fields["sig"] = sign_nonce(seed, nonce)
    return fields
