"""The control plane (DESIGN §7): nats-server monitoring, config, buffer and replay over HTTP.

``create_app(settings)`` (``app.py``) builds the FastAPI application; ``__main__``
serves it with uvicorn. The api owns no state of its own: every answer comes
from the other services over their sockets (``links.py``).
"""
