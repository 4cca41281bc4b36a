"""``/replay``: drain progress, pause/resume, and redrive (DESIGN §4, §7).

Progress combines the store's backlog (what remains) with the uplink's drain
state and rate (the ``buffer`` object of ``uplink.ctl`` ``status``); the ETA
is remaining / rate.
Pause and resume are the uplink's (``uplink.ctl`` ``replay`` with an action):
without an uplink that answers, they are 503 naming it. Redrive goes through
``uplink.ctl`` ``redrive`` (the uplink asks the store and rewinds its drain in
step), or straight to the store's ``redrive`` when no uplink answers.
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from ..deps import Authorized, State, buffered_remotes, expects_store
from ..errors import ApiError
from ..filters import check_subject, parse_time_us
from ..links import ServiceRefusedError, ServiceUnavailableError
from ..schemas import (
    RedriveResult,
    ReplayControl,
    ReplayControlResult,
    ReplayRemote,
    ReplayView,
)
from ..site import collect

__all__ = ["router"]

router = APIRouter(tags=["replay"], dependencies=[Authorized])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@router.get("/replay", summary="Drain progress per buffered remote: rate, remaining, ETA")
async def get_replay(state: State) -> ReplayView:
    view = await collect(state)
    if isinstance(view.stats, ServiceUnavailableError | ServiceRefusedError) and expects_store(
        state.settings
    ):
        raise view.stats
    remotes = []
    for remote in view.remotes():
        if not remote.buffered:
            continue
        backlog = remote.backlog_summary()
        remaining = int(backlog["msgs"])  # type: ignore[call-overload]
        drain = remote.drain or {}
        rate = _number(drain.get("rate_msgs_s"))
        eta: float | None = None
        if remaining == 0:
            eta = 0.0
        elif rate:
            eta = round(remaining / rate, 1)
        paused = drain.get("paused")
        remotes.append(
            ReplayRemote(
                name=remote.name,
                state=str(drain.get("state") or "unknown"),
                connected=remote.connected,
                paused=paused if isinstance(paused, bool) else None,
                remaining_msgs=remaining,
                remaining_bytes=int(backlog["bytes"]),  # type: ignore[call-overload]
                waiting_for_interest=_count(drain.get("waiting_for_interest")),
                sent_msgs=_count(drain.get("sent")),
                sent_bytes=_count(drain.get("sent_bytes")),
                rate_msgs_s=rate,
                eta_s=eta,
            )
        )
    return ReplayView(remotes=remotes)


@router.post("/replay", summary="Pause or resume draining, or redrive retained messages")
async def post_replay(state: State, body: ReplayControl) -> ReplayControlResult | RedriveResult:
    if body.action == "redrive":
        return await _redrive(state, body)
    fields: dict[str, object] = {"action": body.action}
    if body.remote is not None:
        fields["remote"] = body.remote
    frame = await state.links.request("uplink", "replay", fields)
    remotes = frame.fields.get("remotes")
    return ReplayControlResult(
        action=body.action,
        remotes=[r for r in remotes if isinstance(r, dict)] if isinstance(remotes, list) else [],
    )


async def _redrive(state: State, body: ReplayControl) -> RedriveResult:
    names = buffered_remotes(state.settings)
    if body.remote is not None:
        if body.remote not in names:
            raise ApiError(404, f"no buffered remote named {body.remote!r}", remote=body.remote)
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
    return RedriveResult(redriven=sum(counts.values()), remotes=counts)
