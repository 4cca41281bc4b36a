"""One FastAPI router per resource, aggregated by ``services.api.app``."""
