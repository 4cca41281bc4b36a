"""``/config``: read the settings (redacted), replace the file, reload every service.

A reload is DESIGN's SIGHUP: under ``leafnode run`` the supervisor does it
(``supervisor.ctl`` ``reload``: it re-reads the file, starts a service the new
config needs, and reloads each running one); otherwise (docker-compose, one
container per service) the api asks each service's socket for ``reload``
itself. A service that does not support ``reload`` is reported, not hidden.

A reload that changes a key needing a restart (``leafnode.config.restart_needed``:
listen addresses and ports, ``store.url``, ``run_dir``, ...) is refused as a
whole before anything is written or applied: 409 ``{"error", "restart_needed":
[{"key", "old", "new"}]}`` (secrets masked), and the running config stays;
``GET /config`` shows the settings in effect, not the file on disk.
``[REDACTED]`` sent back in a ``PUT`` keeps the running secret (``redact.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
from typing import TYPE_CHECKING, Final

import anyio
from fastapi import APIRouter, Request

from leafnode.config import ConfigError, load, loads, refusal, restart_needed
from leafnode.runtime import reapply_logging

from ..deps import Authorized, State, expects_store, expects_uplink
from ..errors import ApiError
from ..links import ServiceRefusedError, ServiceUnavailableError
from ..redact import KeepSecretError, keep_secrets, redact_settings
from ..schemas import ConfigView, ReloadResult

if TYPE_CHECKING:
    from pathlib import Path

    from leafnode.config import Settings

    from ..deps import ApiState

__all__ = ["refuse_restart_changes", "reload_everything", "router"]

log = logging.getLogger("leafnode.api")

router = APIRouter(tags=["config"], dependencies=[Authorized])

MAX_CONFIG_BYTES: Final = 1024 * 1024
# A supervisor may start a service during the reload and wait for it.
SUPERVISOR_RELOAD_TIMEOUT_S: Final = 30.0
_CONFIG_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {"text/plain": {"schema": {"type": "string", "maxLength": MAX_CONFIG_BYTES}}},
    }
}


def _config_error(exc: ConfigError) -> ApiError:
    return ApiError(422, exc.reason, line=exc.line, column=exc.column, file=exc.source)


def _config_path(state: ApiState) -> Path:
    path = state.settings.source
    if path is None:
        raise ApiError(409, "the api was started without a config file (-c FILE)")
    return path


async def _reload_service(state: ApiState, service: str, expected: bool) -> dict[str, object]:
    try:
        frame = await state.links.request(service, "reload")
    except ServiceUnavailableError as exc:
        if not expected and not exc.unsupported:
            return {"reloaded": False, "status": "not running"}
        return {"reloaded": False, "error": str(exc)}
    except ServiceRefusedError as exc:
        return {"reloaded": False, "error": str(exc)}
    fields = frame.fields
    entry: dict[str, object] = {"reloaded": fields.get("reloaded", True) is not False}
    if isinstance(fields.get("error"), str):
        entry["error"] = fields["error"]
    return entry


async def _check_services(state: ApiState) -> None:
    """Raise 422 when a service would refuse the file (``reload`` with ``check``).

    Without a supervisor the api reloads each service itself: each is asked
    first, so a file one of them refuses (a creds file it cannot read) is
    applied by none. A service that does not answer refuses nothing.
    """
    for service in ("router", "uplink", "store"):
        try:
            frame = await state.links.request(service, "reload", {"check": True})
        except (ServiceUnavailableError, ServiceRefusedError):
            continue
        error = frame.fields.get("error")
        if isinstance(error, str):
            log.error("Failed to reload configuration: %s: %s", service, error)
            raise ApiError(422, f"{service}: {error}", service=service)


def refuse_restart_changes(running: Settings, settings: Settings) -> None:
    """Raise 409 when going from ``running`` to ``settings`` needs a restart (logged per key)."""
    refused = restart_needed(running, settings)
    if not refused:
        return
    for change in refused:
        log.error("Failed to reload configuration: %s", change)
    raise ApiError(409, refusal(refused), restart_needed=[c.as_dict() for c in refused])


async def reload_everything(state: ApiState, settings: Settings) -> dict[str, object]:
    """Apply ``settings`` (validated, flags applied) to the api, then reload the services.

    Raises:
        ApiError: 409 when a key that needs a restart changed, 422 when a
            service would refuse the file; then nothing was applied.
    """
    refuse_restart_changes(state.settings, settings)
    try:
        frame = await state.links.request(
            "supervisor", "reload", timeout_s=SUPERVISOR_RELOAD_TIMEOUT_S
        )
    except (ServiceUnavailableError, ServiceRefusedError):
        pass  # not under `leafnode run`: ask each service ourselves
    else:
        refused = frame.fields.get("restart_needed")
        if isinstance(refused, list) and refused:
            # The supervisor read the file with its own flags and refused it.
            raise ApiError(409, str(frame.fields.get("error")), restart_needed=refused)
        services = frame.fields.get("services")
        error = frame.fields.get("error")
        if services == {} and isinstance(error, str):
            raise ApiError(422, error)  # a service would refuse it: none applied it
        reapply_logging(state.settings.log, settings.log)
        state.settings = settings
        if isinstance(services, dict):
            return {
                "reloaded": frame.fields.get("reloaded") is True,
                "services": services,
                "warnings": list(settings.warnings),
            }
    await _check_services(state)
    reapply_logging(state.settings.log, settings.log)
    state.settings = settings
    services = {
        "router": await _reload_service(state, "router", True),
        "uplink": await _reload_service(state, "uplink", expects_uplink(settings)),
        "store": await _reload_service(state, "store", expects_store(settings)),
    }
    ok = all(
        entry["reloaded"] or entry.get("status") == "not running" for entry in services.values()
    )
    return {"reloaded": ok, "services": services, "warnings": list(settings.warnings)}


def _read_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically when possible.

    A config bind-mounted as a single file (docker) cannot be renamed over:
    then it is rewritten in place.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        try:
            os.replace(tmp, path)
            return
        except OSError:
            pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


@router.get("/config", summary="The running configuration, secrets redacted")
async def get_config(state: State) -> ConfigView:
    settings = state.settings
    public = dataclasses.replace(settings, source=None, warnings=())
    config = redact_settings(public)
    config.pop("source", None)
    config.pop("warnings", None)
    return ConfigView(
        file=str(settings.source) if settings.source else None,
        config=config,
        warnings=list(settings.warnings),
    )


@router.put(
    "/config",
    summary="Replace the config file (text/plain), then reload",
    openapi_extra=_CONFIG_BODY,
    responses={
        409: {"description": "a key that needs a restart changed: error, restart_needed"},
        422: {"description": "the file is invalid: error, line, column"},
    },
)
async def put_config(state: State, request: Request) -> ReloadResult:
    path = _config_path(state)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CONFIG_BYTES:
            raise ApiError(413, f"config larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "the config is not UTF-8 text", line=0, column=0) from exc
    async with state.reload_lock:

        def parse(text: str) -> Settings:
            # include_root: the sender may include files of the config
            # directory only, and errors withhold content they did not send.
            settings = loads(text, source=str(path), base_dir=path.parent, include_root=path.parent)
            # The command line's --remote/--creds/--buffer must still fit the new file.
            return state.reapply(dataclasses.replace(settings, source=path))

        try:
            text = await anyio.to_thread.run_sync(keep_secrets, text, state.settings, parse)
            settings = await anyio.to_thread.run_sync(parse, text)
        except ConfigError as exc:
            raise _config_error(exc) from None
        except KeepSecretError as exc:
            raise ApiError(422, exc.reason, line=exc.line, column=0) from None
        # Refused before the file is written: the file keeps matching what runs.
        refuse_restart_changes(state.settings, settings)
        previous = await anyio.to_thread.run_sync(_read_file, path)
        await anyio.to_thread.run_sync(_write_file, path, text)
        try:
            result = await reload_everything(state, settings)
        except ApiError:
            # A service refused it (the services read the file itself): put the
            # running config's file back.
            if previous is not None:
                await anyio.to_thread.run_sync(_write_file, path, previous)
            raise
        return ReloadResult.model_validate(result)


@router.post(
    "/config/reload",
    summary="Re-read the config file and reload (as SIGHUP)",
    responses={
        409: {"description": "a key that needs a restart changed: error, restart_needed"},
        422: {"description": "the file is invalid: error, line, column"},
    },
)
async def reload_config(state: State) -> ReloadResult:
    path = _config_path(state)
    async with state.reload_lock:
        try:
            settings = state.reapply(await anyio.to_thread.run_sync(load, path))
        except ConfigError as exc:
            # The caller sent none of the file: the error quotes none of it.
            raise _config_error(exc.without_values()) from None
        return ReloadResult.model_validate(await reload_everything(state, settings))
