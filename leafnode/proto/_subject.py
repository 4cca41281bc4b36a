"""Subject and queue-name validation (leafnode-protocol.md §3).

A subject is a list of ``.``-separated tokens. Tokens may not be empty and may
not contain whitespace (space, tab, CR, LF, FF). ``*`` matches exactly one token,
``>`` one or more and must be last; both are wildcards only as whole tokens.

Subjects are handled as ``bytes`` everywhere on the data path, so these
helpers take and return ``bytes``. They are called once per SUB, and on PUB
only when the client asked for ``pedantic``.
"""

from __future__ import annotations

# Everything in __all__ gets re-exported as part of the leafnode.proto API.
__all__ = [
    "is_literal",
    "is_valid_literal_subject",
    "is_valid_queue",
    "is_valid_subject",
    "split_tokens",
    "subject_is_subset",
    "subject_matches",
]

# bytes.translate(None, delete) removes these; a length change means one was present.
_WHITESPACE = b" \t\r\n\f"


def split_tokens(subject: bytes) -> list[bytes]:
    """Split a subject into its tokens (no validation)."""
    return subject.split(b".")


def _has_whitespace(value: bytes) -> bool:
    return len(value.translate(None, _WHITESPACE)) != len(value)


def is_valid_subject(subject: bytes) -> bool:
    """True when ``subject`` is a valid subscribe subject (wildcards allowed)."""
    if not subject or _has_whitespace(subject):
        return False
    tokens = subject.split(b".")
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if not token:
            return False
        if token == b">" and i != last:
            return False
    return True


def is_literal(subject: bytes) -> bool:
    """True when no token of ``subject`` is a wildcard (``*`` or ``>``)."""
    if b"*" not in subject and b">" not in subject:
        return True
    return all(token not in (b"*", b">") for token in subject.split(b"."))


def is_valid_literal_subject(subject: bytes) -> bool:
    """True when ``subject`` is valid and has no wildcard token (publish subjects)."""
    return is_valid_subject(subject) and is_literal(subject)


def is_valid_queue(queue: bytes) -> bool:
    """A queue name is any non-empty string without whitespace; dots are allowed."""
    return bool(queue) and not _has_whitespace(queue)


def subject_matches(pattern: bytes, subject: bytes) -> bool:
    """True when the literal ``subject`` is matched by ``pattern`` (may have wildcards)."""
    if pattern == subject:
        return True
    ptoks = pattern.split(b".")
    stoks = subject.split(b".")
    for i, ptok in enumerate(ptoks):
        if ptok == b">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok != b"*" and ptok != stoks[i]:
            return False
    return len(ptoks) == len(stoks)


def subject_is_subset(subject: bytes, pattern: bytes) -> bool:
    """True when every subject matched by ``subject`` is also matched by ``pattern``.

    Both may contain wildcards: ``a.*`` is a subset of ``a.>`` and of ``*.*``,
    but not of ``a.b``. Used to check a wildcard SUB against permissions.
    """
    if subject == pattern:
        return True
    stoks = subject.split(b".")
    ptoks = pattern.split(b".")
    for i, ptok in enumerate(ptoks):
        if ptok == b">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        stok = stoks[i]
        if stok == b">":
            return False
        if ptok == b"*":
            continue
        if stok == b"*" or stok != ptok:
            return False
    return len(ptoks) == len(stoks)
