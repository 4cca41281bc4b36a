"""Every error the api returns is JSON with a reason: ``{"error": "...", ...}``.

``install_error_handlers`` maps each failure to its status:

* ``ApiError``: raised by routes with an explicit status (401/403/404/409/413/422).
* ``ServiceUnavailableError``: 503 ``{"error", "service"}`` naming the service.
* ``ServiceRefusedError``: 400 (the service refused the request as malformed),
  or 409 ``{"error", "service", "code"}`` when the store does not hold a
  backlog a purge or redrive would change (``not_held``: a restarted store
  waits a few seconds for its own backlog's lease; ``lease_lost``: another
  node took one over meanwhile). Nothing changed; try again.
* Starlette's HTTP errors (unknown route 404, wrong method 405): same shape.
* Validation errors: 400 for the query string, path and headers (a bad query
  value), 422 for a body, with pydantic's list under ``detail``.
* Anything else is a bug: 500 ``{"error": "internal error"}``, the traceback
  goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .links import ServiceRefusedError, ServiceUnavailableError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI, Request

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger("leafnode.api")

# Store refusals that are a conflict with the node's leases, not a bad request.
NOT_HELD_CODES = frozenset({"not_held", "lease_lost"})

# The JSON shape every error response has, for the OpenAPI document.
ERROR_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
    "additionalProperties": True,
}


class ApiError(Exception):
    """An error answer with its status, reason and extra JSON fields."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})
        self.extra = extra


def error_response(
    status: int, reason: str, *, headers: Mapping[str, str] | None = None, **extra: object
) -> JSONResponse:
    """``{"error": reason, **extra}`` with ``status``."""
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


def _location(error: Mapping[str, object]) -> str:
    loc = error.get("loc")
    parts = [str(p) for p in loc] if isinstance(loc, list | tuple) else []
    return ".".join(parts) or "request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.reason, headers=exc.headers, **exc.extra)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceUnavailableError)
    return error_response(503, str(exc), service=exc.service)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceRefusedError)
    if exc.code in NOT_HELD_CODES:
        return error_response(409, exc.reason, service=exc.service, code=exc.code)
    return error_response(400, exc.reason, service=exc.service)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        reason = f"not found: {request.url.path}"
    elif exc.status_code == 405:
        reason = f"method {request.method} not allowed on {request.url.path}"
    else:
        reason = str(exc.detail)
    return error_response(exc.status_code, reason, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    in_body = any(_location(e).startswith("body") for e in errors)
    first = errors[0] if errors else {}
    reason = f"{_location(first)}: {first.get('msg', 'invalid value')}"
    # pydantic's entries may carry the offending input and a URL; both are
    # plain JSON values, but keep only what a client needs.
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in errors]
    return error_response(422 if in_body else 400, reason, detail=detail)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("Internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers described in the module docstring on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ServiceUnavailableError, _unavailable)
    app.add_exception_handler(ServiceRefusedError, _refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
