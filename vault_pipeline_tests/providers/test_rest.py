"""The REST provider client against mocked provider APIs (respx; no network, no real sleeping)."""

from __future__ import annotations

import email.utils
import json
import logging
import traceback
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from vault_pipeline.core.framing import decode_record
from vault_pipeline.providers.base import ProviderError
from vault_pipeline.providers.config import parse_config
from vault_pipeline.providers.factory import build_provider
from vault_pipeline.providers.rest import RestProvider
from vault_pipeline_tests.fixtures.rest_client import JSON, SINCE, UNTIL, URL, WINDOW, config, ok

TOKEN = "tok-3f9c1e0b-UNIQUE-SECRET-d41d8cd9"




def fetch(provider):
    return list(provider.fetch_pages(WINDOW))


def record_bytes(page):
    return [page.body[r.offset : r.offset + r.length] for r in page.framed.records]



def raises(pages_iter_or_provider) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        fetch(pages_iter_or_provider)
    return info.value


# -- record locations and byte exactness ------------------------------------------------------


def test_records_key_with_envelope_and_window_params(router, make):
    body = b'{"count": 2, "records": [{"eventID": "a"}, {"eventID": "b"}]}'
    route = router.get(URL).mock(return_value=ok(body))
    [page] = fetch(make())
    assert page.body == body
    assert record_bytes(page) == [b'{"eventID": "a"}', b'{"eventID": "b"}']
    assert page.framed.envelope == {"count": 2}
    assert page.number == 1 and page.content_type == "application/json"
    params = route.calls.last.request.url.params
    assert params["since"] == SINCE and params["until"] == UNTIL
    assert page.url.startswith(URL + "?")


def test_custom_window_params_and_records_key(router, make):
    body = b'{"items":[{"eventID":"a"}]}'
    route = router.get(URL).mock(return_value=ok(body))
    [page] = fetch(make(window_params={"start": "from", "end": "to"}, records="items"))
    assert route.calls.last.request.url.params["from"] == SINCE
    assert route.calls.last.request.url.params["to"] == UNTIL
    assert record_bytes(page) == [b'{"eventID":"a"}']


def test_top_level_array(router, make):
    body = b'[ {"eventID":"a"} ,\n {"eventID":"b"} ]'
    router.get(URL).mock(return_value=ok(body))
    [page] = fetch(make(records="$"))
    assert page.body == body
    assert record_bytes(page) == [b'{"eventID":"a"}', b'{"eventID":"b"}']


def test_ndjson(router, make):
    body = b'{"eventID":"a"}\r\n\n  {"eventID":"b"}\t\n'
    route = router.get(URL).mock(return_value=ok(body, **{"content-type": "application/x-ndjson"}))
    [page] = fetch(make(records="ndjson"))
    assert page.body == body
    assert record_bytes(page) == [b'{"eventID":"a"}', b'{"eventID":"b"}']
    assert "application/x-ndjson" in route.calls.last.request.headers["accept"]


def test_bodies_are_byte_exact(router, make):
    first = '{"eventID":"\u00e9\U0001f600\u2028","n":123456789012345678901234567890,"x":{"y":[null,{"z":null}]}}'
    second = '{ "eventID" : "\\ud83d\\ude00\\u00e9" ,\t"big": -18446744073709551617 , "f": 1.0e+2 }'
    body = ('{\r\n\t"records" :\n[ ' + first + ' ,\r\n\t\t' + second + '\n ] ,"next":null }  \n').encode("utf-8")
    router.get(URL).mock(return_value=ok(body))
    [page] = fetch(make())
    assert page.body == body
    assert record_bytes(page) == [first.encode("utf-8"), second.encode("utf-8")]
    values = [decode_record(piece) for piece in page.framed.slices(page.body)]
    assert values[0]["n"] == 123456789012345678901234567890
    assert values[1]["big"] == -(2**64) - 1
    assert values[1]["eventID"] == "\U0001f600\u00e9"
    assert values[0]["x"] == {"y": [None, {"z": None}]}


# -- pagination --------------------------------------------------------------------------------


