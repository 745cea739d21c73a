"""Hostile providers against the REST client (respx): each gets a clear failure, bounded in time
and memory, instead of a hang, a loop, a silent loss or a request somewhere it should not go.

Deep nesting and repeated members are refused (not retried) with the body kept; a response
that takes longer than ``response_timeout_s`` or is bigger than ``max_response_bytes`` ends;
a provider repeating a page is stopped whatever its pagination style; next links stay on the
provider's origin unless ``allowed_hosts`` says otherwise. The real-socket side (a provider
dripping bytes, SIGTERM) is in ``test_slow_providers.py``.
"""

from __future__ import annotations

import httpx
import pytest

from vault_pipeline.providers.base import ProviderError
from vault_pipeline_tests.fixtures.rest_client import JSON, SINCE, UNTIL, URL, WINDOW, ok

TOKEN = "tok-hostile-UNIQUE-SECRET-77c1"





def failure(provider) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        list(provider.fetch_pages(WINDOW))
    return info.value


def names_provider_window_url(error: ProviderError, url: str = URL) -> bool:
    text = str(error)
    return all(part in text for part in ("'acme'", SINCE, UNTIL, url))


# -- 1. deep nesting ---------------------------------------------------------------------------------


def test_deeply_nested_body_is_a_clear_non_retryable_error_with_the_body_kept(router, make, sleeps):
    body = b'{"records": [{"eventID": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    route = router.get(URL).mock(return_value=ok(body))
    error = failure(make())
    assert not isinstance(error.__cause__, RecursionError) and not error.retryable
    assert route.call_count == 1 and sleeps == []  # not retried
    assert error.body == body  # kept for the dead-letter zone
    assert names_provider_window_url(error) and "levels deep, more than the limit of 256" in str(error)
    assert "max_nesting_depth" in str(error)


def test_nesting_limit_is_configurable_and_inclusive(router, make):
    router.get(URL).mock(return_value=ok(b'{"records": [{"eventID": "a", "x": [[[1]]]}]}'))  # object, array, record, 3
    [page] = list(make(max_nesting_depth=6).fetch_pages(WINDOW))
    assert len(page.framed) == 1
    error = failure(make(max_nesting_depth=5))
    assert "6 levels deep, more than the limit of 5" in str(error) and not error.retryable


# -- 2. a repeated records member ---------------------------------------------------------------------


def test_repeated_records_member_refuses_the_page_instead_of_dropping_records(router, make, sleeps):
    body = b'{"records": [{"eventID": "first"}], "records": [{"eventID": "second"}]}'
    route = router.get(URL).mock(return_value=ok(body))
    error = failure(make())
    assert "member 'records' appears more than once" in str(error) and "ambiguous" in str(error)
    assert names_provider_window_url(error) and error.body == body and not error.retryable
    assert route.call_count == 1 and sleeps == []


# -- 3. the response deadline and the size bound ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_body_still_arriving_at_response_timeout_is_cut_off_and_retried_a_bounded_number_of_times(router, make, sleeps):
    clock = FakeClock()

    def dripping(_request):
        def chunks():
            for byte in b'{"records": [{"eventID": "a"}]}':
                clock.now += 1.0  # one byte a second
                yield bytes([byte])
        return httpx.Response(200, content=chunks(), headers=JSON)

    route = router.get(URL).mock(side_effect=dripping)
    error = failure(make(clock=clock, response_timeout_s=5, retry={"max_attempts": 2, "backoff_base_s": 0}))
    assert route.call_count == 2 and len(sleeps) == 1  # retried like a timeout, then it ends
    assert error.retryable and names_provider_window_url(error)
    assert "did not complete within response_timeout_s=5 s" in str(error) and "body bytes received" in str(error)


def test_a_prompt_body_within_the_deadline_is_fine(router, make):
    clock = FakeClock()
    router.get(URL).mock(return_value=ok(b'{"records": [{"eventID": "a"}]}'))
    [page] = list(make(clock=clock, response_timeout_s=5).fetch_pages(WINDOW))
    assert len(page.framed) == 1


@pytest.mark.parametrize("announce", [True, False])
def test_a_body_over_max_response_bytes_is_refused_without_holding_it(router, make, sleeps, announce):
    body = b'{"records": [' + b",".join([b'{"eventID": "x"}'] * 1000) + b"]}"
    if announce:
        response = ok(body)
    else:  # no Content-Length: the bound holds while reading
        response = httpx.Response(200, content=iter([body[i:i + 100] for i in range(0, len(body), 100)]), headers=JSON)
    route = router.get(URL).mock(return_value=response)
    error = failure(make(max_response_bytes=4096))
    assert "over max_response_bytes=4096" in str(error) and not error.retryable
    assert names_provider_window_url(error) and error.body is None and route.call_count == 1 and sleeps == []


