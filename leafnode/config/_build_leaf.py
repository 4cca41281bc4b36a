"""``leafnodes { remotes: [...] }``, a remote's ``buffer``, and ``tls`` blocks -> settings.

Remote keys and aliases are nats-server's (leafnode-protocol.md §7), plus our
``name`` and ``buffer`` (DESIGN §4, §8). The accepting side's keys (``listen``,
``authorization``, ...) are read by ``_build_leaf_accept``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ._build_leaf_accept import ACCEPT_KEYS, build_accept, check_accept
from ._build_tls import build_tls
from ._creds import creds_problem
from ._errors import ConfigError
from ._settings import (
    DEFAULT_ACCOUNT,
    BufferSettings,
    LeafAcceptSettings,
    LeafnodeSettings,
    RemoteSettings,
    TlsSettings,
)
from ._values import (
    is_user_seed,
    want_bool,
    want_duration,
    want_limit,
    want_list,
    want_map,
    want_secret,
    want_str,
    want_str_list,
    want_subjects,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from ._errors import Pos
    from ._parser import Entry, Tree
    from ._values import Context

__all__ = ["build_leafnodes", "normalize_url"]

# Default ports by URL scheme: the leafnode port, or the WebSocket defaults.
_DEFAULT_PORTS = {"nats-leaf": 7422, "nats": 7422, "tls": 7422, "ws": 80, "wss": 443}
DEFAULT_RECONNECT_S = 1.0
DEFAULT_REMOTE_TIMEOUT_S = 1.0  # first_info_timeout and dial_timeout
DEFAULT_TLS_TIMEOUT_S = 2.0
_IGNORED_LEAF_KEYS = frozenset(
    {"isolate_leafnode_interest", "isolate", "write_deadline", "write_timeout"}
)
# nats-server remote options we accept but do not implement.
_IGNORED_REMOTE_KEYS = frozenset(
    {
        "jetstream_cluster_migrate",
        "js_cluster_migrate",
        "isolate_leafnode_interest",
        "isolate",
        "request_isolation",
        "proxy",
        "ignore_discovered_servers",
    }
)


def build_leafnodes(
    entry: Entry, ctx: Context, accounts: Collection[str], *, operator: bool = False
) -> LeafnodeSettings:
    """The ``leafnodes`` (alias ``leaf``) block; ``accounts`` are the known account names."""
    name = "leafnodes"
    accept = LeafAcceptSettings()
    reconnect_s = DEFAULT_RECONNECT_S
    dial_timeout_s = DEFAULT_REMOTE_TIMEOUT_S
    remotes_entry: Entry | None = None
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        key = item.key.lower()
        match key:
            case "reconnect" | "reconnect_delay" | "reconnect_interval":
                reconnect_s = want_duration(item, sub, positive=True)
            case "dial_timeout":
                dial_timeout_s = want_duration(item, sub, positive=True)
            case "remotes":
                remotes_entry = item
            case "compression":
                pass  # Accepted and ignored: we always talk plain text to the hub.
            case _ if key in ACCEPT_KEYS:
                accept = build_accept(accept, item, ctx, None if operator else accounts)
            case _ if key in _IGNORED_LEAF_KEYS:
                ctx.ignored(item, sub)
            case _:
                ctx.unknown(item, sub)
    remotes: list[RemoteSettings] = []
    if remotes_entry is not None:
        names: set[str] = set()
        for index, value in enumerate(want_list(remotes_entry, f"{name}.remotes")):
            remote = _build_remote(value.data, value.pos, index, ctx, accounts, dial_timeout_s)
            if remote is None:
                continue
            if remote.name in names:
                raise ConfigError.at(value.pos, f"duplicate remote name {remote.name!r}")
            names.add(remote.name)
            remotes.append(remote)
    check_accept(accept, entry, operator=operator)
    return LeafnodeSettings(remotes=tuple(remotes), reconnect_s=reconnect_s, accept=accept)


def _build_remote(
    data: object,
    pos: Pos,
    index: int,
    ctx: Context,
    accounts: Collection[str],
    dial_timeout_s: float,
) -> RemoteSettings | None:
    name = f"leafnodes.remotes[{index}]"
    if not isinstance(data, dict):
        raise ConfigError.at(pos, f"{name}: expected a block {{ url: ... }}")
    block: Tree = data
    remote_name: str | None = None
    urls: list[tuple[str, str, int]] = []
    account = DEFAULT_ACCOUNT
    account_pos: Pos | None = None
    credentials: str | None = None
    nkey: str | None = None
    tls: TlsSettings | None = None
    flags = {"no_randomize": False, "hub": False, "ws_compression": False, "ws_no_masking": False}
    deny_imports: tuple[str, ...] = ()
    deny_exports: tuple[str, ...] = ()
    first_info_timeout_s = DEFAULT_REMOTE_TIMEOUT_S
    buffer: BufferSettings | None = None
    disabled = False
    for item in block.values():
        sub = f"{name}.{item.key}"
        key = item.key.lower()
        match key:
            case "name":
                remote_name = want_str(item, sub)
                if not remote_name or any(ch.isspace() for ch in remote_name):
                    raise ConfigError.at(item.pos, f"{sub}: invalid remote name {remote_name!r}")
            case "url" | "urls":
                urls = []
                for raw, url_pos in want_str_list(item, sub):
                    url = normalize_url(raw, url_pos, sub)
                    if url not in urls:
                        urls.append(url)
            case "account" | "local":
                account = want_str(item, sub)
                account_pos = item.pos
            case "credentials" | "creds":
                if nkey is not None:
                    raise ConfigError.at(item.pos, f"{name}: cannot have both credentials and nkey")
                credentials = ctx.file_path(item, sub)
                _check_creds(credentials, item.pos, sub)
            case "nkey" | "seed":
                if credentials is not None:
                    raise ConfigError.at(item.pos, f"{name}: cannot have both credentials and nkey")
                nkey = want_secret(item, sub)
                if not is_user_seed(nkey):
                    raise ConfigError.at(item.pos, f"{sub}: not a valid user nkey seed (SU...)")
            case "tls":
                tls = build_tls(item, sub, ctx, default_timeout_s=DEFAULT_TLS_TIMEOUT_S)
            case "no_randomize" | "dont_randomize":
                flags["no_randomize"] = want_bool(item, sub)
            case "hub":
                flags["hub"] = want_bool(item, sub)
            case "ws_compress" | "ws_compression" | "websocket_compress" | "websocket_compression":
                flags["ws_compression"] = want_bool(item, sub)
            case "ws_no_masking" | "websocket_no_masking":
                flags["ws_no_masking"] = want_bool(item, sub)
            case "deny_imports" | "deny_import":
                deny_imports = want_subjects(item, sub)
            case "deny_exports" | "deny_export":
                deny_exports = want_subjects(item, sub)
            case "first_info_timeout":
                first_info_timeout_s = want_duration(item, sub, positive=True)
            case "dial_timeout":
                dial_timeout_s = want_duration(item, sub, positive=True)
            case "compression":
                pass  # Accepted and ignored: we always talk plain text to the hub.
            case "buffer":
                buffer = _build_buffer(item, sub, ctx)
            case "disabled":
                disabled = want_bool(item, sub)
            case _ if key in _IGNORED_REMOTE_KEYS:
                ctx.ignored(item, sub)
            case _:
                ctx.unknown(item, sub)
    if not urls:
        raise ConfigError.at(pos, f"{name}: a remote needs 'url' or 'urls'")
    if account != DEFAULT_ACCOUNT and account not in accounts:
        assert account_pos is not None
        raise ConfigError.at(account_pos, f"{name}.account: unknown account {account!r}")
    if disabled:
        ctx.warnings.append(f"{pos}: {name} is disabled; it will not connect")
        return None
    if remote_name is None:
        # DESIGN §8: <account>@<host>:<port> of the first URL.
        _, host, port = urls[0]
        remote_name = f"{account}@{host}:{port}"
    return RemoteSettings(
        name=remote_name,
        urls=tuple(url for url, _, _ in urls),
        account=account,
        credentials=credentials,
        nkey=nkey,
        tls=tls,
        no_randomize=flags["no_randomize"],
        hub=flags["hub"],
        deny_imports=deny_imports,
        deny_exports=deny_exports,
        first_info_timeout_s=first_info_timeout_s,
        dial_timeout_s=dial_timeout_s,
        ws_compression=flags["ws_compression"],
        ws_no_masking=flags["ws_no_masking"],
        buffer=buffer,
    )


def normalize_url(raw: str, pos: Pos, name: str) -> tuple[str, str, int]:
    """Validate a remote URL; returns ``(url, host, port)`` with scheme and port filled in.

    A URL without scheme gets ``nats-leaf://``; one without port gets the
    scheme's default (7422, or 80/443 for ``ws``/``wss``). User info is kept.
    """
    text = raw.strip()
    if "://" not in text:
        text = f"nats-leaf://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError.at(pos, f"{name}: invalid URL {_shown(raw)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        allowed = ", ".join(sorted(_DEFAULT_PORTS))
        raise ConfigError.at(
            pos,
            f"{name}: unsupported URL scheme {parts.scheme!r} in {_shown(raw)!r} (use {allowed})",
        )
    host = parts.hostname
    if not host:
        raise ConfigError.at(pos, f"{name}: URL {_shown(raw)!r} has no host")
    if port == 0:
        raise ConfigError.at(
            pos, f"{name}: URL {_shown(raw)!r}: port 0 cannot be dialed (use 1..65535)"
        )
    netloc = parts.netloc
    if port is None:
        port = _DEFAULT_PORTS[scheme]
        netloc = f"{netloc}:{port}"
    shown_host = f"[{host}]" if ":" in host else host
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment)), shown_host, port


def _check_creds(path: str, pos: Pos, name: str) -> None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError.at(pos, f"{name}: cannot read the credentials file: {reason}") from None
    problem = creds_problem(text)
    if problem is not None:
        raise ConfigError.at(pos, f"{name}: not a usable .creds file: {problem}")


def _shown(raw: str) -> str:
    """A URL as an error may quote it: user info (a password or token) redacted."""
    scheme, sep, rest = raw.strip().rpartition("://")
    authority, slash, path = rest.partition("/")
    _, at, host = authority.rpartition("@")
    if not at:
        return raw
    return f"{scheme}{sep}[REDACTED]@{host}{slash}{path}"


def _build_buffer(entry: Entry, name: str, ctx: Context) -> BufferSettings:
    """``buffer { subjects, max_msgs, max_bytes, max_age, discard, retain }`` (DESIGN §4)."""
    defaults = BufferSettings()
    subjects: tuple[str, ...] = ()
    max_msgs = defaults.max_msgs
    max_bytes = defaults.max_bytes
    max_age_s = defaults.max_age_s
    discard = defaults.discard
    retain_s = defaults.retain_s
    for item in want_map(entry, name).values():
        sub = f"{name}.{item.key}"
        match item.key.lower():
            case "subjects" | "subject":
                subjects = want_subjects(item, sub)
            case "max_msgs":
                # -1 (or 0) means unlimited, as in JetStream stream limits.
                max_msgs = want_limit(item, sub, size=False)
            case "max_bytes":
                max_bytes = want_limit(item, sub, size=True)
            case "max_age":
                age = want_duration(item, sub)
                max_age_s = age if age > 0 else None
            case "discard":
                discard = want_str(item, sub).lower()
                if discard not in ("old", "new"):
                    raise ConfigError.at(
                        item.pos, f"{sub}: expected 'old' or 'new', got {discard!r}"
                    )
            case "retain":
                retain_s = want_duration(item, sub)
            case _:
                ctx.unknown(item, sub)
    if not subjects:
        raise ConfigError.at(entry.pos, f"{name}: 'subjects' is required")
    return BufferSettings(
        subjects=subjects,
        max_msgs=max_msgs,
        max_bytes=max_bytes,
        max_age_s=max_age_s,
        discard=discard,
        retain_s=retain_s,
    )
