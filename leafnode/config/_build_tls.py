"""``tls { ... }`` blocks (the client port's and a remote's) -> ``TlsSettings``.

As nats-server's ``GenTLSConfig`` does while it parses the config, the
certificate, key and CA files are loaded here, so a file that is not PEM, a
key that does not match its certificate, or an unreadable CA is a config
error with the position of the block (``leafnode check`` finds it), not a
failure of the router or the uplink at start-up. ``ssl`` errors name the
problem, never the file's content.

The client port (``server=True``) needs ``cert_file`` and ``key_file``, and
``verify`` needs ``ca_file`` (the router verifies clients against it only).
``allow_non_tls`` is nats-server's: the client port then serves TLS and plain
clients side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import ConfigError
from ._settings import TlsSettings
from ._values import type_error, want_bool, want_map, want_seconds

if TYPE_CHECKING:
    from ._parser import Entry
    from ._values import Context

__all__ = ["build_tls", "tls_files_problem"]


def build_tls(
    entry: Entry, name: str, ctx: Context, *, default_timeout_s: float, server: bool = False
) -> TlsSettings:
    """A ``tls { ... }`` block; its files must exist and load (see the module docstring).

    ``timeout: 0`` keeps ``default_timeout_s``, as nats-server reads 0.
    """
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    verify = False
    insecure = False
    timeout_s = default_timeout_s
    handshake_first = False
    allow_non_tls = False
    entries: dict[str, Entry] = {}
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        key = item.key.lower()
        match key:
            case "cert_file":
                cert_file = ctx.file_path(item, sub)
            case "key_file":
                key_file = ctx.file_path(item, sub)
            case "ca_file":
                ca_file = ctx.file_path(item, sub)
            case "verify":
                verify = want_bool(item, sub)
            case "insecure":
                insecure = want_bool(item, sub)
            case "timeout":
                timeout_s = want_seconds(item, sub) or default_timeout_s
            case "handshake_first" | "first" | "immediate":
                handshake_first = _want_on_off(item, sub)
            case "allow_non_tls" if server:
                allow_non_tls = want_bool(item, sub)
            case _:
                ctx.unknown(item, sub)
        entries[key] = item
    if (cert_file is None) != (key_file is None):
        missing = "key_file" if key_file is None else "cert_file"
        raise ConfigError.at(
            entry.pos, f"{name}: missing {missing!r} (cert_file and key_file go together)"
        )
    if server and cert_file is None:
        raise ConfigError.at(
            entry.pos, f"{name}: the client port's TLS needs 'cert_file' and 'key_file'"
        )
    if server and verify and ca_file is None:
        raise ConfigError.at(
            entries["verify"].pos,
            f"{name}.verify: verifying clients needs 'ca_file' (the CA they are checked against)",
        )
    _load(entries, name, cert_file, key_file, ca_file)
    return TlsSettings(
        cert_file=cert_file,
        key_file=key_file,
        ca_file=ca_file,
        verify=verify,
        insecure=insecure,
        timeout_s=timeout_s,
        handshake_first=handshake_first,
        allow_non_tls=allow_non_tls,
    )


def _load(
    entries: dict[str, Entry],
    name: str,
    cert_file: str | None,
    key_file: str | None,
    ca_file: str | None,
) -> None:
    """Load the files into a throw-away context, as the router and uplink will."""
    which, problem = _load_problem(cert_file, key_file, ca_file)
    if problem is not None:
        where = entries["ca_file" if which == "ca_file" else "cert_file"].pos
        prefix = f"{name}.ca_file" if which == "ca_file" else name
        raise ConfigError.at(where, f"{prefix}: {problem}")


def tls_files_problem(tls: TlsSettings) -> str | None:
    """Why the certificate, key or CA of ``tls`` cannot be loaded, or None.

    For TLS settings that did not come from a config block (``--tlscert``,
    ``--tlskey``, ``--tlscacert``).
    """
    which, problem = _load_problem(tls.cert_file, tls.key_file, tls.ca_file)
    if problem is None:
        return None
    return f"{which}: {problem}" if which == "ca_file" else problem


def _load_problem(
    cert_file: str | None, key_file: str | None, ca_file: str | None
) -> tuple[str, str | None]:
    import ssl  # only configs with TLS pay for the import

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError) as exc:
            return "cert_file", (
                f"cannot load cert_file and key_file: {_ssl_reason(exc)} "
                "(expected a PEM certificate and the PEM private key that matches it)"
            )
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError) as exc:
            return "ca_file", f"cannot load the CA: {_ssl_reason(exc)} (expected PEM certificates)"
    return "", None


def _ssl_reason(exc: Exception) -> str:
    # OpenSSL's reason ("KEY_VALUES_MISMATCH", "NO_START_LINE"), never file content.
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.lower().replace("_", " ")
    import ssl

    if isinstance(exc, ssl.SSLError):
        return "not in PEM format"  # OpenSSL's "PEM lib" error carries no reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # "No such file or directory", "Permission denied"
    return type(exc).__name__


def _want_on_off(entry: Entry, name: str) -> bool:
    data = entry.value.data
    if isinstance(data, bool):
        return data
    if isinstance(data, str) and data.lower() in ("true", "on", "false", "off"):
        return data.lower() in ("true", "on")
    raise type_error(entry.pos, name, "a boolean", entry.value)
