"""Message tracing as nats-server 2.11+ does it (its ``msgtrace.go``).

A client publishes with a ``Nats-Trace-Dest: <subject>`` header; the server
routes the message as usual and then publishes, to that subject in the
publisher's account, one JSON ``MsgTraceEvent``: the server, the request's
headers and size, and the events: ``in`` (ingress: the publishing connection,
account and subject), then one ``eg`` (egress) per delivery, naming the
connection and the subscription (and queue), or why it was not delivered.
With ``Nats-Trace-Only: true`` (``1``, ``on``) nothing is delivered: the
event says where the message would have gone.

Theory of operation: only an ``HPUB`` whose header block contains
``Nats-Trace-`` comes here (``ClientConnection._dispatch``: one ``find`` in
the header, for HPUBs only), so plain PUBs and other HPUBs keep the routing
hot path (``routing.route_local``) untouched. A traced message is routed by
``route_traced``, which makes route_local's decisions (echo, deny filters,
one member per queue group, the hub, buffering) while recording each one.

Towards the hub, as nats-server on a leaf link (``deliverMsg``,
``msgTraceSupport``): the message is forwarded with ``Nats-Trace-Hop: 1``
added and the hub egress (kind leafnode, the hub's name, hop ``1``) recorded.
A hub whose INFO ``proto`` says it understands tracing (3, nats-server 2.11+;
the uplink reports it over the data link) publishes its own event, and gets
even a trace-only message: it does not deliver that one either, only traces
it. An older hub (2.9/2.10: proto 1) would deliver a trace-only message, so
it is not forwarded and the egress says why; a message that is delivered
there gets an egress error saying that no event will come from the hub. A
trace-only message is never buffered.

Towards the cluster's other nodes the message goes as a local publish goes
(``routing._route_cluster``), unless it is trace-only; no route egress is
recorded and no ``Nats-Trace-Hop`` added.

Not done: ``traceparent`` (W3C) headers with an account trace destination,
the ``Accept-Encoding`` compression of events, and route egress events.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from leafnode.proto import is_valid_literal_subject

from .permissions import publish_violation_text
from .routing import _deliver, _pick, _route_cluster

if TYPE_CHECKING:
    from .interfaces import Client
    from .routing import Account, Delivery, Subscription

__all__ = ["TRACE_MARK", "Trace", "begin", "parse_trace_headers", "route_traced"]

log = logging.getLogger("leafnode.router")

# What an HPUB's header block must contain to take the traced path: every
# trace header starts so (nats-server matches Nats-Trace-Dest case-sensitively).
TRACE_MARK: Final = b"Nats-Trace-"
_DEST: Final = b"Nats-Trace-Dest"
_ONLY: Final = b"Nats-Trace-Only"
_ORIGIN_ACCOUNT: Final = b"Nats-Trace-Origin-Account"
_HOP_LINE: Final = b"Nats-Trace-Hop: 1\r\n"
# nats-server's MsgTraceDestDisabled: a Nats-Trace-Dest with this value is no trace.
_DEST_DISABLED: Final = b"trace disabled"
_STATUS_LINE: Final = b"NATS/1.0\r\n"
_TRUE_VALUES: Final = frozenset({"1", "true", "on"})

# nats-server's connection kinds (server/const.go) in events.
KIND_CLIENT: Final = 0
KIND_SYSTEM: Final = 3
KIND_LEAF: Final = 4

# nats-server's egress errors (msgtrace.go), word for word.
ERR_NO_ECHO: Final = "Not delivered because of no echo"
ERR_SUB_DENY: Final = "Not delivered because subscription denies this subject"
ERR_ONLY_NO_SUPPORT: Final = "Not delivered because remote does not support message tracing"
ERR_NO_SUPPORT: Final = (
    "Message delivered but remote does not support message tracing"
    " so no trace event generated from there"
)

# nats-server's MsgTraceProto: a remote whose INFO proto is at least this traces.
MSG_TRACE_PROTO: Final = 3


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def parse_trace_headers(header: bytes) -> dict[str, list[str]] | None:
    """The header block as nats-server's map (case kept), or None when not traced.

    As ``genHeaderMapIfTraceHeadersPresent``: the block must start with the
    bare ``NATS/1.0`` line; keys and values are taken as sent (values trimmed
    of blanks); the block counts only with a ``Nats-Trace-Dest`` other than
    ``trace disabled``.
    """
    if not header.startswith(_STATUS_LINE):
        return None
    found = False
    pairs: list[tuple[bytes, bytes]] = []
    for line in header[len(_STATUS_LINE) :].split(b"\r\n"):
        key, sep, value = line.partition(b":")
        if not sep:
            break
        value = value.strip(b" \t")
        if not key or not value:
            continue
        if not found and key == _DEST:
            if value == _DEST_DISABLED:
                return None
            found = True
        pairs.append((key, value))
    if not found:
        return None
    headers: dict[str, list[str]] = {}
    for key, value in pairs:
        headers.setdefault(key.decode(errors="replace"), []).append(value.decode(errors="replace"))
    return headers


class Trace:
    """One traced message: its ingress and the egress events routing adds."""

    __slots__ = ("dest", "event", "events", "only")

    def __init__(
        self,
        client: Client,
        subject: bytes,
        headers: dict[str, list[str]],
        size: int,
        dest: bytes,
        only: bool,
    ) -> None:
        self.dest = dest
        self.only = only
        ingress: dict[str, object] = {
            "type": "in",
            "ts": _now(),
            "kind": KIND_CLIENT,
            "cid": client.cid,
        }
        if client.name:
            ingress["name"] = client.name
        ingress.update(acc=client.account.name, subj=subject.decode(errors="replace"))
        self.events: list[dict[str, object]] = [ingress]
        request: dict[str, object] = {"header": headers}
        if size:
            request["msgsize"] = size
        self.event: dict[str, object] = {"request": request}

    def egress(self, sub: Subscription, error: str = "") -> None:
        client = sub.client
        cid = getattr(client, "cid", None)
        entry: dict[str, object] = {
            "type": "eg",
            "ts": _now(),
            "kind": KIND_CLIENT if cid is not None else KIND_SYSTEM,
            "cid": cid or 0,
        }
        name = getattr(client, "name", "")
        if name:
            entry["name"] = name
        entry["sub"] = sub.subject.decode(errors="replace")
        if sub.queue:
            entry["queue"] = sub.queue.decode(errors="replace")
        if error:
            entry["error"] = error
        self.events.append(entry)

    def hub_egress(self, hub_name: str, error: str = "") -> None:
        """The leaf link's egress; hop 1 whether or not the message went (as nats-server)."""
        entry: dict[str, object] = {"type": "eg", "ts": _now(), "kind": KIND_LEAF, "cid": 0}
        if hub_name:
            entry["name"] = hub_name
        entry["hop"] = "1"
        self.event["hops"] = 1
        if error:
            entry["error"] = error
        self.events.append(entry)

    def send(self, client: Client) -> None:
        """Publish the event to its destination, in the publisher's account."""
        services = client.server.services
        body = {"server": services.server_info(), **self.event, "events": self.events}
        payload = json.dumps(body, separators=(",", ":")).encode()
        services.publish(client.account, self.dest, payload)


