"""The API documentation works with no internet: Swagger UI comes from the installed package."""

from __future__ import annotations

import httpx


def test_swagger_ui_renders_every_operation_with_no_network(vault_service_factory, offline_page):
    service = vault_service_factory(stack="embedded")
    page = offline_page.page

    page.goto(f"{service.base_url}/docs", wait_until="networkidle")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)

    assert "vault_pipeline audit vault" in page.inner_text(".swagger-ui .info .title")
    operations = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
    assert "/v1/ingest" in operations and "/v1/logs/{log_id}/raw" in operations
    assert page.locator(".swagger-ui .authorize").count() == 1  # where the X-API-Key goes
    assert offline_page.refused == [], "the page tried to load from outside"
    assert offline_page.failed == [] and offline_page.console_errors == []


def test_the_docs_pages_point_at_assets_the_server_itself_serves(vault_service_factory):
    service = vault_service_factory(stack="embedded")
    html = httpx.get(f"{service.base_url}/docs").text
    assert "cdn.jsdelivr.net" not in html and "/docs/assets/swagger-ui-bundle.js" in html
    bundle = httpx.get(f"{service.base_url}/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    document = httpx.get(f"{service.base_url}/openapi.json")  # no key: the shape of the API, never data
    assert document.status_code == 200 and "/v1/ingest" in document.json()["paths"]
    assert httpx.get(f"{service.base_url}/redoc").status_code == 404  # its bundle would fetch from redoc.ly
