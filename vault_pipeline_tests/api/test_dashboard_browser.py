"""The dashboard in a real browser (Debian's chromium through Playwright), offline: signing in,
cards that equal the analytics API, filters, the drill-down to a record's verified bytes, the CSV
export, a phone-sized screen, signing out. Every test also checks that the page made no request
beyond loopback and logged no console error (a CSP violation would be one)."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest

from vault_pipeline.api.dashboard.sessions import SESSION_COOKIE

CARDS = ("total_requests", "success_rate", "avg_latency_ms")


def _sign_in(page, dashboard, principal: str, path: str = "/dashboard") -> None:
    page.goto(dashboard.base_url + path)
    assert "/dashboard/login" in page.url  # no session yet: sent to sign in
    page.get_by_label("API key").fill(dashboard.keys[principal])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("body[data-loaded]", state="attached", timeout=15_000)


def _cards(page) -> dict[str, dict[str, str]]:
    return {name: {"value": page.get_attribute(f"#card-{name}", "data-value"),
                   "change": page.get_attribute(f"#card-{name}", "data-change"),
                   "text": page.inner_text(f"#card-{name} .card-value")} for name in CARDS}


def _api_metrics(dashboard, start: str, end: str, provider: str | None = None) -> dict[str, dict]:
    params = {"start_date": start, "end_date": end, **({"provider": provider} if provider else {})}
    response = dashboard.api_get("/api/v1/analytics/metrics", **params)
    assert response.status_code == 200, response.text
    return {m["metric_name"]: m for m in response.json()}


def _assert_cards_equal(cards, metrics) -> None:
    for name in CARDS:
        expected = metrics[name]
        assert float(cards[name]["value"]) == pytest.approx(expected["value"]), name
        change = cards[name]["change"]
        assert (change == "" and expected["change_percent"] is None) or \
            float(change) == pytest.approx(expected["change_percent"]), name
    assert cards["total_requests"]["text"] == f"{int(metrics['total_requests']['value']):,}"


def _assert_clean(offline_page) -> None:
    assert offline_page.refused == [], "the page tried to reach beyond loopback"
    assert offline_page.console_errors == []
    assert offline_page.failed == []


def test_sign_in_refuses_a_bad_key_then_lands_on_the_dashboard(dashboard, offline_page):
    page = offline_page.page
    page.goto(dashboard.base_url + "/dashboard?preset=7d")
    assert "/dashboard/login" in page.url
    page.get_by_label("API key").fill("not-a-key-of-this-vault")
    page.get_by_role("button", name="Sign in").click()
    assert "Sign-in failed" in page.get_by_role("alert").inner_text()
    assert dashboard.keys["reader"] not in page.content()
    # the refusal is a real 401 (so the access log shows a failed sign-in); the browser reports it
    assert offline_page.console_errors == ["Failed to load resource: the server responded with a status of 401 "
                                           "(Unauthorized)"]
    offline_page.console_errors.clear()
    offline_page.failed.clear()
    page.get_by_label("API key").fill(dashboard.keys["reader"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("body[data-loaded]", state="attached", timeout=15_000)
    assert page.url.endswith("/dashboard?preset=7d")  # back to the view asked for
    assert page.get_by_role("heading", name="Key metrics").is_visible()
    assert page.input_value("#preset") == "7d"
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read the session
    _assert_clean(offline_page)


def test_cards_equal_the_api_and_the_filters_change_them(dashboard, offline_page):
    page = offline_page.page
    _sign_in(page, dashboard, "reader")
    _assert_cards_equal(_cards(page), _api_metrics(dashboard, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"))

    # a custom range whose previous period has data: the trend is the API's change_percent
    page.select_option("#preset", "custom")
    page.fill("#start", "2026-01-01T04:00")
    page.fill("#end", "2026-01-01T06:00")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_selector("body[data-loaded]", state="attached")
    assert "start=2026-01-01T04%3A00" in page.url  # the view is in the URL, so it can be linked
    two_hours = _api_metrics(dashboard, "2026-01-01T04:00:00Z", "2026-01-01T06:00:00Z")
    assert two_hours["total_requests"]["change_percent"] is not None
    _assert_cards_equal(_cards(page), two_hours)
    assert "against the previous period" in page.inner_text("#card-total_requests .card-trend")

    # one LLM provider
    providers = [o for o in page.locator("#provider option").all_inner_texts() if o != "All providers"]
    assert len(providers) >= 2
    before = _cards(page)
    page.select_option("#provider", providers[0])
    page.get_by_role("button", name="Apply").click()
    page.wait_for_selector("body[data-loaded]", state="attached")
    filtered = _cards(page)
    assert filtered["total_requests"]["value"] != before["total_requests"]["value"]
    _assert_cards_equal(filtered, _api_metrics(dashboard, "2026-01-01T04:00:00Z", "2026-01-01T06:00:00Z",
                                               providers[0]))
    assert page.get_attribute("#card-provider_usage", "data-value") not in (None, "")
    _assert_clean(offline_page)


def test_drill_down_from_a_chart_point_to_a_records_verified_bytes(dashboard, offline_page):
    page = offline_page.page
    _sign_in(page, dashboard, "operator", "/dashboard?preset=custom&start=2026-01-01T02:00&end=2026-01-01T08:00")
    # click the 04:00 point of the requests line (the busiest hour: both pipeline providers)
    point = page.locator("#chart-timeseries .scatterlayer .trace").first.locator(".point").nth(2)
    point.click(force=True)
    page.wait_for_selector("#hour-providers")
    assert "2026-01-01 04:00" in page.inner_text("#crumbs")
    partitions = page.locator("#hour-providers code").all_inner_texts()
    assert partitions == ["2026-01-01-04:00|llm", "2026-01-01-04:00|llm_b"]
    page.get_by_role("button", name="Records of llm_b").click()
    page.wait_for_selector("#records")
    assert "of 30" in page.inner_text("#drill-body")
    first = page.locator("#records button.link").first
    log_id = first.inner_text()
    first.click()
    page.wait_for_selector("#raw-bytes")
    shown = page.inner_text("#raw-bytes")
    raw = dashboard.api_get(f"/v1/logs/{log_id}/raw", "operator")
    assert raw.status_code == 200
    assert shown == raw.content.decode("utf-8")
    body = page.inner_text("#drill-body")
    assert raw.headers["x-vault-checksum"] in body and "verified against the catalog checksum" in body
    proof = dashboard.api_get(f"/v1/logs/{log_id}/proof", "operator").json()
    assert proof["merkle_root"] in body
    assert page.inner_text("#golden-decision") in ("clean", "masked")
    # the download link serves the exact bytes, with the checksum
    download = page.request.get(f"{dashboard.base_url}/dashboard/data/record/{log_id}/raw")
    assert download.body() == raw.content and download.headers["x-vault-checksum"] == raw.headers["x-vault-checksum"]
    _assert_clean(offline_page)


def test_a_read_only_key_sees_records_but_never_their_bytes(dashboard, offline_page):
    page = offline_page.page
    _sign_in(page, dashboard, "reader", "/dashboard?preset=custom&start=2026-01-01T02:00&end=2026-01-01T08:00")
    page.locator("figure:has(#chart-timeseries) summary").click()  # the chart's text alternative
    page.locator("#table-timeseries button", has_text="2026-01-01 03:00").click()
    page.get_by_role("button", name="Records of llm", exact=True).click()
    page.locator("#records button.link").first.click()
    page.wait_for_selector("#raw-unavailable")
    assert "audit role" in page.inner_text("#raw-unavailable")
    assert page.locator("#raw-bytes").count() == 0
    log_id = page.locator("#drill-body code").first.inner_text()
    refused = page.request.get(f"{dashboard.base_url}/dashboard/data/record/{log_id}/raw")
    assert refused.status == 403 and refused.json()["error"] == "forbidden"
    record = page.request.get(f"{dashboard.base_url}/dashboard/data/record/{log_id}").json()
    assert "base64" not in record["raw"] and record["golden"]["promoted"] is True
    _assert_clean(offline_page)


def test_export_downloads_a_csv_of_the_view_with_the_apis_numbers(dashboard, offline_page):
    page = offline_page.page
    _sign_in(page, dashboard, "reader", "/dashboard?preset=custom&start=2026-01-01T04:00&end=2026-01-01T06:00")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert re.fullmatch(r"vault-dashboard-20260101T0400-20260101T0600\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    metrics = _api_metrics(dashboard, "2026-01-01T04:00:00Z", "2026-01-01T06:00:00Z")
    exported = {(r["key"], r["field"]): r["value"] for r in rows if r["section"] == "metric"}
    for name, metric in metrics.items():
        assert float(exported[(name, "value")]) == pytest.approx(metric["value"])
    series = {r["key"]: float(r["value"]) for r in rows if r["section"] == "timeseries" and r["field"] == "requests"}
    assert sum(series.values()) == metrics["total_requests"]["value"]
    providers = dashboard.api_get("/api/v1/analytics/providers", start_date="2026-01-01T04:00:00Z",
                                  end_date="2026-01-01T06:00:00Z").json()
    for provider in providers:
        assert int(next(r["value"] for r in rows if r["section"] == "provider" and r["key"] == provider["provider_id"]
                        and r["field"] == "total_requests")) == provider["total_requests"]
    _assert_clean(offline_page)


def test_a_phone_sized_screen_has_no_horizontal_overflow(dashboard, offline_page):
    page = offline_page.page
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, dashboard, "operator", "/dashboard?preset=custom&start=2026-01-01T02:00&end=2026-01-01T08:00")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # the widest content there is: a record with its checksum, proof and raw bytes
    page.locator("figure:has(#chart-timeseries) summary").click()
    page.locator("#table-timeseries button", has_text="2026-01-01 05:00").click()
    page.get_by_role("button", name="Records of llm", exact=True).click()
    page.locator("#records button.link").first.click()
    page.wait_for_selector("#raw-bytes")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # everything that acts is reachable from the keyboard and labelled
    for control in ("#preset", "#provider", "#sign-out", "#export-csv"):
        page.focus(control)
        assert page.evaluate(f"document.activeElement === document.querySelector('{control}')"), control
    unlabelled = page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select')]
        .filter(e => !e.labels || e.labels.length === 0).map(e => e.id)""")
    assert unlabelled == []
    _assert_clean(offline_page)


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(dashboard, offline_page):
    page = offline_page.page
    _sign_in(page, dashboard, "reader")
    copied = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/dashboard/login")
    assert all(c["name"] != SESSION_COOKIE for c in page.context.cookies())
    page.goto(dashboard.base_url + "/dashboard")
    assert "/dashboard/login" in page.url
    stale = httpx.get(f"{dashboard.base_url}/dashboard/data/overview", cookies={SESSION_COOKIE: copied})
    assert stale.status_code == 401
    _assert_clean(offline_page)


def test_a_compliance_report_for_the_range_is_generated_and_downloaded(dashboard, offline_page):
    page = offline_page.page
    _sign_in(page, dashboard, "auditor", "/dashboard?preset=custom&start=2026-01-01T04:00&end=2026-01-01T06:00")
    page.get_by_role("button", name="Compliance report for this range").click()
    pdf_link = page.get_by_role("link", name="PDF")
    pdf_link.wait_for(timeout=60_000)  # generated in the background, then offered
    with page.expect_download() as info:
        pdf_link.click()
    data = open(info.value.path(), "rb").read()
    assert data.startswith(b"%PDF")
    report_id = re.search(r"rpt_[0-9a-f]{20}", info.value.suggested_filename).group(0)
    exported = dashboard.api_get(f"/api/v1/analytics/reports/{report_id}/export", principal="auditor", format="pdf")
    assert exported.status_code == 200 and exported.content == data  # the same stored, verified bytes
    report = dashboard.api_get(f"/api/v1/analytics/reports/{report_id}", principal="auditor").json()
    assert (report["period_start"], report["period_end"]) == ("2026-01-01T04:00:00Z", "2026-01-01T06:00:00Z")
    assert report["requested_by"] == "auditor"
    _assert_clean(offline_page)