def begin(client: Client, subject: bytes, hdr_len: int, data: bytes) -> Trace | bool:
    """Start tracing an HPUB whose header mentions ``Nats-Trace-``.

    Returns the ``Trace`` to route with (``route_traced``) and send; or True
    when the message is not traced after all (route it as usual); or False
    when it must be dropped: a trace-only message that cannot be traced, or a
    destination the client may not publish to (``-ERR`` sent), as nats-server.
    """
    headers = parse_trace_headers(data[:hdr_len])
    if headers is None:
        return True
    only = headers.get(_ONLY.decode(), [""])[0].lower() in _TRUE_VALUES
    if _ORIGIN_ACCOUNT.decode() in headers:
        # From a pre-2.11 server's trace scheme: nats-server turns tracing off.
        log.error("%s - Message tracing disabled because of header %r", client, _ORIGIN_ACCOUNT)
        return not only
    dest = headers[_DEST.decode()][0].encode()
    if not is_valid_literal_subject(dest):
        log.error("%s - Destination %r is not valid, won't be able to trace events", client, dest)
        return not only
    perms = client.perms
    if perms is not None and not perms.can_publish(dest):
        log.error("%s - Publish Violation - Subject %r", client, dest.decode(errors="replace"))
        client.send_error(publish_violation_text(dest))
        return False
    return Trace(client, subject, headers, len(data), dest, only)


def route_traced(
    origin: Delivery,
    account: Account,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
    trace: Trace,
) -> int:
    """``routing.route_local``'s decisions, each recorded in ``trace``."""
    only = trace.only
    delivered = 0
    result = account.sublist.match(subject)
    for sub in result.psubs:
        client = sub.client
        if client is origin and not origin.echo:
            trace.egress(sub, ERR_NO_ECHO)
            continue
        if sub.deliver_filter is not None and not sub.deliver_filter(subject):
            trace.egress(sub, ERR_SUB_DENY)
            continue
        trace.egress(sub)
        delivered += 1
        if not only:
            _deliver(sub, subject, reply, hdr_len, data)
    local_groups: set[bytes] | None = None
    if result.qsubs:
        local_groups = set()
        for members in result.qsubs:
            chosen = _pick(members, origin, subject)
            if chosen is not None:
                local_groups.add(members[0].queue or b"")
                trace.egress(chosen)
                delivered += 1
                if not only:
                    _deliver(chosen, subject, reply, hdr_len, data)
    if not only and account.routes.entries:
        # The cluster's other nodes (not traced here: a peer that traces
        # publishes its own event, as the first hop it then is).
        done = frozenset(local_groups or ())
        served, sent = _route_cluster(origin, account, (), subject, reply, hdr_len, data, done)
        delivered += sent
        local_groups = (local_groups or set()) | served
    if not only and account.leafs is not None:
        # Downstream leafs get the message, untraced (no egress event of theirs).
        if local_groups is None:
            local_groups = set()
        delivered += account.leafs.route(origin, subject, reply, hdr_len, data, local_groups, None)
    sink = account.hub_sink
    if sink is not None and account.hub.entries:
        hub = account.hub.sublist.match(subject)
        queues = tuple(
            name
            for group in hub.qsubs
            if (name := group[0].queue or b"")
            and (local_groups is None or name not in local_groups)
        )
        if hub.psubs or queues:
            traces = account.hub.proto >= MSG_TRACE_PROTO
            if only and not traces:
                trace.hub_egress(account.hub.server_name, ERR_ONLY_NO_SUPPORT)
            else:
                # The hop header, as nats-server sets it on a leaf link.
                hopped = data[: hdr_len - 2] + _HOP_LINE + data[hdr_len - 2 :]
                sink.write_msg(
                    account.name_bytes,
                    subject,
                    reply,
                    queues,
                    hdr_len + len(_HOP_LINE),
                    hopped,
                )
                trace.hub_egress(account.hub.server_name, "" if traces else ERR_NO_SUPPORT)
                delivered += 1
    rules = account.buffer_rules
    if not only and rules is not None and account.store_link is not None:
        buffered = rules.match(subject).psubs
        if buffered:
            got = tuple(q.decode() for q in local_groups) if local_groups else ()
            account.store_link.append(origin, buffered, subject, reply, hdr_len, data, got)
            delivered += 1
    return delivered
