"""The analytics dashboard at ``/dashboard``: sign-in with an API key, then cards, charts,
drill-down to a record's verified bytes, alerts and exports, all served by ``vault serve`` itself.

``register_dashboard`` puts it on ``create_app``'s app when the API has a session secret. Pages
are Jinja2 templates (autoescaped), the behaviour is one static script, and the charts are
plotly.js served from the installed ``plotly`` package: nothing loads from the internet, no
script is inline, so every dashboard response carries a strict self-only Content-Security-Policy
and ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import threading
from importlib import metadata
from pathlib import Path

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from vault_pipeline.api.dashboard.routes import register_routes
from vault_pipeline.api.dashboard.sessions import SessionManager

HERE = Path(__file__).parent
# Two exact style attribute values plotly.js sets are allowed by hash, nothing else inline: an empty
# one (colour bar cells) and its pixelated-image support probe (heatmaps). 'unsafe-hashes' admits
# only attributes whose text hashes to one of them.
_PLOTLY_STYLE_ATTRIBUTES = ("", "".join(f"image-rendering: {v}; " for v in (
    "optimizeSpeed", "-moz-crisp-edges", "-o-crisp-edges", "-webkit-optimize-contrast", "optimize-contrast",
    "crisp-edges", "pixelated")))
_STYLE_HASHES = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(v.encode()).digest()).decode()}'"
                         for v in _PLOTLY_STYLE_ATTRIBUTES)
CSP = (f"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-hashes' {_STYLE_HASHES}; "
       "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin")]


class DashboardHeaders:
    """Security headers on every ``/dashboard`` response, errors included; data is never cached."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/dashboard" or path.startswith("/dashboard/")):
            return await self.app(scope, receive, send)
        static = path.startswith(("/dashboard/static/", "/dashboard/vendor/"))

        async def secured(message):
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", [])) + [h for h in _HEADERS if h[0] not in names]
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)


class _Plotly:
    """plotly.min.js from the installed package, gzipped once (4.8 MB -> about 1.4 MB on the wire).

    plotly.js injects ``<style>`` elements, which a strict CSP blocks. It has a way out that is
    used here: an element ``#plotly.js-style-global.no-inline-styles`` makes it skip its own
    rules, which then come from a stylesheet built from the same bundle's rules (so they always
    match the installed version); the bundled map library's style block is skipped when an
    element with its id exists, so the page carries such a placeholder.
    """

    def __init__(self) -> None:
        import plotly

        self.path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        self.version = metadata.version("plotly")
        self._plain: bytes | None = None
        self._gzipped: bytes | None = None
        self.css = ""
        self.placeholder_ids: list[str] = []
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._plain is not None:
                return
            plain = self.path.read_bytes()
            text = plain.decode("utf-8", "replace")
            self.css = _plotly_css(text)
            self.placeholder_ids = sorted(set(re.findall(
                r'getElementById\("([0-9a-f]{64})"\)\)\{var \w+=document\.createElement\("style"\)', text)))
            self._gzipped = gzip.compress(plain, compresslevel=6)
            self._plain = plain

    def response(self, request: Request) -> Response:
        self.load()
        headers = {"Cache-Control": "public, max-age=604800, immutable", "Vary": "Accept-Encoding",
                   "ETag": f'"plotly-{self.version}"'}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(self._gzipped, media_type="text/javascript", headers=headers | {"Content-Encoding": "gzip"})
        return Response(self._plain, media_type="text/javascript", headers=headers)


def _plotly_css(bundle: str) -> str:
    """plotly.js's own style rules (the ``{"X,X div": ...}`` table its addStyleRule feeds on) as CSS."""
    start = bundle.find('{"X,X div":')
    if start < 0:
        return ""
    table = bundle[start:bundle.find("}", start)]
    rules = []
    for selector, single, double in re.findall(r'"((?:[^"\\]|\\.)*)":(?:\'((?:[^\'\\]|\\.)*)\'|"((?:[^"\\]|\\.)*)")',
                                                 table):
        full = re.sub(r"^,", " ,", selector).replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        rules.append(f"{full}{{{single or double}}}")
    return "\n".join(rules) + "\n"


def register_dashboard(app: FastAPI, api, requires=None, api_error=None) -> None:
    """The dashboard's pages, data routes and assets on ``app`` (``api.session_secret`` signs its
    sessions). ``requires``/``api_error`` are create_app's conventions; the dashboard authenticates
    by its session cookie instead, and answers its own JSON errors in the same shape."""
    if not api.session_secret:
        raise ValueError("the dashboard needs api.session_secret to sign its sessions")
    sessions = SessionManager(api.session_secret)
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                   undefined=jinja2.StrictUndefined)
    plotly_js = _Plotly()
    plotly_url = f"/dashboard/vendor/plotly.min.js?v={plotly_js.version}"

    @app.get("/dashboard/vendor/plotly.min.js", include_in_schema=False)
    def plotly_script(request: Request) -> Response:
        return plotly_js.response(request)

    @app.get("/dashboard/vendor/plotly.css", include_in_schema=False)
    def plotly_styles() -> Response:
        plotly_js.load()
        return Response(plotly_js.css, media_type="text/css",
                        headers={"Cache-Control": "public, max-age=604800, immutable"})

    register_routes(app, api, sessions, templates, plotly_url, plotly_js)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.add_middleware(DashboardHeaders)
