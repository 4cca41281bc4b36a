"""``router.ctl``: the router's control socket (api -> router), ipc frames.

Requests (``leafnode.ipc`` framing; every answer carries the request's id):

``ping`` {} -> ``pong`` {server_id, server_name, port, listening}
    Readiness: the router is ready when this answers with ``listening`` true
    (its client port and its websocket port, when configured, accept).
``varz`` / ``connz`` / ``subsz`` / ``accountz`` / ``leafz`` {query: {name: value}} -> ``ok`` {data}
    nats-server's monitoring objects (``services.router.monitor``; ``leafz``:
    the leafs accepted on the leaf port, ``services.router.leafmonitor``); ``query``
    holds the HTTP query parameters as strings. A bad value answers
    ``error`` {error, code: "bad_request"}.
``bufferz`` {} -> ``ok`` {data: {enabled, store_available, waiting,
waiting_reason, held: {remote: {msgs, bytes}}, appended, dropped: {remote:
{reason: n}}, refusing: [remote]}}
    The router's side of buffering: messages waiting in memory for the store
    and why, and what the router dropped before the store (reason
    ``store_unavailable``; the store counts its own refusals).
``reload`` {check?} -> ``ok`` {reloaded: bool, error?}
    Re-read the config file, as SIGHUP does. With ``check: true`` only
    validate it (``reloaded`` false, ``error`` when it would be refused):
    ``leafnode run`` checks every service before it reloads any, so a file
    one of them refuses is applied by none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leafnode.ipc import encode_frame
from leafnode.link import serve_control

from . import monitor, routez

if TYPE_CHECKING:
    from collections.abc import Callable

    import trio

    from leafnode.ipc import Frame

    from .server import Server

__all__ = ["CONTROL_SOCKET", "ControlHandler"]

CONTROL_SOCKET = "router.ctl"
_VIEWS = {
    "varz": lambda server, query: routez.varz(server),
    "bufferz": lambda server, query: monitor.bufferz(server),
    "connz": monitor.connz,
    "subsz": monitor.subsz,
    "accountz": monitor.accountz,
    "leafz": monitor.leafz,
    "routez": routez.routez,
}


class ControlHandler:
    """Serves one control connection at a time per stream."""

    def __init__(self, server: Server, reload: Callable[[bool], str | None]) -> None:
        self.server = server
        self.reload = reload

    async def __call__(self, stream: trio.SocketStream) -> None:
        await serve_control(stream, self._answer, name=CONTROL_SOCKET)

    async def _answer(self, frame: Frame) -> bytes:
        server = self.server
        if frame.type == "ping":
            return encode_frame(
                "pong",
                frame.id,
                {
                    "server_id": server.server_id,
                    "server_name": server.server_name,
                    "port": server.port,
                    # Every port of the router listens (client, websocket).
                    "listening": server.listening.is_set(),
                },
            )
        if frame.type == "reload":
            error = self.reload(frame.fields.get("check") is True)
            fields: dict[str, object] = {"reloaded": error is None}
            if error is not None:
                fields["error"] = error
            return encode_frame("ok", frame.id, fields)
        view = _VIEWS.get(frame.type)
        if view is None:
            return encode_frame(
                "error",
                frame.id,
                {"error": f"unknown request {frame.type!r}", "code": "bad_request"},
            )
        raw_query = frame.fields.get("query") or {}
        if not isinstance(raw_query, dict):
            return encode_frame(
                "error", frame.id, {"error": "query must be an object", "code": "bad_request"}
            )
        query = {str(k): str(v) for k, v in raw_query.items()}
        try:
            data = view(server, query)
        except monitor.MonitorError as exc:
            return encode_frame("error", frame.id, {"error": str(exc), "code": "bad_request"})
        return encode_frame("ok", frame.id, {"data": data})
