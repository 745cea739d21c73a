"""The dashboard's sessions over plain HTTP: signing in and out, forged, tampered and expired
cookies, CSRF on every state-changing POST, and the headers that keep its pages locked down."""

from __future__ import annotations

import os
import stat
import time
from urllib.parse import unquote

import pytest
from itsdangerous import URLSafeTimedSerializer

from vault_pipeline.api.auth import Principal
from vault_pipeline.api.dashboard.sessions import SESSION_COOKIE, SessionManager
from vault_pipeline.api.server import session_secret
from vault_pipeline_tests.fixtures.dashboard import DashboardClient

READER = Principal("reader", frozenset({"read"}))


def _cookie_header(response, name: str) -> str:
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(name + "="))


def test_a_good_key_gets_a_locked_down_session_cookie_that_never_holds_the_key(dashboard, dashboard_client):
    response = dashboard_client.sign_in("operator")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = _cookie_header(response, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert dashboard.keys["operator"] not in cookie and dashboard.keys["operator"] not in unquote(cookie)
    page = dashboard_client.http.get("/dashboard")
    assert page.status_code == 200 and "operator" in page.text
    assert dashboard.keys["operator"] not in page.text  # the key never comes back in a page
    headers = page.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # no inline script, so the strict policy holds


def test_a_bad_key_is_refused_with_a_generic_message_and_logged(dashboard, dashboard_client):
    refused = dashboard_client.sign_in(key="key-that-does-not-exist-anywhere")
    assert refused.status_code == 401 and "Sign-in failed" in refused.text
    assert SESSION_COOKIE not in refused.cookies
    # a real key lacking the read role gets the very same answer
    ingest_only = dashboard_client.sign_in("ingester")
    assert ingest_only.status_code == 401 and "Sign-in failed" in ingest_only.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = dashboard.api.catalog.list_access(limit=50)
        failed = [e for e in entries if e.path == "/dashboard/login" and e.method == "POST" and e.status == 401]
        if len(failed) >= 2:
            break
        time.sleep(0.05)
    assert {e.principal for e in failed} >= {"anonymous", "ingester"}


def test_without_a_session_pages_redirect_and_data_routes_answer_json_401(dashboard):
    with dashboard.client() as http:
        page = http.get("/dashboard?preset=7d&provider=openai")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/dashboard/login?next=")
        assert "preset%3D7d" in page.headers["location"]  # back to the same view after signing in
        data = http.get("/dashboard/data/overview")
        assert data.status_code == 401 and data.json()["error"] == "unauthorized"
        assert http.get("/api/v1/analytics/metrics", params={"start_date": "2026-01-01T00:00:00Z",
                                                             "end_date": "2026-01-02T00:00:00Z"}).status_code == 401


def test_forged_tampered_and_expired_cookies_are_refused(dashboard, dashboard_client):
    dashboard_client.sign_in("reader")
    real = dashboard_client.http.cookies[SESSION_COOKIE]
    sessions: SessionManager = dashboard.app.state.dashboard_sessions
    payload = URLSafeTimedSerializer(dashboard.secret, salt="vault-dashboard-session").loads(real)
    forged_elsewhere = URLSafeTimedSerializer(b"another-secret-of-32-bytes-long!", salt="vault-dashboard-session")
    promoted = payload | {"roles": ["admin"]}
    _, expired = sessions.issue(READER, now=time.time() - 9 * 3600)
    candidates = {
        "tampered": real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB"),
        "forged with another secret": forged_elsewhere.dumps(promoted),
        "roles edited, old signature": forged_elsewhere.dumps(promoted).split(".")[0] + "." + real.split(".", 1)[1],
        "expired": expired,
        "garbage": "not-a-cookie",
    }
    with dashboard.client() as http:
        for name, value in candidates.items():
            http.cookies.set(SESSION_COOKIE, value, path="/dashboard")
            assert http.get("/dashboard").status_code == 303, name
            assert http.get("/dashboard/data/overview").status_code == 401, name
    assert dashboard_client.http.get("/dashboard").status_code == 200  # the genuine one still works


def test_sign_out_needs_the_csrf_token_and_kills_the_cookie_for_good(dashboard, dashboard_client):
    dashboard_client.sign_in("reader")
    token = dashboard_client.csrf()
    copied = dashboard_client.http.cookies[SESSION_COOKIE]
    assert dashboard_client.http.post("/dashboard/logout").status_code == 403
    assert dashboard_client.http.post("/dashboard/logout", data={"csrf_token": "wrong"}).status_code == 403
    foreign = dashboard_client.http.post("/dashboard/logout", data={"csrf_token": token},
                                         headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert dashboard_client.http.get("/dashboard").status_code == 200  # none of those signed it out
    out = dashboard_client.http.post("/dashboard/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    with dashboard.client() as http:  # a copy of the cookie taken before signing out
        http.cookies.set(SESSION_COOKIE, copied, path="/dashboard")
        assert http.get("/dashboard").status_code == 303
        assert http.get("/dashboard/data/overview").status_code == 401


def test_report_requests_and_sign_in_need_their_tokens(dashboard, dashboard_client):
    dashboard_client.sign_in("admin")
    assert dashboard_client.http.post("/dashboard/reports", data={"preset": "24h"}).status_code == 403
    assert 'id="report-form"' in dashboard_client.http.get("/dashboard").text  # audit (admin): the button
    reader = DashboardClient(dashboard)
    try:
        reader.sign_in("reader")
        assert 'id="report-form"' not in reader.http.get("/dashboard").text  # read only: no button
        refused = reader.http.post("/dashboard/reports", data={"preset": "24h", "csrf_token": reader.csrf()})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    finally:
        reader.close()
    with dashboard.client() as http:  # a sign-in posted from elsewhere carries no form token
        refused = http.post("/dashboard/login", data={"api_key": dashboard.keys["admin"]})
        assert refused.status_code == 403 and SESSION_COOKIE not in refused.cookies


def test_plotly_comes_from_the_installed_package(dashboard):
    import plotly

    shipped = (os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"))
    with dashboard.client() as http:
        response = http.get("/dashboard/vendor/plotly.min.js")
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert response.content == open(shipped, "rb").read()  # httpx undid the gzip


def test_session_manager_expires_sessions_by_its_clock():
    now = [1_000_000.0]
    sessions = SessionManager(b"s" * 32, ttl_s=3600, clock=lambda: now[0])
    session, cookie = sessions.issue(READER)
    assert sessions.read(cookie) == session and session.may("read") and not session.may("audit")
    now[0] += 3599
    assert sessions.read(cookie) is not None
    now[0] += 2
    assert sessions.read(cookie) is None
    with pytest.raises(ValueError):
        SessionManager(b"short")


def test_the_session_secret_is_generated_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("VAULT_SESSION_SECRET", raising=False)
    first = session_secret(tmp_path)
    assert len(first) == 32 and session_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "session-secret").stat().st_mode) == 0o600
    monkeypatch.setenv("VAULT_SESSION_SECRET", "x" * 40)
    assert session_secret(tmp_path) == b"x" * 40
    monkeypatch.setenv("VAULT_SESSION_SECRET", "short")
    with pytest.raises(SystemExit, match="at least 32"):
        session_secret(tmp_path)