def test_link_header_follows_absolute_and_relative_links(router, make):
    responses = [
        ok(b'{"records":[{"eventID":"1"}]}', link=f'<{URL}?since={SINCE}&until={UNTIL}&page=2>; rel="next"'),
        ok(b'{"records":[{"eventID":"2"}]}', link='</v1/events?page=3&since=x>; rel="next", <https://x.test/last>; rel="last"'),
        ok(b'{"records":[{"eventID":"3"}]}', link='<?page=4>; rel="next"'),
        ok(b'{"records":[{"eventID":"4"}]}', link='<https://x.test/first>; rel="first"'),
    ]
    route = router.get(URL).mock(side_effect=responses)
    pages = fetch(make(pagination={"type": "link_header"}))
    assert [p.number for p in pages] == [1, 2, 3, 4]
    urls = [str(call.request.url) for call in route.calls]
    assert urls[1].endswith("page=2")
    assert urls[2] == "https://api.example.test/v1/events?page=3&since=x"
    assert urls[3] == "https://api.example.test/v1/events?page=4"
    assert [p.url for p in pages] == urls


def test_link_header_repeating_next_link_fails(router, make):
    router.get(URL).mock(return_value=ok(b'{"records":[]}', link='</v1/events?page=2>; rel="next"'))
    provider = make(pagination={"type": "link_header"})
    error = raises(provider)
    assert "already returned" in str(error) and "page=2" in str(error)


def test_link_header_pointing_back_to_the_first_page_fails(router, make):
    first = f"{URL}?since={SINCE}&until={UNTIL}"
    responses = [ok(b'{"records":[]}', link='<?page=2>; rel="next"'), ok(b'{"records":[]}', link=f'<{first}>; rel="next"')]
    router.get(URL).mock(side_effect=responses)
    error = raises(make(pagination={"type": "link_header"}))
    assert "already returned" in str(error) and len(router.calls) == 2


def test_link_header_to_another_origin_is_refused_with_credentials(router, make):
    router.get(URL).mock(return_value=ok(b'{"records":[]}', link='<https://evil.test/steal>; rel="next"'))
    provider = make(pagination={"type": "link_header"}, auth={"type": "bearer", "token_env": "ACME_TOKEN"}, env={"ACME_TOKEN": TOKEN})
    error = raises(provider)
    assert "another origin" in str(error) and "evil.test" in str(error)
    assert len(router.calls) == 1  # the foreign origin was never contacted


@pytest.mark.parametrize("last", ['"next": null', '"next": ""', '"other": 1', '"meta": {"next": null}'])
def test_cursor_pagination_and_stop_conditions(router, make, last):
    responses = [
        ok(b'{"records":[{"eventID":"1"}],"next":"c2"}'),
        ok(b'{"next": 7, "records":[{"eventID":"2"}]}'),
        ok(('{"records":[{"eventID":"3"}],' + last + "}").encode()),
    ]
    route = router.get(URL).mock(side_effect=responses)
    pages = fetch(make(pagination={"type": "cursor", "field": "next", "param": "cursor"}))
    assert len(pages) == 3
    params = [call.request.url.params for call in route.calls]
    assert "cursor" not in params[0]
    assert [p.get("cursor") for p in params[1:]] == ["c2", "7"]
    assert all(p["since"] == SINCE and p["until"] == UNTIL for p in params)


def test_cursor_in_nested_member(router, make):
    responses = [ok(b'{"records":[],"meta":{"next":"n2"}}'), ok(b'{"records":[],"meta":{}}')]
    route = router.get(URL).mock(side_effect=responses)
    assert len(fetch(make(pagination={"type": "cursor", "field": "meta.next", "param": "after"}))) == 2
    assert route.calls.last.request.url.params["after"] == "n2"


def test_repeated_cursor_fails(router, make):
    responses = [ok(b'{"records":[],"next":"A"}'), ok(b'{"records":[],"next":"B"}'), ok(b'{"records":[],"next":"A"}')]
    router.get(URL).mock(side_effect=responses)
    error = raises(make(pagination={"type": "cursor", "field": "next", "param": "cursor"}))
    assert "cursor 'A' it had already returned" in str(error) and "acme" in str(error)


