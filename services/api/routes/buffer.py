"""``/buffer``: the per-remote backlog, its messages, and purging (DESIGN §4, §7).

The store owns the numbers (``stats``, ``read``, ``purge`` over
``store.sock``); the uplink adds link state. When no remote buffers, the
store is not expected to run and these endpoints answer with an empty
buffer instead of 503.

On a shared PostgreSQL store (DESIGN §9) the messages and the purge cover
this node's own backlog and every backlog it took over from a dead node:
each message names its ``backlog_id``, and the purge counts per backlog. A
purge while the node's own backlog waits for its lease (seconds after a
store restart), or of a backlog another node took meanwhile, is refused
with 409 and changes nothing.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated

from fastapi import APIRouter, Query

from leafnode.ipc import MAX_READ_LIMIT, decode_read_reply, msg_id, rfc3339_us

from ..deps import Authorized, State, expects_store
from ..filters import check_subject, parse_time_us
from ..links import ServiceRefusedError, ServiceUnavailableError
from ..names import check_remote
from ..schemas import (
    Backlog,
    BufferMessage,
    BufferMessages,
    BufferRemote,
    BufferView,
    HeldBacklog,
    HeldInRouter,
    Purged,
    StoreDatabase,
    Totals,
)
from ..site import collect

__all__ = ["router"]

router = APIRouter(tags=["buffer"], dependencies=[Authorized])

RemoteName = Annotated[str | None, Query(max_length=256, description="a remote's name")]
Subject = Annotated[
    str | None, Query(max_length=4096, description="a subject filter (wildcards allowed)")
]
Time = Annotated[
    str | None,
    Query(max_length=64, description="RFC 3339, Unix seconds, or a duration ago (1h)"),
]
DEFAULT_PAGE = 100
_MSG_ID = b"\r\nnats-msg-id:"


def _client_msg_id(headers: bytes) -> str | None:
    """The ``Nats-Msg-Id`` a client set itself (kept when the message is sent)."""
    start = headers.lower().find(_MSG_ID)
    if start < 0:
        return None
    end = headers.find(b"\r\n", start + 1)
    value = headers[start + len(_MSG_ID) : end if end >= 0 else None]
    return value.strip().decode("utf-8", "replace")


@router.get("/buffer", summary="Backlog and drops per remote")
async def get_buffer(state: State) -> BufferView:
    view = await collect(state)
    stats = view.stats
    if isinstance(stats, ServiceUnavailableError | ServiceRefusedError):
        if expects_store(state.settings):
            raise stats
        stats = None
    reason = view.held_reason()
    remotes = [
        BufferRemote(
            name=r.name,
            account=r.account,
            urls=r.urls,
            connected=r.connected,
            backlog=Backlog.model_validate(r.backlog_summary()),
            held_in_router=HeldInRouter.model_validate(r.held_summary(reason)),
            refusing_new=r.refusing,
            dropped=r.buffer_drops(),
            node=r.node,
            backlog_id=r.backlog_id,
            backlog_lease=r.backlog_lease,
            held=[HeldBacklog.model_validate(h) for h in r.held_backlogs()],
        )
        for r in view.remotes()
        if r.buffered
    ]
    database = view.database() or {}
    up = database.get("up")
    error = database.get("error")
    total = stats.get("total") if isinstance(stats, dict) else None
    if isinstance(total, dict):
        totals = Totals(msgs=int(total.get("msgs") or 0), bytes=int(total.get("bytes") or 0))
    else:
        totals = Totals(
            msgs=sum(r.backlog.msgs for r in remotes), bytes=sum(r.backlog.bytes for r in remotes)
        )
    return BufferView(
        remotes=remotes,
        total=totals,
        database=StoreDatabase(
            up=up if isinstance(up, bool) else None,
            error=error if isinstance(error, str) else None,
        ),
    )


@router.get("/buffer/messages", summary="Buffered messages, oldest first")
async def get_messages(
    state: State,
    remote: RemoteName = None,
    subject: Subject = None,
    since: Time = None,
    until: Time = None,
    limit: Annotated[int, Query(ge=1, le=MAX_READ_LIMIT)] = DEFAULT_PAGE,
    after: Annotated[int, Query(ge=0, le=2**62, description="continue after this seq")] = 0,
    retained: Annotated[
        bool, Query(description="also list retained (already delivered) messages")
    ] = False,
) -> BufferMessages:
    await check_remote(state, remote, stored=True)
    now = time.time()
    # ``held``: this node's backlog and every one it took over, in seq order.
    fields: dict[str, object] = {"after": after, "limit": limit, "acked": retained, "held": True}
    if remote is not None:
        fields["remote"] = remote
    if check_subject(subject) is not None:
        fields["subjects"] = [subject]
    since_us = parse_time_us(since, now=now, name="since")
    until_us = parse_time_us(until, now=now, name="until")
    if since_us is not None:
        fields["since_us"] = since_us
    if until_us is not None:
        fields["until_us"] = until_us
    try:
        frame = await state.links.request("store", "read", fields)
        pong = await state.links.request("store", "ping") if frame.fields.get("msgs") else None
    except ServiceUnavailableError:
        if expects_store(state.settings):
            raise
        return BufferMessages(messages=[], next=after, more=False)
    reply = decode_read_reply(frame)
    listed = frame.fields.get("backlogs")
    backlogs = (
        [b if isinstance(b, str) else None for b in listed]
        if isinstance(listed, list) and len(listed) == len(reply.msgs)
        else [None] * len(reply.msgs)
    )
    leaf_id = str(pong.fields.get("leaf_id", "")) if pong is not None else ""
    messages = [
        BufferMessage(
            seq=m.seq,
            remote=m.remote,
            subject=m.subject,
            reply=m.reply,
            received_at=rfc3339_us(m.received_at_us),
            acked_at=rfc3339_us(m.acked_at_us) if m.acked_at_us is not None else None,
            size=len(m.subject) + len(m.reply or "") + len(m.data),
            headers=m.headers.decode("utf-8", "replace") if m.hdr_len else None,
            msg_id=_client_msg_id(m.headers) or msg_id(leaf_id, m.seq),
            payload=base64.b64encode(m.payload).decode("ascii"),
            backlog_id=backlog,
        )
        for m, backlog in zip(reply.msgs, backlogs, strict=True)
    ]
    return BufferMessages(messages=messages, next=reply.next, more=reply.more)


@router.delete(
    "/buffer",
    summary="Purge buffered messages (no filter: everything)",
    response_model_exclude_none=True,
)
async def purge(
    state: State, remote: RemoteName = None, subject: Subject = None, until: Time = None
) -> Purged:
    await check_remote(state, remote, stored=True)
    fields: dict[str, object] = {}
    if remote is not None:
        fields["remote"] = remote
    if check_subject(subject) is not None:
        fields["subject"] = subject
    until_us = parse_time_us(until, now=time.time(), name="until")
    if until_us is not None:
        fields["until_us"] = until_us
    try:
        frame = await state.links.request("store", "purge", fields)
    except ServiceUnavailableError:
        if expects_store(state.settings):
            raise
        return Purged(purged=0)
    purged = frame.fields.get("purged")
    per = frame.fields.get("backlogs")
    backlogs = {
        str(b): n for b, n in (per.items() if isinstance(per, dict) else ()) if isinstance(n, int)
    }
    return Purged(
        purged=purged if isinstance(purged, int) else 0,
        # SQLite: one backlog, "" (the answer stays DESIGN §7's {"purged": n}).
        backlogs=backlogs if set(backlogs) - {""} else None,
    )
