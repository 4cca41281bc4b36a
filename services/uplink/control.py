"""``uplink.ctl``: the uplink's control socket (api -> uplink), ipc frames.

Requests (``leafnode.ipc`` framing; every answer carries the request's id).
Errors answer ``error`` {error, code}: ``unknown_type`` for an unknown
request, ``bad_request`` for a bad field or an unknown remote,
``unavailable`` when the store cannot be reached (redrive).

``ping`` {} -> ``pong`` {server_id, name, remotes}
    Readiness: the uplink is ready when this answers. ``remotes`` = count.
``status`` {remote?} -> ``ok`` {remotes: [REMOTE, ...]} (alias ``remotes``)
    One REMOTE per configured remote (config order; only ``remote`` if given)::

        {name, account, urls, url, connected, ready, since, since_us,
         reconnects, last_error, server_id, server_name, hub_account,
         rtt, rtt_s, in_msgs, out_msgs, in_bytes, out_bytes,
         subscriptions, dropped, live_buffered, buffer}

    ``urls``: configured URLs without credentials; ``url``: the one in use
    (null when down). ``connected``: the link is up; ``ready``: the hub's
    initial interest has arrived. ``since``: RFC 3339 UTC of the current
    link (``since_us`` in microseconds), null when down. ``reconnects``:
    links established after the first. ``last_error``: why the last link
    ended or the last attempt failed (null: never). ``server_id`` /
    ``server_name`` / ``hub_account``: the hub's, from its INFO (null when
    down). ``rtt``: Go duration string (``"189µs"``), ``rtt_s`` seconds.
    Counters are cumulative over the remote's links: ``in_*`` from the
    hub, ``out_*`` to it (live and replayed). ``subscriptions``: the hub's
    ``LS+`` keys (``"subject"`` or ``"subject queue"``). ``dropped``: live
    messages for the hub not sent, by reason (``no_link``, ``permission``,
    ``max_payload``, ``slow_consumer``). ``live_buffered``: live copies of
    buffered subjects skipped (they go through the store). ``buffer``:
    null when the remote buffers nothing, else BUFFER::

        {subjects, state, draining, paused, store_connected, store_error,
         waiting_for_interest, sent, sent_bytes, acked, rate_msgs_s,
         rate_bytes_s, remaining, remaining_bytes, eta_s, replay, dropped}

    ``state``: ``draining``, ``waiting_for_interest``, ``idle``, ``paused``,
    ``no_link`` (hub down or its initial interest not in yet),
    ``store_unavailable``, ``waiting_for_lease`` (a shared store restarted
    moments ago waits for its previous process's lease of this node's
    backlog: no outage, ``store_error`` stays null) or, for a taken-over
    backlog, ``not_held`` (another node holds it now; its drain ends).
    ``draining``: state is ``draining``.
    ``waiting_for_interest``: pending messages the hub has no interest in.
    ``sent``/``sent_bytes``: messages the hub confirmed with a PONG since
    the uplink started, and their bytes as the store counts them (subject,
    reply, headers, payload: the measure of ``remaining_bytes`` and
    ``max_bytes``); ``acked``: messages removed from the backlog (sent, or
    with nothing left to deliver). ``rate_msgs_s``/``rate_bytes_s``: sent
    per second over the last 5 s, up to now (from the replay's start when it
    began since; null before any sample). ``remaining`` /
    ``remaining_bytes``: the store's pending backlog of the remote (null
    before the first answer; refreshed every second and when a replay
    begins). ``eta_s``: deliverable remaining / rate (0 when nothing
    remains, null when unknown). ``replay``: the current or last replay,
    null before the first: ``{started_at, ended_at, ended, backlog: {msgs,
    bytes}, sent: {msgs, bytes}}`` (epoch seconds; ``ended``: null while it
    runs, else "caught up", "link down" or "paused"; ``backlog``: the
    store's as it began). ``dropped``: buffered messages dropped by the
    drain (``max_payload``: larger than the hub's).
``leafz`` {query: {subs?, acc?}} -> ``ok`` {data}
    nats-server's ``/leafz`` from the leaf side: ``{server_id, now,
    leafnodes, leafs: [{id, name, is_spoke: true, account, ip, port, rtt,
    in_msgs, out_msgs, in_bytes, out_bytes, subscriptions,
    subscriptions_list (subs=1 only), compression}]}``; per-link counters.
``replay`` {action?: "pause"|"resume", remote?} -> ``ok`` {remotes: [PROGRESS, ...]}
    Pauses or resumes draining (every buffered remote, or ``remote``); with
    no ``action`` it only reports. PROGRESS = BUFFER plus ``name`` and
    ``connected``, one per buffered remote concerned. A paused drain
    finishes the batch in flight and sends nothing more; the backlog keeps
    growing. (Alias ``replay_control``.)
``redrive`` {remote, subject?, since_us?, until_us?} -> ``ok`` {redriven, first_seq,
backlogs: {backlog: redriven}}
    Forwards to the store's ``redrive`` (retained messages of ``remote``
    become pending again, in this node's backlog and in every backlog it
    took over) and moves each drain's cursor back, so they are sent again
    in seq order. ``backlogs``: how many per backlog.
``reload`` {check?} -> ``ok`` {reloaded, changes: [str], error?}
    Re-reads the config file as SIGHUP does: remotes added, removed or
    changed, buffer subjects. ``reloaded`` false with ``error`` when the file
    is invalid (nothing changed then). With ``check: true`` only validate
    (credentials and TLS files too): ``leafnode run`` checks every service
    before it reloads any.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from leafnode.ipc import RequestError, encode_frame, field_int, field_str
from leafnode.link import serve_control

from . import monitor
from .replay import redrive

if TYPE_CHECKING:
    from collections.abc import Callable

    import trio

    from leafnode.ipc import Frame

    from .remote import Remote
    from .service import Uplink

__all__ = ["CONTROL_SOCKET", "ControlHandler", "ReloadResult"]

log = logging.getLogger("leafnode.uplink")

CONTROL_SOCKET: Final = "uplink.ctl"

# (error or None, changes)
ReloadResult = tuple[str | None, list[str]]


class ControlHandler:
    """Serves ``uplink.ctl`` connections (``serve_unix_socket`` handler).

    Args:
        uplink: the running uplink.
        reload: re-reads and applies the config file (only validates it when
            given True).
    """

    def __init__(self, uplink: Uplink, reload: Callable[[bool], ReloadResult]) -> None:
        self.uplink = uplink
        self.reload = reload

    async def __call__(self, stream: trio.SocketStream) -> None:
        await serve_control(stream, self._answer, name=CONTROL_SOCKET)

    async def _answer(self, frame: Frame) -> bytes:
        try:
            return await self._dispatch(frame)
        except RequestError as exc:
            return encode_frame("error", frame.id, {"error": str(exc), "code": exc.code})
        except monitor.MonitorError as exc:
            return encode_frame("error", frame.id, {"error": str(exc), "code": "bad_request"})

    async def _dispatch(self, frame: Frame) -> bytes:
        kind, rid, f = frame.type, frame.id, frame.fields
        uplink = self.uplink
        if kind == "ping":
            return encode_frame(
                "pong",
                rid,
                {
                    "server_id": uplink.identity.server_id,
                    "name": uplink.identity.name,
                    "remotes": len(uplink.remotes),
                },
            )
        if kind in ("status", "remotes"):
            name = field_str(f, "remote")
            remotes = [self._remote(name)] if name is not None else uplink.remotes
            return encode_frame("ok", rid, {"remotes": [monitor.remote_status(r) for r in remotes]})
        if kind == "leafz":
            query = f.get("query") or {}
            if not isinstance(query, dict):
                raise RequestError("query must be an object")
            data = monitor.leafz(uplink, {str(k): str(v) for k, v in query.items()})
            return encode_frame("ok", rid, {"data": data})
        if kind in ("replay", "replay_control"):
            return encode_frame("ok", rid, {"remotes": self._replay(f)})
        if kind == "redrive":
            return encode_frame("ok", rid, await self._redrive(f))
        if kind == "reload":
            error, changes = self.reload(f.get("check") is True)
            fields: dict[str, object] = {"reloaded": error is None, "changes": changes}
            if error is not None:
                fields["error"] = error
            return encode_frame("ok", rid, fields)
        raise RequestError(f"unknown request {kind!r}", code="unknown_type")

    def _remote(self, name: str) -> Remote:
        remote = self.uplink.remote(name)
        if remote is None:
            raise RequestError(f"no remote named {name!r}")
        return remote

    def _buffered(self, name: str | None) -> list[Remote]:
        if name is None:
            return [r for r in self.uplink.remotes if r.drain is not None]
        remote = self._remote(name)
        if remote.drain is None:
            raise RequestError(f"remote {name!r} buffers nothing")
        return [remote]

    def _replay(self, f: dict[str, object]) -> list[dict[str, object]]:
        action = field_str(f, "action")
        remotes = self._buffered(field_str(f, "remote"))
        if action not in (None, "pause", "resume"):
            raise RequestError(f"unknown replay action {action!r} (pause or resume)")
        out: list[dict[str, object]] = []
        for remote in remotes:
            drain = remote.drain
            assert drain is not None
            if action == "pause" and not drain.paused:
                drain.pause()
                log.info('Leafnode remote "%s": replay paused', remote.name)
            elif action == "resume" and drain.paused:
                drain.resume()
                log.info('Leafnode remote "%s": replay resumed', remote.name)
            for held in remote.held_drains.values():  # backlogs taken over follow
                if action == "pause" and not held.paused:
                    held.pause()
                elif action == "resume" and held.paused:
                    held.resume()
            status = monitor.replay_status(remote)
            if status is not None:
                out.append(status)
        return out

    async def _redrive(self, f: dict[str, object]) -> dict[str, object]:
        name = field_str(f, "remote", required=True)
        assert name is not None
        (remote,) = self._buffered(name)
        result = await redrive(
            remote.drains(),
            subject=field_str(f, "subject"),
            since_us=field_int(f, "since_us"),
            until_us=field_int(f, "until_us"),
        )
        log.info(
            'Leafnode remote "%s": redrive made %s retained messages pending again',
            name,
            result["redriven"],
        )
        return result
