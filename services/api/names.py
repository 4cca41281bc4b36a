"""Remote names in requests: every endpoint answers an unknown one with 404 and a reason.

A name is known when the config has a remote of that name with a ``buffer``
block; for reading and purging buffered messages, also when the store still
holds messages of it (a remote removed from the config keeps its backlog
until purged, and ``/buffer`` lists it; without a buffered remote no store
runs, so nothing is known). Draining (pause, resume, redrive)
needs a configured buffered remote: only those have a drain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .deps import buffered_remotes, expects_store
from .errors import ApiError
from .links import ServiceRefusedError, ServiceUnavailableError

if TYPE_CHECKING:
    from .deps import ApiState

__all__ = ["check_remote"]


def _unknown(state: ApiState, name: str) -> ApiError:
    configured = [r.name for r in state.settings.leafnodes.remotes]
    if name in configured:
        reason = f"remote {name!r} has no buffer"
    else:
        names = buffered_remotes(state.settings)
        known = f"buffered remotes: {', '.join(names)}" if names else "no remote buffers"
        reason = f"no buffered remote named {name!r} ({known})"
    return ApiError(404, reason, remote=name)


async def check_remote(state: ApiState, name: str | None, *, stored: bool = False) -> None:
    """Raise 404 unless ``name`` (when given) is a buffered remote.

    Args:
        stored: a remote the store still holds messages of counts too.

    Raises:
        ApiError: 404 with the reason (which remotes buffer).
    """
    if name is None or name in buffered_remotes(state.settings):
        return
    if stored and expects_store(state.settings):
        try:
            frame = await state.links.request("store", "stats")
        except (ServiceUnavailableError, ServiceRefusedError):
            # Cannot tell; the request itself will say what is wrong.
            return
        remotes = frame.fields.get("remotes")
        if isinstance(remotes, dict) and name in remotes:
            return
    raise _unknown(state, name)
