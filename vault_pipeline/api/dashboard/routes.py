"""The dashboard's HTTP routes: sign-in and sign-out, the page, its JSON data routes and exports.

Pages answer a missing or expired session with a 303 to the sign-in form; the data routes
(``/dashboard/data/*``) with JSON 401, so the page's script can send the user to sign in.
Every state-changing POST needs the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) on top of the SameSite=Strict cookie; the sign-in form carries its own
token. None of these routes is in the OpenAPI document: they are the dashboard's, not the API's.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from vault_pipeline.api.dashboard.queries import PRESETS, DashboardError, DashboardQueries, resolve_view
from vault_pipeline.api.dashboard.sessions import COOKIE_PATH, LOGIN_COOKIE, SESSION_COOKIE, Session, SessionManager
from vault_pipeline.api.pagination import LogSearch
from vault_pipeline.core.report_model import FORMATS
from vault_pipeline.reports.service import (
    ReportAlteredError,
    ReportNotFoundError,
    ReportNotReadyError,
    ReportRequestError,
)

log = logging.getLogger(__name__)

SIGN_IN_FAILED = "Sign-in failed. Check the key; the dashboard needs a key with the read or audit role."
VIEW_FIELDS = ("preset", "start", "end", "provider")


def _error(status: int, code: str, detail: object) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status)


def _view_query(params: dict[str, str]) -> str:
    return urlencode({k: params[k] for k in VIEW_FIELDS if params.get(k)})


def _safe_next(target: str | None) -> str:
    """Only a path of the dashboard itself: a sign-in never redirects anywhere else."""
    if not target:
        return "/dashboard"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/dashboard") or target.startswith("//") \
            or "\\" in target or parts.path.startswith("/dashboard/login"):
        return "/dashboard"
    return target


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the body limit middleware caps its size)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


def _same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused even with a token."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def register_routes(app: FastAPI, api, sessions: SessionManager, templates, plotly_url: str, plotly_js) -> None:
    queries = DashboardQueries(api, getattr(app.state, "analytics_cache", None))  # shared with /api/v1/analytics
    search = LogSearch(api.catalog)
    app.state.dashboard_sessions = sessions  # tests reach the live registry through this
    app.state.dashboard_queries = queries

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        plotly_js.load()
        html = templates.get_template(name).render(plotly_url=plotly_url, plotly_placeholders=plotly_js.placeholder_ids,
                                                   **context)
        return HTMLResponse(html, status)

    def session_of(request: Request) -> Session | None:
        session = sessions.read(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            request.state.principal = session.name  # the access log names who looked
        return session

    def data_session(request: Request, role: str = "read") -> Session | JSONResponse:
        session = session_of(request)
        if session is None:
            return _error(401, "unauthorized", "no dashboard session (or it expired): sign in at /dashboard/login")
        if not session.may(role):
            return _error(403, "forbidden", f"this needs the role {role}")
        return session

    def sign_in_page(request: Request, status: int = 200, message: str | None = None,
                     next_url: str = "/dashboard") -> HTMLResponse:
        nonce, token = sessions.login_token()
        response = render(request, "login.html", status, csrf_token=token, message=message, next_url=next_url)
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path=COOKIE_PATH, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    def to_sign_in(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/dashboard/login?{urlencode({'next': target})}", 303)

    # sign-in / sign-out ---------------------------------------------------------------------
    @app.get("/dashboard/login", include_in_schema=False)
    def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query's name
        if session_of(request) is not None:
            return RedirectResponse(_safe_next(next), 303)
        return sign_in_page(request, next_url=_safe_next(next))

    @app.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        next_url = _safe_next(form.get("next"))
        if not _same_origin(request) or not sessions.login_ok(request.cookies.get(LOGIN_COOKIE),
                                                               form.get("csrf_token")):
            return sign_in_page(request, 403, "The sign-in form expired or came from elsewhere; please try again.",
                                next_url)
        principal = api.keys.authenticate(form.get("api_key") or None)
        if principal is None or not (principal.may("read") or principal.may("audit")):
            if principal is not None:
                request.state.principal = principal.name  # an authentic key without the role: name it in the log
            return sign_in_page(request, 401, SIGN_IN_FAILED, next_url)
        request.state.principal = principal.name
        _session, cookie = sessions.issue(principal)
        response = RedirectResponse(next_url, 303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=int(sessions.ttl_s), path=COOKIE_PATH, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
        return response

    async def checked_post(request: Request) -> tuple[Session | None, dict[str, str], Response | None]:
        """The session and form of a state-changing POST, or the refusal to send."""
        session = session_of(request)
        form = await _form(request)
        if session is None:
            return None, form, _error(401, "unauthorized", "no dashboard session: sign in at /dashboard/login")
        token = request.headers.get("x-csrf-token") or form.get("csrf_token")
        if not _same_origin(request) or not sessions.csrf_ok(session, token):
            return session, form, _error(403, "csrf_failed", "missing or wrong CSRF token: reload the dashboard")
        return session, form, None

    @app.post("/dashboard/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session, _form_fields, refusal = await checked_post(request)
        if refusal is not None:
            return refusal
        sessions.revoke(session)
        response = RedirectResponse("/dashboard/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return response

    # the page ---------------------------------------------------------------------------------
    @app.get("/dashboard", include_in_schema=False)
    def dashboard(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_sign_in(request)
        params = dict(request.query_params)
        try:
            view = resolve_view(params, api.clock())
            problem = None
        except DashboardError as exc:
            view, problem = None, exc.detail
        return render(request, "dashboard.html", session=session, csrf_token=session.csrf, params=params,
                      presets=list(PRESETS), view=view, problem=problem, reports=api.reports is not None,
                      may_audit=session.may("audit"), report_id=params.get("report"), view_query=_view_query(params))

    @app.get("/dashboard/", include_in_schema=False)
    def dashboard_slash(request: Request) -> Response:
        return RedirectResponse("/dashboard" + (f"?{request.url.query}" if request.url.query else ""), 307)

    # data ---------------------------------------------------------------------------------------
    def data(request: Request, call, role: str = "read") -> Response:
        session = data_session(request, role)
        if isinstance(session, Response):
            return session
        try:
            return JSONResponse(call(session))
        except DashboardError as exc:
            return _error(exc.status, exc.code, exc.detail)

    @app.get("/dashboard/data/overview", include_in_schema=False)
    def overview(request: Request) -> Response:
        return data(request, lambda _s: queries.overview(resolve_view(dict(request.query_params), api.clock())))

    @app.get("/dashboard/data/version", include_in_schema=False)
    def version(request: Request) -> Response:
        return data(request, lambda _s: {"version": queries.version(resolve_view(dict(request.query_params),
                                                                                  api.clock()))})

    @app.get("/dashboard/data/hour", include_in_schema=False)
    def hour(request: Request, hour: str = "") -> Response:
        return data(request, lambda _s: queries.hour(hour))

    @app.get("/dashboard/data/records", include_in_schema=False)
    def records(request: Request, provider: str = "", hour: str = "", offset: int = 0) -> Response:
        if not provider or len(provider) > 64 or not 0 <= offset <= 10_000_000:
            return _error(422, "invalid_request", {"parameter": "provider/offset", "msg": "a provider and an offset"})
        return data(request, lambda _s: queries.records(provider, hour, offset, search))

    @app.get("/dashboard/data/record/{log_id}", include_in_schema=False)
    def record(request: Request, log_id: str) -> Response:
        return data(request, lambda s: queries.record(log_id, may_audit=s.may("audit")))

    @app.get("/dashboard/data/record/{log_id}/raw", include_in_schema=False)
    def record_raw(request: Request, log_id: str) -> Response:
        session = data_session(request, "audit")
        if isinstance(session, Response):
            return session
        try:
            entry, data_bytes = queries.verified_bytes(log_id)
        except DashboardError as exc:
            return _error(exc.status, exc.code, exc.detail)
        return Response(data_bytes, media_type="application/json", headers={
            "X-Vault-Checksum": entry.checksum, "Content-Disposition": f'attachment; filename="{log_id}.json"'})

    @app.get("/dashboard/data/export.csv", include_in_schema=False)
    def export_csv(request: Request) -> Response:
        session = data_session(request)
        if isinstance(session, Response):
            return session
        try:
            view = resolve_view(dict(request.query_params), api.clock())
            overview_data = queries.overview(view)
        except DashboardError as exc:
            return _error(exc.status, exc.code, exc.detail)
        name = f"vault-dashboard-{view['start']:%Y%m%dT%H%M}-{view['end']:%Y%m%dT%H%M}.csv"
        return Response(overview_csv(overview_data), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/dashboard/reports", include_in_schema=False)
    async def compliance_report(request: Request) -> Response:
        session, form, refusal = await checked_post(request)
        if refusal is not None:
            return refusal
        if not session.may("audit"):
            return _error(403, "forbidden", "compliance reports need the audit role")
        if api.reports is None:
            return _error(404, "reports_unavailable", "this vault serves no compliance reports")
        try:
            view = resolve_view(form, api.clock())
            report = api.reports.create(start=view["start"], end=view["end"], sections=None,
                                        formats=["pdf", "html", "csv"], requested_by=session.name)
        except DashboardError as exc:
            return _error(exc.status, exc.code, exc.detail)
        except ReportRequestError as exc:
            return _error(422, exc.code, {"parameter": exc.parameter, "msg": exc.msg})
        except RuntimeError as exc:  # the report queue is full
            return _error(429, "queue_full", str(exc))
        url = f"/dashboard/reports/{report.report_id}"
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"report_id": report.report_id, "status": report.status, "url": url}, 202)
        query = _view_query(form)
        return RedirectResponse(f"/dashboard?{query}&report={report.report_id}".replace("?&", "?"), 303)

    # A report requested here is read here too, by the session (the API's routes want X-API-Key).
    @app.get("/dashboard/reports/{report_id}", include_in_schema=False)
    def report_status(request: Request, report_id: str) -> Response:
        session = data_session(request, "audit")
        if isinstance(session, Response):
            return session
        if api.reports is None:
            return _error(404, "reports_unavailable", "this vault serves no compliance reports")
        try:
            state = api.reports.status(report_id)
        except ReportNotFoundError:
            return _error(404, "report_not_found", f"no report {report_id}")
        forms = {f: f"/dashboard/reports/{report_id}/export?format={f}" for f in state.get("formats") or []}
        return JSONResponse({k: state.get(k) for k in ("report_id", "status", "error", "version", "digest",
                                                       "period_start", "period_end")} | {"exports": forms})

    @app.get("/dashboard/reports/{report_id}/export", include_in_schema=False)
    def report_export(request: Request, report_id: str, format: str = "pdf") -> Response:  # noqa: A002
        session = data_session(request, "audit")
        if isinstance(session, Response):
            return session
        if api.reports is None:
            return _error(404, "reports_unavailable", "this vault serves no compliance reports")
        if format not in FORMATS:
            return _error(422, "invalid_request", {"parameter": "format", "msg": f"one of {', '.join(FORMATS)}"})
        try:
            data_bytes, media_type, checksum = api.reports.export(report_id, format)
        except ReportNotFoundError:
            return _error(404, "report_not_found", f"no report {report_id}")
        except ReportNotReadyError as exc:
            return _error(409, "report_not_ready", f"{exc}: try again in a few seconds")
        except ReportRequestError as exc:
            return _error(404, exc.code, exc.msg)
        except ReportAlteredError as exc:
            return _error(409, "checksum_mismatch", str(exc))
        return Response(data_bytes, media_type=media_type, headers={
            "X-Vault-Checksum": checksum, "Content-Disposition": f'attachment; filename="{report_id}.{format}"'})


def overview_csv(data: dict[str, Any]) -> str:
    """The view as one long table (section, key, field, value): the range, the cards' metrics,
    the time series, and every provider's figures; numbers unrounded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "key", "field", "value"])
    view = data["range"]
    for field in ("start", "end", "provider", "interval"):
        writer.writerow(["range", "view", field, "" if view[field] is None else view[field]])
    for metric in data["metrics"]:
        for field in ("value", "change_percent"):
            writer.writerow(["metric", metric["metric_name"], field, _cell(metric[field])])
    for name in ("requests", "latency_p95_ms"):
        for point in data["series"][name]:
            writer.writerow(["timeseries", point["timestamp"], name, _cell(point["value"])])
    for provider in data["providers"]:
        for field in ("total_requests", "successful_requests", "failed_requests", "avg_latency_ms",
                      "p95_latency_ms", "total_tokens", "total_cost_usd", "request_share"):
            writer.writerow(["provider", provider["provider_id"] or "", field, _cell(provider[field])])
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)
