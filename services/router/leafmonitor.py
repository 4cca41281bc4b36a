"""The accepted leafs in nats-server's monitoring shapes (issue 15 point 5).

``/leafz`` (leafnode-protocol.md §9) lists each leaf connection as a hub
lists it: ``is_spoke`` false, ``subscriptions_list`` what the leaf declared
with ``LS+`` (queue keys as the bare subject). The api merges these with the
uplink's remotes (``is_spoke`` true). ``/varz``'s ``leaf`` block gets the
leaf port's ``host``, ``port``, ``auth_timeout``, ``tls_timeout``, and
``tls_required``/``tls_verify`` when true, as nats-server omits them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from leafnode.ipc import rfc3339_us
from leafnode.monitoring import query_flag

from .leafpolicy import DEFAULT_AUTH_TIMEOUT_S

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .leafconn import LeafAcceptor, LeafConnection

__all__ = ["accepted_count", "leaf_varz", "leafz"]

# nats-server's TLS_TIMEOUT, what /varz shows without a tls block.
_TLS_TIMEOUT_S = 2.0


def _rtt(seconds: float) -> str:
    if seconds <= 0:
        return "0s"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds:.3g}s"


def _entry(leaf: LeafConnection, subs: bool) -> dict[str, object]:
    account = leaf.account.name if leaf.account is not None else ""
    entry: dict[str, object] = {
        "id": leaf.cid,
        "name": leaf.name,
        "is_spoke": False,
        "account": account,
        "ip": leaf.host,
        "port": leaf.port,
        "rtt": _rtt(leaf.rtt_s),
        "in_msgs": leaf.in_msgs,
        "out_msgs": leaf.out_msgs,
        "in_bytes": leaf.in_bytes,
        "out_bytes": leaf.out_bytes,
        "subscriptions": len(leaf.own),
    }
    if subs:
        entry["subscriptions_list"] = sorted({subject.decode() for subject, _q in leaf.own})
    entry["compression"] = "off"
    return entry


def leafz(
    acceptor: LeafAcceptor | None, server_id: str, query: Mapping[str, str]
) -> dict[str, object]:
    """nats-server's ``/leafz`` for the leafs we accepted (``subs``, ``acc`` as its query)."""
    subs = query_flag(query, "subs")
    account = query.get("acc") or None
    leafs: list[dict[str, object]] = []
    if acceptor is not None:
        for leaf in acceptor.leafs.values():
            if leaf.account is None or (account is not None and leaf.account.name != account):
                continue  # not bound yet, or another account
            leafs.append(_entry(leaf, subs))
    return {
        "server_id": server_id,
        "now": rfc3339_us(time.time_ns() // 1000),
        "leafnodes": len(leafs),
        "leafs": leafs,
    }


def leaf_varz(acceptor: LeafAcceptor | None) -> dict[str, object]:
    """The leaf port's fields of ``/varz``'s ``leaf`` block (none without a port)."""
    if acceptor is None:
        return {}
    accept = acceptor.accept
    tls = accept.tls
    auth_timeout = accept.auth_timeout_s
    if auth_timeout is None:
        auth_timeout = tls.timeout_s + 1 if tls is not None else DEFAULT_AUTH_TIMEOUT_S
    fields: dict[str, object] = {
        "host": accept.host,
        "port": acceptor.port,
        "auth_timeout": auth_timeout,
        "tls_timeout": tls.timeout_s if tls is not None else _TLS_TIMEOUT_S,
    }
    # omitempty in nats-server's LeafNodeOptsVarz (2.9.10 and 2.15.1 alike).
    if tls is not None:
        fields["tls_required"] = True
        if tls.verify:
            fields["tls_verify"] = True
    return fields


def accepted_count(acceptor: LeafAcceptor | None, account: str | None = None) -> int:
    """Bound leaf connections (``/varz`` ``leafnodes``), of one ``account`` if given."""
    if acceptor is None:
        return 0
    return sum(
        1
        for leaf in acceptor.leafs.values()
        if leaf.account is not None and (account is None or leaf.account.name == account)
    )
