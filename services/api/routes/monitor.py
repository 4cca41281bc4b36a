"""nats-server's monitoring endpoints with its field names (DESIGN §7).

``/varz``, ``/connz``, ``/subsz``, ``/accountz`` and ``/routez`` come from the router
(``router.ctl``), ``/leafz`` from the uplink (``uplink.ctl``), ``/healthz`` from
all of them. Query parameters are validated here (a bad value is 400 before
any service is asked) and passed on as strings, as the router expects.
They stay open without the api token, as nats-server's do.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..deps import State, expects_uplink
from ..site import collect

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])

Flag = Literal["0", "1", "true", "false"]
SubsFlag = Literal["0", "1", "true", "false", "detail"]
NonNegative = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _query(**values: object) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


@router.get("/healthz", summary="Health of every service and remote")
async def healthz(state: State) -> JSONResponse:
    """nats-server's ``{"status": "ok"}``, plus per-service and per-remote state.

    503 with ``error`` naming the service when an expected service is down.
    Remote link state does not make the site unhealthy (as in nats-server).
    """
    view = await collect(state)
    services = view.service_status()
    remotes = []
    for remote in view.remotes():
        entry: dict[str, object] = {"name": remote.name, "account": remote.account}
        entry.update(remote.link_summary())
        entry["backlog"] = remote.backlog_summary() if remote.buffered else None
        if remote.buffered:
            # Which node holds which backlog (DESIGN §9): this node's own, and
            # those it took over from dead nodes of a shared PostgreSQL store.
            entry["node"] = remote.node
            entry["backlog_id"] = remote.backlog_id
            # "waiting" for seconds after a store restart (its previous
            # process's lease), not a loss: nothing drains it meanwhile.
            entry["backlog_lease"] = remote.backlog_lease
            entry["held"] = remote.held_backlogs()
        remotes.append(entry)
    body: dict[str, object] = {"status": "ok", "services": services, "remotes": remotes}
    down = view.down()
    if down:
        body["status"] = "unavailable"
        body["status_code"] = 503
        body["error"] = "; ".join(f"{name}: {error}" for name, error in down)
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@router.get("/varz", summary="Server information and statistics")
async def varz(state: State) -> dict[str, object]:
    """The router's ``varz``; ``leafnodes`` counts the uplink's connected remotes."""
    view = await collect(state, store=False, uplink=expects_uplink(state.settings))
    if not isinstance(view.varz, dict):
        raise view.varz
    data = view.varz
    if state.listen is not None:
        data["http_host"], data["http_port"] = state.listen
    if isinstance(view.links, list):
        # The router counts the leafs it accepted; add the connected remotes.
        accepted = data.get("leafnodes")
        data["leafnodes"] = (accepted if isinstance(accepted, int) else 0) + sum(
            1 for r in view.remotes() if r.connected
        )
    return data


@router.get("/connz", summary="Client connections")
async def connz(
    state: State,
    subs: SubsFlag | None = None,
    cid: NonNegative | None = None,
    offset: NonNegative | None = None,
    limit: NonNegative | None = None,
    sort: Annotated[
        str | None, Query(max_length=32, description="cid, start, subs, pending, msgs_to, ...")
    ] = None,
    auth: Flag | None = None,
    state_: Annotated[str | None, Query(alias="state", max_length=16)] = None,
) -> dict[str, object]:
    query = _query(
        subs=subs, cid=cid, offset=offset, limit=limit, sort=sort, auth=auth, state=state_
    )
    return await state.links.data("router", "connz", query)


@router.get("/subsz", summary="Subscription routing statistics")
async def subsz(
    state: State,
    subs: Flag | None = None,
    test: Annotated[str | None, Query(max_length=4096, description="a subject to match")] = None,
    offset: NonNegative | None = None,
    limit: NonNegative | None = None,
) -> dict[str, object]:
    query = _query(subs=subs, test=test, offset=offset, limit=limit)
    return await state.links.data("router", "subsz", query)


@router.get("/accountz", summary="Accounts")
async def accountz(
    state: State,
    acc: Annotated[str | None, Query(max_length=256, description="an account name")] = None,
) -> dict[str, object]:
    return await state.links.data("router", "accountz", _query(acc=acc))


@router.get("/routez", summary="Routes to the other nodes of the cluster")
async def routez(state: State, subs: Flag | None = None) -> dict[str, object]:
    """From the router, as nats-server's ``/routez`` (no cluster: no routes)."""
    return await state.links.data("router", "routez", _query(subs=subs))


@router.get("/leafz", summary="Leafnode connections: remotes to the hubs and accepted leafs")
async def leafz(
    state: State,
    subs: Flag | None = None,
    acc: Annotated[str | None, Query(max_length=256, description="an account name")] = None,
) -> dict[str, object]:
    """The uplink's remotes (``is_spoke`` true) and the router's accepted leafs (false)."""
    query = _query(subs=subs, acc=acc)
    accepted = await state.links.data("router", "leafz", query)
    if not expects_uplink(state.settings):
        return accepted
    data = await state.links.data("uplink", "leafz", query)
    remotes = data.get("leafs")
    leafs = [*(remotes if isinstance(remotes, list) else [])]
    more = accepted.get("leafs")
    leafs.extend(more if isinstance(more, list) else [])
    data["leafs"] = leafs
    data["leafnodes"] = len(leafs)
    return data
