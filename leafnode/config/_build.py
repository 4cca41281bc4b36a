"""Config file -> ``Settings`` (DESIGN §6): ``load``, ``loads`` and the top-level keys.

Keys are matched case-insensitively with nats-server's spellings and aliases
(``server/opts.go``), so an existing nats-server leaf config runs unchanged.
Options we do not implement are accepted with exactly one warning line each
in ``Settings.warnings``; any other unknown key is an error, unless it exists
only to be used as a ``$variable``.

Blocks that depend on each other (``accounts`` and ``authorization``, both and
``no_auth_user``, ``tls`` and the auth timeout, ``leafnodes`` and the account
names, the four operator-mode keys) are collected first and built in
dependency order, so their order in the file does not matter.

Operator mode (``operator`` + ``resolver: MEMORY`` + ``resolver_preload``,
optional ``system_account``) follows nats-server's ``validateTrustedOperators``:
``accounts``, ``authorization { users }`` and ``no_auth_user`` are errors with
it, a single user or token is accepted and ignored (with a warning here; it
cannot authenticate anyone there). Stricter than nats-server, which only
refuses clients later: a preloaded account JWT that is not signed by a
trusted operator key, or whose key is not the one it is listed under, is a
config error.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import nkeys

from ._build_auth import (
    Authorization,
    DecodedJwt,
    JwtError,
    build_accounts,
    build_authorization,
    decode_jwt,
    nkey_verify_key,
    operator_signing_keys,
)
from ._build_cluster import build_cluster
from ._build_leaf import build_leafnodes
from ._build_store import build_store, build_takeover
from ._build_tls import build_tls
from ._build_ws import build_websocket, check_websocket_auth
from ._errors import ConfigError
from ._parser import Entry, Sandbox, Value, parse_tree
from ._settings import (
    DEFAULT_ACCOUNT,
    AccountSettings,
    ApiSettings,
    CpuSetting,
    LeafnodeSettings,
    LogSettings,
    OperatorSettings,
    RouterSettings,
    Settings,
    StoreSettings,
)
from ._values import (
    Context,
    type_error,
    want_bool,
    want_duration,
    want_host_port,
    want_int,
    want_map,
    want_path,
    want_port,
    want_secret,
    want_size,
    want_str,
    want_str_list,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._errors import Pos
    from ._parser import Tree

__all__ = ["build_settings", "load", "loads"]

# nats-server's hard ceiling for max_payload (MAX_PAYLOAD_MAX_SIZE).
MAX_PAYLOAD_LIMIT = 64 * 1024 * 1024
# lame_duck_duration below this is refused by nats-server too.
MIN_LAME_DUCK_S = 30.0
# Default auth timeout without TLS (nats-server AUTH_TIMEOUT); with TLS it is
# the TLS timeout plus one second.
DEFAULT_AUTH_TIMEOUT_S = 2.0
DEFAULT_CLIENT_TLS_TIMEOUT_S = 2.0

# nats-server options we accept and ignore with a warning (DESIGN §6).
_UNSUPPORTED_TOP_LEVEL = frozenset(
    {
        "jetstream",
        "store_dir",
        "storedir",
        "gateway",
        "mqtt",
        "server_tags",
    }
)

# nats-server's spellings of the operator-mode keys (opts.go), by our name.
_OPERATOR_KEYS = {
    "operator": "operator",
    "operators": "operator",
    "root": "operator",
    "roots": "operator",
    "root_operator": "operator",
    "root_operators": "operator",
    "system_account": "system_account",
    "system": "system_account",
    "resolver": "resolver",
    "account_resolver": "resolver",
    "accounts_resolver": "resolver",
    "resolver_preload": "resolver_preload",
}
_MEMORY_RESOLVERS = ("MEM", "MEMORY")
# A JWT file written by nsc frames the JWT between lines of dashes
# (nats-io/jwt's userConfigRE); without a frame the whole file is the JWT.
_DECORATED_JWT = re.compile(r"-{3,}[^\n]*-{3,}\r?\n([\w\-.=]+)\r?\n-{3,}[^\n]*-{3,}")
# An inline JWT starts with the base64 of '{"' (nats-server's jwtPrefix).
_JWT_PREFIX = "eyJ"


def load(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file.

    Args:
        path: the config file. ``include`` is relative to its directory;
            other relative paths (TLS files, ``credentials``, ``pid_file``,
            ...) to the working directory, as nats-server resolves them.
        environ: variables for ``$NAME`` references (default: ``os.environ``).

    Returns:
        The settings, with ``source`` set to ``path``.

    Raises:
        ConfigError: the file cannot be read, has a syntax error, or describes
            invalid settings. Errors inside an included file name that file.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), 0, 0, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(file), 0, 0, "not UTF-8 text") from None
    return _load_text(text, str(file), file.parent, environ, file)


def loads(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    include_root: Path | None = None,
) -> Settings:
    """Validate config text (see ``load``); ``source`` names it in errors.

    ``base_dir`` (default: the current directory) anchors ``include``;
    other relative paths are relative to the working directory.
    ``Settings.source`` stays None.

    ``include_root`` is for a text from someone who may not read the host's
    files (``PUT /config``): ``include`` may then only name files inside that
    directory, and once an include or a ``$VARIABLE`` brought content in, an
    error keeps its file, line, column and reason but withholds the values
    it would quote (``ConfigError.without_values``).

    Raises:
        ConfigError: on a syntax error or invalid settings.
    """
    if include_root is None:
        return _load_text(text, source, base_dir, environ, None)
    sandbox = Sandbox(root=include_root)
    try:
        return _load_text(text, source, base_dir, environ, None, sandbox)
    except ConfigError as exc:
        if sandbox.foreign or exc.source != source:
            raise exc.without_values() from None
        raise


def _load_text(
    text: str,
    source: str,
    base_dir: Path | None,
    environ: Mapping[str, str] | None,
    file: Path | None,
    sandbox: Sandbox | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    base = Path(".") if base_dir is None else base_dir
    tree = parse_tree(text, source=source, base_dir=base, environ=env, sandbox=sandbox)
    return build_settings(tree, Context(environ=env), source=file)


def build_settings(tree: Tree, ctx: Context, *, source: Path | None = None) -> Settings:
    """Turn a parsed tree into ``Settings`` (see the module docstring)."""
    # nats-server reads 0 as "the default" for these limits (setBaselineOptions).
    defaults = router = RouterSettings()
    log = LogSettings()
    api = ApiSettings()
    store = StoreSettings()
    settings = Settings(source=source)
    later: dict[str, Entry] = {}
    for entry in tree.values():
        key = entry.key.lower()
        name = entry.key
        match key:
            case "server_name":
                server_name = want_str(entry, name)
                if not server_name or any(ch.isspace() for ch in server_name):
                    raise ConfigError.at(
                        entry.pos,
                        f"{name}: may not be empty or contain spaces, got {server_name!r}",
                    )
                router = replace(router, server_name=server_name)
            case "host" | "net":
                router = replace(router, host=want_str(entry, name))
            case "port":
                router = replace(router, port=want_port(entry, name))
            case "listen":
                host, port = want_host_port(entry, name)
                router = replace(router, host=host or router.host, port=port)
            case "websocket" | "ws":
                router = replace(router, websocket=build_websocket(entry, ctx))
                later["websocket"] = entry  # its auth is checked against the users below
            case "max_closed_clients":
                value = want_int(entry, name, minimum=0)
                router = replace(router, max_closed_clients=value or defaults.max_closed_clients)
            case "max_payload":
                router = replace(router, max_payload=_want_max_payload(entry, name))
                later[key] = entry
            case "max_control_line":
                value = want_size(entry, name)
                router = replace(router, max_control_line=value or defaults.max_control_line)
            case "max_pending":
                value = want_size(entry, name)
                router = replace(router, max_pending=value or defaults.max_pending)
                later[key] = entry
            case "max_connections" | "max_conn":
                router = replace(router, max_connections=want_int(entry, name, minimum=0))
            case "max_subscriptions" | "max_subs":
                router = replace(router, max_subscriptions=want_int(entry, name, minimum=0))
            case "ping_interval":
                router = replace(router, ping_interval_s=want_duration(entry, name, positive=True))
            case "ping_max":
                value = want_int(entry, name, minimum=0)
                router = replace(router, ping_max=value or defaults.ping_max)
            case "write_deadline":
                router = replace(router, write_deadline_s=want_duration(entry, name, positive=True))
            case "lame_duck_duration":
                lame_duck_s = want_duration(entry, name)
                if lame_duck_s < MIN_LAME_DUCK_S:
                    raise ConfigError.at(
                        entry.pos,
                        f"{name}: the minimum is 30 seconds (as in nats-server), "
                        f"got {entry.value.data!r}",
                    )
                router = replace(router, lame_duck_duration_s=lame_duck_s)
            case "lame_duck_grace_period":
                router = replace(router, lame_duck_grace_period_s=want_duration(entry, name))
            case "debug":
                log = replace(log, debug=want_bool(entry, name))
            case "trace":
                log = replace(log, trace=want_bool(entry, name))
            case "logtime":
                log = replace(log, logtime=want_bool(entry, name))
            case "log_file" | "logfile":
                log = replace(log, log_file=want_path(entry, name))
            case "pid_file" | "pidfile":
                log = replace(log, pid_file=want_path(entry, name))
            case "ports_file_dir":
                settings = replace(settings, ports_file_dir=want_path(entry, name))
            case "run_dir":
                # "" is none configured, as Settings' default (a private one under run).
                settings = replace(settings, run_dir=want_path(entry, name) or "")
            case "data_path_cpu":
                settings = replace(settings, data_path_cpu=_want_cpu_setting(entry, name))
            case "http":
                host, port = want_host_port(entry, name)
                api = replace(api, host=host or api.host, port=port)
            case "http_port" | "monitor_port":
                api = replace(api, port=want_port(entry, name))
            case "api":
                api = _build_api(entry, api, ctx)
            case "store":
                store = replace(build_store(entry, ctx), takeover_after_s=store.takeover_after_s)
            case "buffer":
                store = replace(store, takeover_after_s=build_takeover(entry, ctx))
            case "cluster":
                settings = replace(settings, cluster=build_cluster(entry, ctx))
            case "allow_non_tls":
                later[key] = entry
            case "authorization" | "accounts" | "no_auth_user" | "tls" | "leafnodes" | "leaf":
                later["leafnodes" if key == "leaf" else key] = entry
            case _ if key in _OPERATOR_KEYS:
                later[_OPERATOR_KEYS[key]] = entry
            case _ if key in _UNSUPPORTED_TOP_LEVEL:
                ctx.ignored(entry, name)
            case _:
                ctx.unknown(entry, name)

    if router.max_payload > router.max_pending:
        where = later.get("max_payload") or later["max_pending"]
        raise ConfigError.at(
            where.pos,
            f"max_payload ({router.max_payload}) cannot be higher than "
            f"max_pending ({router.max_pending})",
        )
    accounts: list[AccountSettings] = []
    if "accounts" in later:
        accounts = build_accounts(later["accounts"], ctx)
    router = replace(router, accounts=tuple(accounts))
    auth = _build_auth(later.get("authorization"), accounts, ctx)
    if "operator" in later:
        auth = _operator_mode_auth(later, accounts, auth, ctx)
        router = replace(router, operator=_build_operator(later, ctx))
    else:
        if "resolver" in later:
            _want_memory_resolver(later["resolver"])
        for key in ("system_account", "resolver", "resolver_preload"):
            if key in later:
                ctx.ignored(later[key], later[key].key, "only used with an operator")
    if auth is not None:
        router = replace(
            router,
            users=tuple(auth.users),
            token=auth.token,
            default_permissions=auth.permissions,
        )
    if "tls" in later:
        tls = build_tls(
            later["tls"], "tls", ctx, default_timeout_s=DEFAULT_CLIENT_TLS_TIMEOUT_S, server=True
        )
        if "allow_non_tls" in later:
            allow = want_bool(later["allow_non_tls"], later["allow_non_tls"].key)
            tls = replace(tls, allow_non_tls=tls.allow_non_tls or allow)
        router = replace(router, tls=tls, auth_timeout_s=tls.timeout_s + 1.0)
    elif "allow_non_tls" in later:
        # Checked, and nothing to allow without a tls block.
        want_bool(later["allow_non_tls"], later["allow_non_tls"].key)
    if auth is not None and auth.timeout_s:  # 0 keeps the default, as in nats-server
        router = replace(router, auth_timeout_s=auth.timeout_s)
    if "no_auth_user" in later:
        router = replace(router, no_auth_user=_no_auth_user(later["no_auth_user"], auth, accounts))
    if router.websocket is not None:
        _check_websocket_auth(later["websocket"], router, auth, accounts)
    leafnodes = LeafnodeSettings()
    if "leafnodes" in later:
        known = {acc.name for acc in accounts}
        if router.operator is not None:
            known.update(key for key, _ in router.operator.preload)
        leafnodes = build_leafnodes(
            later["leafnodes"], ctx, known, operator=router.operator is not None
        )
    return replace(
        settings,
        router=router,
        leafnodes=leafnodes,
        store=store,
        api=api,
        log=log,
        warnings=tuple(ctx.warnings),
    )


def _want_max_payload(entry: Entry, name: str) -> int:
    value = want_size(entry, name) or RouterSettings().max_payload
    if value > MAX_PAYLOAD_LIMIT:
        raise ConfigError.at(
            entry.pos, f"{name}: {value} is larger than the 64 MiB limit ({MAX_PAYLOAD_LIMIT})"
        )
    return value


def _build_auth(
    entry: Entry | None, accounts: list[AccountSettings], ctx: Context
) -> Authorization | None:
    """``authorization`` plus the cross-checks with ``accounts`` (nats-server's rules)."""
    if entry is None:
        return None
    auth = build_authorization(entry, ctx)
    account_users = [user for acc in accounts for user in acc.users]
    if account_users and auth.single_user:
        raise ConfigError.at(
            entry.pos, "authorization: cannot have a single user/password and accounts"
        )
    if account_users and auth.token:
        raise ConfigError.at(
            entry.pos, "authorization: cannot have a token and accounts with users"
        )
    known = {acc.name for acc in accounts}
    for acc_name, pos in auth.account_refs:
        if acc_name != DEFAULT_ACCOUNT and acc_name not in known:
            raise ConfigError.at(pos, f"authorization: unknown account {acc_name!r}")
    seen: set[str] = set()
    for user in [*auth.users, *account_users]:
        ident = user.nkey or user.user or ""
        if ident in seen:
            raise ConfigError.at(entry.pos, f"duplicate user {ident!r}")
        seen.add(ident)
    return auth


def _no_auth_user(entry: Entry, auth: Authorization | None, accounts: list[AccountSettings]) -> str:
    name = want_str(entry, entry.key)
    users = [*(auth.users if auth is not None else ()), *(u for a in accounts for u in a.users)]
    if not any(name in (user.user, user.nkey) for user in users):
        raise ConfigError.at(entry.pos, f"no_auth_user: {name!r} is not a configured user")
    return name


def _check_websocket_auth(
    entry: Entry,
    router: RouterSettings,
    auth: Authorization | None,
    accounts: list[AccountSettings],
) -> None:
    """The websocket block's auth against the users and operator mode (nats-server's rules)."""
    ws = router.websocket
    assert ws is not None
    account_users = [u for a in accounts for u in a.users]
    has_users = bool(auth is not None and auth.has_users_list) or bool(account_users)
    check_websocket_auth(entry, ws, has_users=has_users, operator=router.operator is not None)
    if ws.no_auth_user:
        users = [*(auth.users if auth is not None else ()), *account_users]
        if not any(ws.no_auth_user in (user.user, user.nkey) for user in users):
            raise ConfigError.at(
                entry.pos, f"{entry.key}.no_auth_user: {ws.no_auth_user!r} is not a configured user"
            )


# -- operator mode -------------------------------------------------------------------


def _operator_mode_auth(
    later: Mapping[str, Entry],
    accounts: list[AccountSettings],
    auth: Authorization | None,
    ctx: Context,
) -> Authorization | None:
    """nats-server's ``validateTrustedOperators`` rules for auth options next to ``operator``."""
    if accounts:
        raise ConfigError.at(
            later["accounts"].pos,
            "accounts: operator mode does not allow accounts to be configured directly "
            "(preload account JWTs with resolver_preload)",
        )
    if "no_auth_user" in later:
        raise ConfigError.at(
            later["no_auth_user"].pos, "no_auth_user is not compatible with operator mode"
        )
    if auth is None:
        return None
    if auth.users and not auth.single_user:
        raise ConfigError.at(
            auth.pos,
            "authorization: operator mode does not allow users to be configured directly "
            "(issue user JWTs instead)",
        )
    if auth.single_user or auth.token or auth.permissions is not None:
        # nats-server starts with these, then refuses every client without a user JWT.
        pos = auth.pos
        ctx.warnings.append(
            f"{pos.source}:{pos.line}:{pos.column}: authorization: user, password, token and "
            "permissions are ignored in operator mode (clients must present a user JWT)"
        )
        return replace(auth, users=[], single_user=False, token=None, permissions=None)
    return auth


def _build_operator(later: Mapping[str, Entry], ctx: Context) -> OperatorSettings:
    """``operator`` with ``resolver: MEMORY``, ``resolver_preload`` and ``system_account``."""
    op_entry = later["operator"]
    operators = [
        _operator_jwt(text, pos, op_entry, ctx)
        for text, pos in want_str_list(op_entry, op_entry.key)
    ]
    if not operators:
        raise ConfigError.at(op_entry.pos, f"{op_entry.key}: no operator JWT given")
    resolver_entry = later.get("resolver")
    if resolver_entry is None:
        raise ConfigError.at(
            op_entry.pos,
            f"{op_entry.key}: operator mode needs 'resolver: MEMORY' "
            "(the only account resolver leafnode supports)",
        )
    resolver = _want_memory_resolver(resolver_entry)
    trusted = {key for _, claims in operators for key in operator_signing_keys(claims)}
    preload = _build_preload(later.get("resolver_preload"), trusted, ctx)
    system, system_pos = _system_account(later.get("system_account"), operators, op_entry)
    if system is not None and system not in dict(preload):
        # nats-server: "error resolving system account: account missing".
        raise ConfigError.at(
            system_pos, f"system_account: account {system} is not in resolver_preload"
        )
    return OperatorSettings(
        operator_jwts=tuple(token for token, _ in operators),
        system_account=system,
        resolver=resolver,
        preload=preload,
    )


def _operator_jwt(text: str, pos: Pos, entry: Entry, ctx: Context) -> tuple[str, DecodedJwt]:
    """One operator JWT, inline or read from a (possibly nsc-decorated) file."""
    name = entry.key
    token = text.strip()
    if not token.startswith(_JWT_PREFIX):
        path = ctx.file_path(Entry(name, pos, Value(text, pos)), name)
        try:
            contents = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError.at(pos, f"{name}: cannot read {text!r}: {exc}") from None
        framed = _DECORATED_JWT.search(contents)
        token = framed.group(1) if framed else contents.strip()
    try:
        claims = decode_jwt(token, "operator")
    except JwtError as exc:
        raise ConfigError.at(pos, f"{name}: invalid operator JWT: {exc}") from None
    if claims.issuer != claims.subject and claims.issuer not in operator_signing_keys(claims):
        raise ConfigError.at(
            pos, f"{name}: the operator JWT is not signed by the operator or its signing keys"
        )
    return token, claims


def _want_memory_resolver(entry: Entry) -> str:
    name = entry.key
    data = entry.value.data
    if not isinstance(data, str) or data.strip().upper() not in _MEMORY_RESOLVERS:
        shown = repr(data) if isinstance(data, str) else "a block"
        raise ConfigError.at(
            entry.pos,
            f"{name}: only MEMORY is supported by leafnode (preloaded accounts), got {shown}",
        )
    return "MEMORY"


def _is_account_key(key: str) -> bool:
    try:
        nkey_verify_key(key, nkeys.PREFIX_BYTE_ACCOUNT)
    except JwtError:
        return False
    return True


def _build_preload(
    entry: Entry | None, trusted: set[str], ctx: Context
) -> tuple[tuple[str, str], ...]:
    """``resolver_preload { ACCOUNT_KEY: account JWT }``, each JWT verified."""
    if entry is None:
        return ()
    name = entry.key
    now = time.time()
    preload: list[tuple[str, str]] = []
    for item in want_map(entry, name).values():
        if item.used:
            continue  # only there to be a $variable
        key = item.key
        sub = f"{name}.{key}"
        if not _is_account_key(key):
            raise ConfigError.at(item.pos, f"{name}: {key!r} is not a valid account public key")
        token = want_str(item, sub)
        try:
            account = decode_jwt(token, "account")
        except JwtError as exc:
            raise ConfigError.at(item.pos, f"{sub}: invalid account JWT: {exc}") from None
        if account.subject != key:
            raise ConfigError.at(item.pos, f"{sub}: the JWT is for account {account.subject}")
        if account.issuer not in trusted:
            raise ConfigError.at(
                item.pos,
                f"{sub}: the account JWT is not signed by the operator or one of its signing keys",
            )
        problem = account.time_problem(now)
        if problem is not None:
            # nats-server warns too ("has validation issues") and refuses its users.
            pos = item.pos
            ctx.warnings.append(
                f"{pos.source}:{pos.line}:{pos.column}: {sub}: the account JWT is {problem}; "
                "its users will be refused"
            )
        preload.append((key, token))
    return tuple(preload)


def _system_account(
    entry: Entry | None, operators: list[tuple[str, DecodedJwt]], op_entry: Entry
) -> tuple[str | None, Pos]:
    """The system account: from the config, else from the only operator JWT (nats-server)."""
    in_jwts = [claims.nats.get("system_account") for _, claims in operators]
    named = [key for key in in_jwts if isinstance(key, str) and key]
    if entry is None:
        return (named[0] if len(operators) == 1 and named else None), op_entry.pos
    name = entry.key
    value = want_str(entry, name)
    if not _is_account_key(value):
        raise ConfigError.at(entry.pos, f"{name}: {value!r} is not a valid account public key")
    if named and value not in named:
        raise ConfigError.at(
            entry.pos, f"{name}: system_account in config and operator JWT must be identical"
        )
    return value, entry.pos


def _build_api(entry: Entry, api: ApiSettings, ctx: Context) -> ApiSettings:
    """``api { listen, host, port, token }``: where the control plane listens."""
    for item in want_map(entry, entry.key).values():
        sub = f"api.{item.key}"
        match item.key.lower():
            case "listen":
                host, port = want_host_port(item, sub)
                api = replace(api, host=host or api.host, port=port)
            case "host":
                api = replace(api, host=want_str(item, sub))
            case "port":
                api = replace(api, port=want_port(item, sub))
            case "token":
                token = want_secret(item, sub)
                if not token:
                    raise ConfigError.at(item.pos, f"{sub}: may not be empty")
                api = replace(api, token=token)
            case _:
                ctx.unknown(item, sub)
    return api


def _want_cpu_setting(entry: Entry, name: str) -> CpuSetting:
    """``data_path_cpu: auto | off | <cpu number>`` (``false`` is ``off``)."""
    data = entry.value.data
    if data is False:
        return "off"
    if isinstance(data, int) and not isinstance(data, bool):
        return want_int(entry, name, minimum=0)
    if isinstance(data, str):
        text = data.lower()
        if text == "auto":
            return "auto"
        if text == "off":
            return "off"
    raise type_error(entry.pos, name, "auto, off or a CPU number", entry.value)
