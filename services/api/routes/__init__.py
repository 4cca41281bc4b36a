"""One FastAPI router per resource, aggregated by ``services.api.app``."""

from services.api import v1probe

# Before any route module registers a route (services/api/v1probe.py).
v1probe.install()
