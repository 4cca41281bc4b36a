"""The api's side of the service sockets: one short ipc exchange per request.

Each request opens the service's socket, sends one frame, waits for its answer
(bounded by a timeout) and closes. A Unix-socket connect costs about as much
as a syscall, and a fresh connection per request keeps every exchange inside
the task that serves the HTTP request, so nothing outlives it and a service
that restarted is simply found again on the next request.

Failures are split in two: ``ServiceUnavailableError`` (nothing listens, the
connection broke, no answer in time, the service said ``unavailable``) becomes
503 naming the service; ``ServiceRefusedError`` (the service refused the
request as malformed) becomes 400. A request type the service does not know
is ``ServiceUnavailableError`` with ``unsupported`` set, so an older uplink
without a control request degrades like an absent one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from leafnode.ipc import STORE_SOCKET, IpcClosedError, IpcError, RequestError
from leafnode.ipc.anyio import open_anyio_client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from leafnode.ipc import Frame

__all__ = [
    "SOCKETS",
    "Links",
    "ServiceRefusedError",
    "ServiceUnavailableError",
    "gather",
]

SOCKETS: Final = {
    "router": "router.ctl",
    "store": STORE_SOCKET,
    "uplink": "uplink.ctl",
    "supervisor": "supervisor.ctl",
}
# Long enough for a store busy with a large group commit, short enough that a
# hung service turns into a 503 before an HTTP client gives up.
REQUEST_TIMEOUT_S: Final = 5.0


class ServiceUnavailableError(Exception):
    """A service did not answer; the api answers 503 naming it.

    Attributes:
        service: ``router``, ``store``, ``uplink`` or ``supervisor``.
        reason: why, for the JSON error.
        unsupported: the service answered but does not know the request type.
    """

    def __init__(self, service: str, reason: str, *, unsupported: bool = False) -> None:
        super().__init__(f"{service} is unreachable: {reason}")
        self.service = service
        self.reason = reason
        self.unsupported = unsupported


class ServiceRefusedError(Exception):
    """A service refused a request; the api answers 400 (malformed, ipc ``bad_request``),
    or 409 when the store does not hold a backlog it would change (``not_held``,
    ``lease_lost``: DESIGN §9)."""

    def __init__(self, service: str, reason: str, code: str = "bad_request") -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.code = code


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "its socket does not exist (not running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens on its socket (not running?)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


class Links:
    """Request/response access to the services of one run directory.

    Args:
        run_dir: the directory holding the service sockets.
        timeout_s: how long one exchange may take.
    """

    def __init__(self, run_dir: str | Path, *, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.run_dir = Path(run_dir)
        self.timeout_s = timeout_s

    def path(self, service: str) -> Path:
        """The socket of ``service``."""
        return self.run_dir / SOCKETS[service]

    async def request(
        self,
        service: str,
        type: str,
        fields: Mapping[str, object] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Frame:
        """Send one request to ``service`` and return its answer.

        Raises:
            ServiceUnavailableError: no answer (see the module docstring).
            ServiceRefusedError: the service refused the request.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            with anyio.fail_after(timeout):
                async with open_anyio_client(self.path(service)) as client:
                    return await client.request(type, fields)
        except TimeoutError:
            raise ServiceUnavailableError(service, f"no answer within {timeout:g}s") from None
        except RequestError as exc:
            text = str(exc)
            if exc.code == "unknown_type" or text.startswith("unknown request"):
                raise ServiceUnavailableError(
                    service, f"does not support the {type!r} request", unsupported=True
                ) from None
            if exc.code == "unavailable":
                raise ServiceUnavailableError(service, text) from None
            raise ServiceRefusedError(service, text, exc.code or "bad_request") from None
        except (OSError, IpcClosedError, IpcError) as exc:
            raise ServiceUnavailableError(service, _describe(exc)) from None

    async def data(
        self, service: str, type: str, query: Mapping[str, str] | None = None
    ) -> dict[str, object]:
        """A monitoring request (``varz``, ``connz``, ``leafz``...): its ``data`` object."""
        frame = await self.request(service, type, {"query": dict(query or {})})
        data = frame.fields.get("data")
        if not isinstance(data, dict):
            raise ServiceUnavailableError(service, f"malformed {type!r} answer")
        return data


async def gather(
    calls: Mapping[str, Callable[[], Awaitable[object]]],
) -> dict[str, object | ServiceUnavailableError | ServiceRefusedError]:
    """Run ``calls`` concurrently; each key maps to its result or its service error.

    Other exceptions are bugs and propagate.
    """
    results: dict[str, object | ServiceUnavailableError | ServiceRefusedError] = {}

    async def one(key: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            results[key] = await call()
        except (ServiceUnavailableError, ServiceRefusedError) as exc:
            results[key] = exc

    try:
        async with anyio.create_task_group() as tg:
            for key, call in calls.items():
                tg.start_soon(one, key, call)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return results


def finite(value: object) -> float | None:
    """``value`` as a finite float, None for anything else (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