def test_page_pagination_stops_at_empty_page(router, make):
    def respond(request):
        number = int(request.url.params["p"])
        records = ",".join(f'{{"eventID":"{number}-{i}"}}' for i in range(2)) if number < 4 else ""
        return ok(f'{{"records":[{records}]}}')

    route = router.get(URL).mock(side_effect=respond)
    pages = fetch(make(pagination={"type": "page", "param": "p", "start": 2, "size_param": "limit", "page_size": 2}))
    assert [len(p.framed.records) for p in pages] == [2, 2, 0]
    assert [c.request.url.params["p"] for c in route.calls] == ["2", "3", "4"]
    assert all(c.request.url.params["limit"] == "2" for c in route.calls)


def test_page_pagination_detects_a_provider_repeating_its_last_page(router, make):
    router.get(URL).mock(return_value=ok(b'{"records":[{"eventID":"same"}]}'))
    error = raises(make(pagination={"type": "page", "param": "page"}))
    assert "same body" in str(error)


def test_max_pages_guard(router, make):
    counter = iter(range(1000))
    router.get(URL).mock(side_effect=lambda request: ok(f'{{"records":[],"next":"c{next(counter)}"}}'))
    provider = make(pagination={"type": "cursor", "field": "next", "param": "cursor", "max_pages": 3})
    pages = []
    with pytest.raises(ProviderError) as info:
        for page in provider.fetch_pages(WINDOW):
            pages.append(page)
    assert len(pages) == 3 and len(router.calls) == 3
    assert "max_pages=3" in str(info.value) and "acme" in str(info.value)


# -- auth ------------------------------------------------------------------------------------


def test_bearer_auth_and_plain_headers(router, make):
    route = router.get(URL).mock(return_value=ok(b'{"records":[]}'))
    fetch(make(auth={"type": "bearer", "token_env": "ACME_TOKEN"}, headers={"X-Tenant": "t1"}, env={"ACME_TOKEN": TOKEN}))
    headers = route.calls.last.request.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-tenant"] == "t1"


def test_header_auth(router, make):
    route = router.get(URL).mock(return_value=ok(b'{"records":[]}'))
    fetch(make(auth={"type": "header", "name": "X-Api-Key", "value_env": "ACME_KEY"}, env={"ACME_KEY": TOKEN}))
    headers = route.calls.last.request.headers
    assert headers["x-api-key"] == TOKEN and "authorization" not in headers


def test_no_auth_sends_no_credentials(router, make):
    route = router.get(URL).mock(return_value=ok(b'{"records":[]}'))
    fetch(make())
    assert "authorization" not in route.calls.last.request.headers


@pytest.mark.parametrize("env", [{}, {"ACME_TOKEN": ""}, {"ACME_TOKEN": "  "}])
def test_missing_secret_env_var(router, make, env):
    route = router.get(URL).mock(return_value=ok(b'{"records":[]}'))
    error = raises(make(auth={"type": "bearer", "token_env": "ACME_TOKEN"}, env=env))
    assert "ACME_TOKEN" in str(error) and "not set" in str(error) and "acme" in str(error)
    assert not route.called


def test_env_defaults_to_os_environ(router, monkeypatch, sleeps):
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    route = router.get(URL).mock(return_value=ok(b'{"records":[]}'))
    provider = RestProvider(config(auth={"type": "bearer", "token_env": "ACME_TOKEN"}), sleep=sleeps.append)
    fetch(provider)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


# -- retries and failures --------------------------------------------------------------------


def test_retry_after_seconds_on_429(router, make, sleeps):
    responses = [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(429, headers={"Retry-After": "0"}), ok(b'{"records":[]}')]
    route = router.get(URL).mock(side_effect=responses)
    assert len(fetch(make())) == 1
    assert sleeps == [3.0, 0.0] and route.call_count == 3