# -- 4. repeated bodies, every pagination style -------------------------------------------------------


def test_link_header_paging_with_changing_urls_and_the_same_body_stops_at_the_repeat(router, make):
    counter = iter(range(2, 100_000))
    route = router.get(URL).mock(
        side_effect=lambda request: ok(b'{"records": [{"eventID": "same"}]}', link=f'<?page={next(counter)}>; rel="next"'))
    provider = make(pagination={"type": "link_header", "max_pages": 50})
    pages = []
    with pytest.raises(ProviderError) as info:
        for page in provider.fetch_pages(WINDOW):
            pages.append(page)
    assert len(pages) == 1 and route.call_count == 2  # not 50 (or 10,000) pages
    text = str(info.value)
    assert "page 2 has the same body" in text and "as page 1" in text and names_provider_window_url(info.value)
    assert not info.value.retryable


def test_page_paging_that_cycles_back_to_an_earlier_page_is_stopped(router, make):
    bodies = [b'{"records": [{"eventID": "a"}]}', b'{"records": [{"eventID": "b"}]}']
    route = router.get(URL).mock(side_effect=lambda request: ok(bodies[int(request.url.params["page"]) % 2]))
    error = failure(make(pagination={"type": "page", "param": "page", "max_pages": 50}))
    assert route.call_count == 3 and "page 3 has the same body" in str(error) and "as page 1" in str(error)
    assert "'acme'" in str(error) and SINCE in str(error)


def test_cursor_paging_that_serves_a_page_again_is_stopped_naming_the_page(router, make):
    responses = [ok(b'{"records": [], "next": "A"}'), ok(b'{"records": [], "next": "B"}'), ok(b'{"records": [], "next": "A"}')]
    route = router.get(URL).mock(side_effect=responses)
    error = failure(make(pagination={"type": "cursor", "field": "next", "param": "cursor", "max_pages": 50}))
    assert route.call_count == 3 and "page 3" in str(error) and "'acme'" in str(error) and SINCE in str(error)


def test_distinct_pages_still_page_through(router, make):
    responses = [ok(f'{{"records": [{{"eventID": "{n}"}}]}}', link=f'<?page={n + 1}>; rel="next"') for n in range(1, 4)]
    responses.append(ok(b'{"records": []}'))
    router.get(URL).mock(side_effect=responses)
    assert len(list(make(pagination={"type": "link_header"}).fetch_pages(WINDOW))) == 4


# -- 5. next links stay on the provider's origin ------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    ["https://evil.test/steal", "https://api.example.test:8443/v1/events?page=2", "http://api.example.test/v1/events?page=2"],
)
def test_next_link_off_origin_is_refused_without_credentials_too(router, make, link):
    route = router.get(URL).mock(return_value=ok(b'{"records": []}', link=f'<{link}>; rel="next"'))
    error = failure(make(pagination={"type": "link_header"}))  # auth: none
    assert "another origin" in str(error) and "allowed_hosts" in str(error) and not error.retryable
    assert "'acme'" in str(error) and route.call_count == 1 and len(router.calls) == 1  # never contacted


def test_allowed_hosts_let_paging_continue_on_the_hosts_listed(router, make):
    router.get(URL).mock(return_value=ok(b'{"records": [{"eventID": "1"}]}', link='<https://cdn.example.test/p2>; rel="next"'))
    router.get("https://cdn.example.test/p2").mock(
        return_value=ok(b'{"records": [{"eventID": "2"}]}', link='<https://cdn2.example.test:8443/p3>; rel="next"'))
    third = router.get("https://cdn2.example.test:8443/p3").mock(return_value=ok(b'{"records": [{"eventID": "3"}]}'))
    provider = make(pagination={"type": "link_header"}, allowed_hosts=["cdn.example.test", "cdn2.example.test:8443"],
                    auth={"type": "bearer", "token_env": "ACME_TOKEN"}, env={"ACME_TOKEN": TOKEN})
    assert len(list(provider.fetch_pages(WINDOW))) == 3
    assert third.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"  # listed hosts are trusted


@pytest.mark.parametrize(
    ("allowed", "link"),
    [
        (["cdn.example.test"], "https://cdn.example.test:8443/p2"),  # host listed, not that port
        (["cdn.example.test"], "http://cdn.example.test/p2"),  # never down from https to http
        (["cdn.example.test:8443"], "https://cdn.example.test/p2"),
        (["example.test"], "https://cdn.example.test/p2"),  # no suffix matching
    ],
)
def test_allowed_hosts_match_exactly(router, make, allowed, link):
    router.get(URL).mock(return_value=ok(b'{"records": []}', link=f'<{link}>; rel="next"'))
    error = failure(make(pagination={"type": "link_header"}, allowed_hosts=allowed))
    assert "another origin" in str(error) and len(router.calls) == 1
