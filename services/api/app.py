"""``create_app(settings)``: the FastAPI application of the control plane.

Everything the routes share lives on ``app.state.api`` (an ``ApiState``);
nothing is created at import time, so tests can build several apps with
different settings in one process.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI

from leafnode import __version__

from .deps import ApiState
from .errors import ERROR_SCHEMA, install_error_handlers
from .links import Links
from .routes import buffer, config, home, metrics, monitor, replay

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from leafnode.config import Settings

__all__ = ["create_app"]

log = logging.getLogger("leafnode.api")

_ERROR = {"content": {"application/json": {"schema": ERROR_SCHEMA}}}
_COMMON_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"description": "a bad query value", **_ERROR},
    503: {"description": "a service did not answer (named in 'service')", **_ERROR},
}
_GUARDED_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "api { token } is set and no bearer token was sent", **_ERROR},
    403: {"description": "the bearer token is wrong", **_ERROR},
    **_COMMON_ERRORS,
}


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ApiState = app.state.api
    if state.listen is not None:
        host, port = state.listen
        log.info("Listening for monitoring on http://%s:%d", host, port)
    yield


def create_app(
    settings: Settings,
    *,
    reapply: Callable[[Settings], Settings] | None = None,
    listen: tuple[str, int] | None = None,
) -> FastAPI:
    """Build the control-plane application.

    Args:
        settings: the site's settings; ``run_dir`` locates the service sockets.
        reapply: applies the command-line flags to settings re-read from the
            file on reload (default: none to apply).
        listen: the address the server listens on (reported by ``/varz`` and
            logged at start-up).

    Returns:
        The application, ready for uvicorn (or httpx's ASGI transport).
    """
    app = FastAPI(
        title="leafnode control plane",
        version=__version__,
        description=(
            "nats-server compatible monitoring (/varz, /connz, /subsz, /routez, /leafz, /accountz, "
            "/healthz), Prometheus /metrics, and the leaf node's config, buffer and replay. "
            "/config, /buffer and /replay need the bearer token when api { token } is set. "
            "GET / lists the endpoints."
        ),
        # /docs is ours (routes/home.py): Swagger UI from local assets, not a CDN.
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    state = ApiState(settings=settings, links=Links(settings.run_dir), listen=listen)
    if reapply is not None:
        state.reapply = reapply
    app.state.api = state
    install_error_handlers(app)
    home.install(app)
    app.include_router(monitor.router, responses=_COMMON_ERRORS)
    app.include_router(metrics.router)
    for guarded in (config.router, buffer.router, replay.router):
        app.include_router(guarded, responses=_GUARDED_ERRORS)
    return app
