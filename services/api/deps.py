"""Request dependencies: the api's state, the service links, the bearer token.

``create_app`` puts one ``ApiState`` on ``app.state.api``; routes reach it
through the ``State`` alias, never through a module-level object.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from leafnode.config import Settings

    from .links import Links

__all__ = [
    "ApiState",
    "Authorized",
    "State",
    "buffered_remotes",
    "expects_store",
    "expects_uplink",
    "get_state",
    "require_token",
]


def _same(settings: Settings) -> Settings:
    return settings


@dataclasses.dataclass
class ApiState:
    """What the routes share.

    Attributes:
        settings: the current settings (replaced on reload).
        links: the service sockets.
        reapply: applies the command-line flags to freshly loaded settings,
            so a reload keeps them (flags override the file).
        listen: the address the api actually listens on, once known.
        started_at: when the api started (epoch seconds).
    """

    settings: Settings
    links: Links
    reapply: Callable[[Settings], Settings] = _same
    listen: tuple[str, int] | None = None
    started_at: float = dataclasses.field(default_factory=time.time)
    reload_lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock)


def expects_uplink(settings: Settings) -> bool:
    """The uplink runs when remotes are configured (as ``leafnode run`` decides)."""
    return bool(settings.leafnodes.remotes)


def expects_store(settings: Settings) -> bool:
    """The store runs when some remote buffers (as ``leafnode run`` decides)."""
    return any(r.buffer is not None for r in settings.leafnodes.remotes)


def buffered_remotes(settings: Settings) -> list[str]:
    """Names of the remotes with a ``buffer`` block, in config order."""
    return [r.name for r in settings.leafnodes.remotes if r.buffer is not None]


def get_state(request: Request) -> ApiState:
    """The ``ApiState`` of the application serving ``request``."""
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]

# auto_error=False: we answer a missing token ourselves (401 with our JSON
# shape); the scheme still documents the bearer token in OpenAPI.
_bearer = HTTPBearer(auto_error=False, description="api { token } from the config file")


async def require_token(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Guard ``/config``, ``/buffer*`` and ``/replay`` when ``api { token }`` is set.

    Raises:
        ApiError: 401 when no bearer token was sent, 403 when it is wrong.
    """
    token = state.settings.api.token
    if token is None:
        return
    if credentials is None:
        raise ApiError(
            401,
            "missing bearer token (Authorization: Bearer <api token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant time: the comparison must not tell how much of a guess matched.
    if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise ApiError(403, "wrong bearer token")


Authorized = Depends(require_token)
