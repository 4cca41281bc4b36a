"""What ``leafnode run``'s supervisor imports before it forks: modules the services share.

``leafnode.supervisor.STORE_AND_API_SHARE`` is preloaded for one shared copy
instead of one in the store and one in the api. Preloading a module only one
of them imports would cost pages instead (``leafnode.forkserver``, "Memory"),
so each named module must be one that both import, and that the router's and
the uplink's preload does not already bring.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from leafnode.supervisor import PRELOADED, STORE_AND_API_SHARE

_NEW_MODULES = """
import importlib, json, sys
import leafnode.cli, leafnode.supervisor
from leafnode.entrypoints import service_module
from leafnode.forkserver import preload
preload([service_module(name) for name in {preloaded!r}])
before = set(sys.modules)
module = importlib.import_module(service_module({service!r}))
for extra in getattr(module, "PRELOAD", ()):
    importlib.import_module(extra)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _imported_after_preload(service: str) -> set[str]:
    """The modules ``service`` imports that the supervisor's preload has not."""
    code = _NEW_MODULES.format(preloaded=PRELOADED, service=service)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("service", ["store", "api"])
def test_each_shared_module_is_one_the_service_imports_itself(service: str) -> None:
    imported = _imported_after_preload(service)
    missing = [name for name in STORE_AND_API_SHARE if name not in imported]
    assert missing == [], f"{service} does not import {missing} (or the preload already does)"
