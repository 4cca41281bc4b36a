"""The api serves every route without importing ``pydantic.v1`` (services/api/v1probe.py).

Each check runs in a fresh interpreter: the test process itself may have
imported ``pydantic.v1`` through another library.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_SERVE_EVERY_ROUTE = """
import asyncio, dataclasses, sys
import httpx
from leafnode.config import Settings
from services.api.app import create_app

app = create_app(dataclasses.replace(Settings(), run_dir={run_dir!r}))
documented = app.openapi()["paths"]
plain = {{path for path in documented if "{{" not in path}}
paths = sorted(plain | {{"/", "/docs", "/openapi.json", "/metrics"}})

async def main() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for path in paths:
            await client.get(path)
        await client.get("/buffer/no-such-remote")

asyncio.run(main())
assert len(paths) > 10, paths
print("pydantic.v1" in sys.modules)
"""

_V1_MODEL_REFUSED = """
from fastapi import FastAPI
from fastapi.exceptions import PydanticV1NotSupportedError
from services.api import app  # installs the probes
from pydantic import v1

class Old(v1.BaseModel):
    x: int

try:
    FastAPI().get("/", response_model=Old)(lambda: None)
except PydanticV1NotSupportedError:
    print("refused")
else:
    print("accepted")
"""


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_every_route_is_served_without_importing_pydantic_v1(tmp_path: Path) -> None:
    assert _run(_SERVE_EVERY_ROUTE.format(run_dir=str(tmp_path))) == "False"


def test_a_pydantic_v1_model_is_still_refused_once_pydantic_v1_is_imported() -> None:
    assert _run(_V1_MODEL_REFUSED) == "refused"
