"""``/replay``: drain progress, pause/resume, and redrive (DESIGN §4, §7).

Progress combines the store's backlog (what remains, the same ``backlog``
object as ``/buffer``) with the uplink's drain state, counters, rate and
current replay (the ``buffer`` object of ``uplink.ctl`` ``status``); the ETA
is the deliverable backlog / rate. Every figure uses one vocabulary: ``msgs``
and ``bytes``, bytes counted as the store counts them. ``POST /replay``
pause and resume answer with the same objects as ``GET /replay``. An
unknown remote name is 404 with a reason (``names.py``).
Pause and resume are the uplink's (``uplink.ctl`` ``replay`` with an action):
without an uplink that answers, they are 503 naming it. Redrive goes through
``uplink.ctl`` ``redrive`` (the uplink asks the store and rewinds its drain in
step), or straight to the store's ``redrive`` when no uplink answers.

On a shared PostgreSQL store (DESIGN §9) every action covers the backlogs
this node took over as well: each remote lists them under ``held`` with
their drain's state, and a redrive counts per backlog (``backlogs``); a
redrive while the node's own backlog waits for its lease is 409.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from leafnode.ipc import rfc3339_us

from ..deps import Authorized, State, buffered_remotes, expects_store
from ..filters import check_subject, parse_time_us
from ..links import ServiceRefusedError, ServiceUnavailableError
from ..names import check_remote
from ..schemas import (
    Backlog,
    HeldBacklog,
    Rate,
    RedriveResult,
    ReplayControl,
    ReplayControlResult,
    ReplayRemote,
    ReplayRun,
    ReplayView,
    Totals,
)
from ..site import collect

if TYPE_CHECKING:
    from ..deps import ApiState
    from ..site import RemoteView

__all__ = ["router"]

router = APIRouter(tags=["replay"], dependencies=[Authorized])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: object) -> str | None:
    seconds = _number(value)
    return None if seconds is None else rfc3339_us(int(seconds * 1_000_000))


def _totals(value: object) -> Totals | None:
    if not isinstance(value, dict):
        return None
    msgs, nbytes = _count(value.get("msgs")), _count(value.get("bytes"))
    return None if msgs is None or nbytes is None else Totals(msgs=msgs, bytes=nbytes)


def _run(value: object) -> ReplayRun | None:
    """The uplink's ``replay`` object (see ``uplink.ctl``), or None."""
    if not isinstance(value, dict):
        return None
    started, backlog, sent = _time(value.get("started_at")), value.get("backlog"), value.get("sent")
    backlog_totals, sent_totals = _totals(backlog), _totals(sent)
    ended = value.get("ended")
    if started is None or backlog_totals is None or sent_totals is None:
        return None
    return ReplayRun(
        started_at=started,
        ended_at=_time(value.get("ended_at")),
        ended=ended if ended in ("caught up", "link down", "paused") else None,
        backlog=backlog_totals,
        sent=sent_totals,
    )


def _eta(backlog: Backlog, rate: Rate | None) -> float | None:
    """Deliverable backlog / rate: 0 when empty, None when it cannot be told."""
    if backlog.msgs == 0:
        return 0.0
    deliverable = backlog.msgs - (backlog.waiting_for_interest or 0)
    if deliverable <= 0 or rate is None or rate.msgs_s <= 0:
        return None
    return round(deliverable / rate.msgs_s, 1)


def _remote(remote: RemoteView) -> ReplayRemote:
    backlog = Backlog.model_validate(remote.backlog_summary())
    drain = remote.drain or {}
    msgs_s, bytes_s = _number(drain.get("rate_msgs_s")), _number(drain.get("rate_bytes_s"))
    rate = None if msgs_s is None or bytes_s is None else Rate(msgs_s=msgs_s, bytes_s=bytes_s)
    sent, sent_bytes = _count(drain.get("sent")), _count(drain.get("sent_bytes"))
    paused = drain.get("paused")
    return ReplayRemote(
        name=remote.name,
        state=str(drain.get("state") or "unknown"),
        connected=remote.connected,
        paused=paused if isinstance(paused, bool) else None,
        backlog=backlog,
        sent=None if sent is None or sent_bytes is None else Totals(msgs=sent, bytes=sent_bytes),
        rate=rate,
        eta_s=_eta(backlog, rate),
        replay=_run(drain.get("replay")),
        held=[HeldBacklog.model_validate(h) for h in remote.held_backlogs()],
    )


async def _remotes(state: ApiState, names: list[str] | None = None) -> list[ReplayRemote]:
    """``ReplayRemote`` of every buffered remote (or of ``names``), from one ``collect``."""
    view = await collect(state)
    if isinstance(view.stats, ServiceUnavailableError | ServiceRefusedError) and expects_store(
        state.settings
    ):
        raise view.stats
    return [_remote(r) for r in view.remotes() if r.buffered and (names is None or r.name in names)]


@router.get("/replay", summary="Drain progress per buffered remote: backlog, sent, rate, ETA")
async def get_replay(state: State) -> ReplayView:
    return ReplayView(remotes=await _remotes(state))


@router.post(
    "/replay",
    summary="Pause or resume draining, or redrive retained messages",
    response_model=ReplayControlResult | RedriveResult,
)
async def post_replay(
    state: State, body: ReplayControl
) -> ReplayControlResult | RedriveResult | JSONResponse:
    await check_remote(state, body.remote)
    if body.action == "redrive":
        # ``backlogs`` only on a shared store (as it was on SQLite).
        return JSONResponse((await _redrive(state, body)).model_dump(exclude_none=True))
    fields: dict[str, object] = {"action": body.action}
    if body.remote is not None:
        fields["remote"] = body.remote
    await state.links.request("uplink", "replay", fields)
    names = [body.remote] if body.remote is not None else None
    return ReplayControlResult(action=body.action, remotes=await _remotes(state, names))


async def _redrive(state: State, body: ReplayControl) -> RedriveResult:
    names = buffered_remotes(state.settings)
    if body.remote is not None:
        names = [body.remote]
    now = time.time()
    fields: dict[str, object] = {}
    if check_subject(body.subject) is not None:
        fields["subject"] = body.subject
    for key, value in (("since_us", body.since), ("until_us", body.until)):
        micros = parse_time_us(value, now=now, name=key.removesuffix("_us"))
        if micros is not None:
            fields[key] = micros
    counts: dict[str, int] = {}
    backlogs: dict[str, int] = {}
    for name in names:
        request = {**fields, "remote": name}
        # Through the uplink when it answers: it rewinds its drain in step with
        # the store, so an in-flight range ack cannot undo part of the redrive.
        # Without an uplink nothing drains, and the store alone is enough.
        try:
            frame = await state.links.request("uplink", "redrive", request)
        except ServiceUnavailableError:
            frame = await state.links.request("store", "redrive", request)
        redriven = frame.fields.get("redriven")
        counts[name] = redriven if isinstance(redriven, int) else 0
        per = frame.fields.get("backlogs")
        for backlog, entry in per.items() if isinstance(per, dict) else ():
            # The uplink answers a count per backlog, the store {redriven, first_seq}.
            n = entry.get("redriven") if isinstance(entry, dict) else entry
            if isinstance(n, int):
                backlogs[str(backlog)] = backlogs.get(str(backlog), 0) + n
    return RedriveResult(
        redriven=sum(counts.values()),
        remotes=counts,
        # SQLite: one backlog, "" (the answer stays as it was).
        backlogs=backlogs if set(backlogs) - {""} else None,
    )