def test_retry_after_http_date_and_cap(router, make, sleeps):
    soon = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    responses = [
        httpx.Response(429, headers={"Retry-After": soon}),
        httpx.Response(503, headers={"Retry-After": past}),
        httpx.Response(429, headers={"Retry-After": "3600"}),
        ok(b'{"records":[]}'),
    ]
    router.get(URL).mock(side_effect=responses)
    fetch(make(retry={"max_attempts": 4, "backoff_max_s": 1.5}))
    assert 0 < sleeps[0] <= 2.0 and sleeps[1] == 0.0 and sleeps[2] == 6.0


def test_503_then_success_with_jittered_exponential_backoff(router, make, sleeps):
    responses = [httpx.Response(503), httpx.Response(502), httpx.Response(500), ok(b'{"records":[{"eventID":"a"}]}')]
    router.get(URL).mock(side_effect=responses)
    [page] = fetch(make(retry={"max_attempts": 4, "backoff_base_s": 1.0, "backoff_max_s": 3.0}))
    assert len(page.framed.records) == 1
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and 1.5 <= sleeps[2] <= 3.0


@pytest.mark.parametrize("failure", [httpx.ConnectError("connection refused"), httpx.ReadTimeout("read timed out")])
def test_transport_error_then_success(router, make, sleeps, failure):
    route = router.get(URL).mock(side_effect=[failure, ok(b'{"records":[]}')])
    assert len(fetch(make())) == 1
    assert route.call_count == 2 and len(sleeps) == 1


def test_gives_up_after_max_attempts(router, make, sleeps, caplog):
    route = router.get(URL).mock(return_value=httpx.Response(503, json={"error": "overloaded"}))
    with caplog.at_level(logging.WARNING, logger="vault_pipeline.providers.rest"):
        error = raises(make())
    assert route.call_count == 3 and len(sleeps) == 2
    text = str(error)
    assert error.retryable is True
    for part in ("'acme'", SINCE, UNTIL, URL, "3 attempt", "HTTP 503", "overloaded"):
        assert part in text
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_connect_error_exhausted(router, make):
    router.get(URL).mock(side_effect=httpx.ConnectError("connection refused"))
    error = raises(make())
    assert error.retryable and "ConnectError: connection refused" in str(error)


def test_timeout_comes_from_config(make):
    provider = make(retry={"timeout_s": 2.5})
    assert provider._client.timeout == httpx.Timeout(2.5)


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_rejected_are_not_retried(router, make, sleeps, status):
    route = router.get(URL).mock(return_value=httpx.Response(status))
    error = raises(make(auth={"type": "header", "name": "X-Api-Key", "value_env": "ACME_KEY"}, env={"ACME_KEY": TOKEN}))
    assert route.call_count == 1 and sleeps == [] and error.retryable is False
    assert "credentials rejected" in str(error) and "check the environment variable ACME_KEY" in str(error)
    assert URL in str(error)


def test_other_4xx_not_retried_and_explained(router, make, sleeps):
    route = router.get(URL).mock(return_value=httpx.Response(400, json={"error": "bad parameter since"}))
    error = raises(make())
    assert route.call_count == 1 and sleeps == [] and not error.retryable
    assert "HTTP 400" in str(error) and "bad parameter since" in str(error)


def test_redirect_not_followed(router, make):
    router.get(URL).mock(return_value=httpx.Response(301, headers={"Location": "https://elsewhere.test/"}))
    error = raises(make())
    assert "HTTP 301" in str(error) and "redirects are not followed" in str(error)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"records": [{"eventID": "a"}, ', "application/json", "truncated"),
        (b'{"records": [{"eventID": nope}]}', "application/json", "invalid JSON"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html; charset=utf-8", "response is not JSON (content-type text/html)"),
        (b'{"data": []}', "application/json", "no 'records' member"),
    ],
)
def test_unusable_body_keeps_the_bytes(router, make, sleeps, body, content_type, expected):
    route = router.get(URL).mock(return_value=httpx.Response(200, content=body, headers={"content-type": content_type}))
    error = raises(make())
    assert error.body == body and not error.retryable and route.call_count == 1
    assert expected in str(error) and URL in str(error) and "'acme'" in str(error)
    assert error.url.startswith(URL)


