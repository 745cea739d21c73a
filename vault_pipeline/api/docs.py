"""The API's own documentation pages, served from the installed packages, never from a CDN.

FastAPI's default ``/docs`` loads Swagger UI from jsdelivr, so behind a firewall (or here) it is
a blank page. The Swagger UI bundle ships in the ``fastapi-offline`` package; this serves it
under ``/docs/assets`` and points ``/docs`` at it. (No ReDoc page: its bundle still fetches a
logo from redoc.ly.)

``/docs`` and ``/openapi.json`` need no key: they describe the API's shape (routes,
fields, error codes), never data, and a client needs the document before it has a key to try.
Every data endpoint still needs ``X-API-Key``; Swagger UI's "Authorize" button takes it.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) on ``app``, whose own docs must be switched off
    (``FastAPI(docs_url=None, redoc_url=None)``)."""
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        if not (ASSETS / name).is_file():  # a packaging change upstream: fail at start, not as a blank page
            raise RuntimeError(f"fastapi-offline no longer ships {name} under {ASSETS}; pin a version that does")
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )
