"""``/`` lists the endpoints; ``/docs`` is Swagger UI served from this host (DESIGN §7).

``GET /`` answers what nats-server's monitoring home page answers: an HTML
page with one relative link per endpoint, so a browser pointed at the
control-plane port finds its way, behind a path prefix too. A client that
asks for JSON (``Accept: application/json``) gets the same list as data.
The list is read from the application's routes, so it cannot go stale.

``GET /docs`` is FastAPI's Swagger UI page with every asset served from the
``swagger-ui-bundle`` package under ``/docs/static``: a site without internet
access (the usual place for a leaf node) still gets a working page. Swagger
UI's online validator badge is off for the same reason.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Final, TypedDict

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["DOCS_STATIC", "Endpoint", "endpoints", "install", "router"]

router = APIRouter(include_in_schema=False)

# Where the Swagger UI assets are mounted; the docs page names only these.
DOCS_STATIC: Final = "/docs/static"
_SWAGGER_JS: Final = "swagger-ui-bundle.js"
_SWAGGER_CSS: Final = "swagger-ui.css"
_FAVICON: Final = "favicon-32x32.png"


class Endpoint(TypedDict):
    path: str
    methods: list[str]
    summary: str
    token: bool


def endpoints(app: FastAPI) -> list[Endpoint]:
    """``{path, methods, summary, token}`` of every documented operation, in schema order.

    Read from the OpenAPI document (what ``/docs`` shows). ``summary``: the
    first operation's; ``token``: it needs the bearer token when
    ``api { token }`` is set.
    """
    out: list[Endpoint] = []
    paths = app.openapi().get("paths", {})
    for path, operations in paths.items():
        ops = [(m.upper(), op) for m, op in operations.items() if isinstance(op, dict)]
        out.append(
            {
                "path": path,
                "methods": [m for m, _ in ops],
                "summary": next((str(op["summary"]) for _, op in ops if op.get("summary")), ""),
                "token": any(op.get("security") for _, op in ops),
            }
        )
    return out


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(app: FastAPI, items: list[Endpoint]) -> str:
    rows = []
    for item in items:
        path = html.escape(item["path"])
        note = " (token)" if item["token"] else ""
        rows.append(
            f'<li><a href=".{path}">{path}</a> <code>{" ".join(item["methods"])}</code> '
            f"{html.escape(item['summary'])}{note}</li>"
        )
    title = html.escape(f"{app.title} {app.version}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
        '<p><a href="./docs">API documentation</a> '
        '(<a href="./openapi.json">openapi.json</a>)</p>\n'
        "<ul>\n" + "\n".join(rows) + "\n</ul>\n</body>\n</html>\n"
    )


@router.get("/")
async def home(request: Request) -> Response:
    """The endpoint list: HTML as nats-server's home page, or JSON on request."""
    app: FastAPI = request.app
    items = endpoints(app)
    if _wants_json(request):
        return JSONResponse({"name": app.title, "version": app.version, "endpoints": items})
    return HTMLResponse(_page(app, items))


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI, every asset from this server."""
    app: FastAPI = request.app
    root = str(request.scope.get("root_path", "")).rstrip("/")
    static = root + DOCS_STATIC
    return get_swagger_ui_html(
        openapi_url=root + (app.openapi_url or "/openapi.json"),
        title=f"{app.title} - API",
        swagger_js_url=f"{static}/{_SWAGGER_JS}",
        swagger_css_url=f"{static}/{_SWAGGER_CSS}",
        swagger_favicon_url=f"{static}/{_FAVICON}",
        swagger_ui_parameters={"validatorUrl": None},
    )


def install(app: FastAPI) -> None:
    """Add ``/``, ``/docs`` and the Swagger UI assets to ``app`` (created with docs_url=None)."""
    app.include_router(router)
    app.mount(DOCS_STATIC, StaticFiles(directory=swagger_ui_path), name="swagger-ui")
