"""FastAPI's pydantic-v1 probes, answered without importing ``pydantic.v1``.

FastAPI refuses pydantic v1 models, and to recognise one it imports
``pydantic.v1`` (the whole legacy pydantic, ~1.5 MB and ~15 ms) the first time
it registers a route or encodes a response, only to ask
``isinstance(x, pydantic.v1.BaseModel)``. While nothing has imported
``pydantic.v1``, no v1 model exists and the answer is False without the
import; once something has, FastAPI's own probe answers. :func:`install`
wraps the two probes so; with a FastAPI that has them elsewhere it does
nothing (the api then pays the import, nothing breaks).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

__all__ = ["install"]

V1: str = "pydantic.v1"


def _only_once_loaded(probe: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def answer(obj: Any) -> bool:
        return V1 in sys.modules and probe(obj)

    answer.__wrapped__ = probe  # type: ignore[attr-defined]
    return answer


def _wrap(module: ModuleType | None, name: str) -> None:
    probe = getattr(module, name, None)
    if callable(probe) and not hasattr(probe, "__wrapped__"):
        setattr(module, name, _only_once_loaded(probe))


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def install() -> None:
    """Wrap FastAPI's probes (idempotent); call before any route is registered."""
    shared, encoders = (_module(name) for name in ("fastapi._compat.shared", "fastapi.encoders"))
    # annotation_is_pydantic_v1 (route registration) calls the class probe
    # through its module's globals; jsonable_encoder imported the instance
    # probe by name.
    _wrap(shared, "is_pydantic_v1_model_class")
    _wrap(shared, "is_pydantic_v1_model_instance")
    _wrap(encoders, "is_pydantic_v1_model_instance")