# -- secrets ---------------------------------------------------------------------------------


PASSWORD = "pw-5ecr3t-UNIQUE"
URL_KEY = "k3y-UNIQUE"


def failures(secret: str) -> dict[str, object]:
    """Every way a request can fail, each echoing ``secret`` back as a careless provider might."""
    echo = json.dumps({"error": f"token {secret} rejected"})
    return {
        "401": httpx.Response(401, content=echo, headers=JSON),
        "400": httpx.Response(400, content=echo, headers={"content-type": "text/plain"}),
        "503": httpx.Response(503, content=echo, headers=JSON),
        "html": httpx.Response(200, content=b"<html>oops</html>", headers={"content-type": "text/html"}),
        "bad": httpx.Response(200, content=f'{{"records": [{secret}]}}'.encode(), headers=JSON),
        "connect": httpx.ConnectError(f"failed with {secret}"),
        "foreign-next": ok(b'{"records":[]}', link=f'<https://evil.test/?token={secret}>; rel="next"'),
    }


@pytest.mark.parametrize(
    ("url", "auth", "secret"),
    [
        # api_key in the URL is a misconfiguration, but must not leak either (httpx logs URLs).
        (f"{URL}?api_key={URL_KEY}", {"type": "bearer", "token_env": "ACME_TOKEN"}, TOKEN),
        (f"{URL}?api_key={URL_KEY}", {"type": "header", "name": "X-Key", "value_env": "ACME_TOKEN"}, TOKEN),
        (f"https://svc:{PASSWORD}@api.example.test/v1/events?api_key={URL_KEY}", {"type": "none"}, PASSWORD),
    ],
)
def test_no_secret_in_any_error_or_log(router, make, caplog, url, auth, secret):
    texts = []
    with caplog.at_level(logging.DEBUG):
        for name, failure in failures(secret).items():
            router.routes.clear()
            router.get(url__startswith="https://api.example.test/").mock(side_effect=[failure] * 3)
            pagination = {"type": "link_header"} if name == "foreign-next" else {"type": "none"}
            provider = make(url=url, auth=auth, env={"ACME_TOKEN": TOKEN}, pagination=pagination)
            with pytest.raises(ProviderError) as info:
                fetch(provider)
            error = info.value
            texts += [str(error), repr(error), str(error.url), "".join(traceback.format_exception(error))]
    texts += [record.getMessage() for record in caplog.records]
    assert any(record.name == "httpx" for record in caplog.records)  # httpx's own URL log is covered
    assert any(record.levelno == logging.DEBUG and record.name.endswith("rest") for record in caplog.records)
    for text in texts:
        for leaked in (secret, URL_KEY):
            assert leaked not in text, text


def test_userinfo_in_url_becomes_basic_auth(router, make):
    route = router.get(URL).mock(return_value=ok(b'{"records":[]}'))
    [page] = fetch(make(url="https://svc:pw-UNIQUE@api.example.test/v1/events"))
    request = route.calls.last.request
    assert request.headers["authorization"] == httpx.BasicAuth("svc", "pw-UNIQUE")._auth_header
    assert request.url.userinfo == b"" and "pw-UNIQUE" not in page.url


def test_userinfo_and_auth_together_are_refused(router, make):
    error = raises(make(url="https://svc:pw@api.example.test/v1/events", auth={"type": "bearer", "token_env": "T"}, env={"T": TOKEN}))
    assert "user:password" in str(error) and not router.calls


# -- factory ---------------------------------------------------------------------------------


def test_factory_builds_rest_and_simulator():
    rest = build_provider(config(), sleep=lambda _: None, env={})
    assert isinstance(rest, RestProvider)
    rest.close()
    simulated = parse_config({"providers": {"sim": {"type": "simulator", "kind": "audit_event"}}}).provider("sim")
    from vault_pipeline.providers.simulator import SimulatorProvider

    assert isinstance(build_provider(simulated), SimulatorProvider)
