"""A REST provider through the whole graph: byte-exact fidelity, late data, and bad responses."""

import hashlib
import json
import subprocess
import sys

import httpx
import pytest
import respx

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.framing import decode_record
from vault_pipeline.core.identity import log_id_for
from vault_pipeline.core.layout import snapshot_records_key
from vault_pipeline.core.processes import OWNER_FILE, claim_work_dir
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.defs.ingestion.landed import LandedPartition
from vault_pipeline_tests.fixtures.vault import check_results, materialization_metadata

URL = "https://provider.test/v1/events"
HOUR, NEXT_HOUR = "2026-01-01-05:00", "2026-01-01-06:00"

# Edge cases a vault must not alter: astral plane, combining marks, escapes (incl. escaped
# surrogate pairs), integers above 2**64, deep nesting with nulls, odd whitespace.
EDGE_RECORDS = [
    '{"eventID": "e-1", "eventTime": "2026-01-01T05:00:01Z", "eventName": "GetObject", "eventSource": "s3.amazonaws.com",'
    ' "awsRegion": "us-east-1", "userIdentity": {"type": "IAMUser", "userName": "🦄 Zoë e\u0301"}, "readOnly": true,'
    ' "bytes": 18446744073709551617, "huge": -123456789012345678901234567890}',
    '{ "eventID" : "e-2" ,\t"eventTime":"2026-01-01T05:10:00.123456Z","eventName":"Put\\u00e9\\ud83d\\ude00",'
    '"eventSource":"s3.amazonaws.com","awsRegion":"eu-west-1","userIdentity":{"type":"Root","userName":null},'
    '"readOnly":false,"nested":{"a":{"b":{"c":[null,{"d":null}]}}}, "float": 1.5e300 }',
    '{"eventID": "e-3", "eventTime": "2026-01-01T05:59:59.999999+00:00", "eventName": "Decrypt",\r\n'
    ' "eventSource": "kms.amazonaws.com", "awsRegion": "ap-southeast-2", "userIdentity": {"type": "AssumedRole",'
    ' "userName": "\\"quoted\\" \\\\ back\\/slash 李小龍 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"}, "readOnly": true, "errorCode": null}',
]


def _provider(**extra):
    return {"type": "rest", "kind": "audit_event", "url": URL, "records": "records", "lookback_hours": 0,
            "retry": {"max_attempts": 2, "backoff_base_s": 0, "backoff_max_s": 0}, **extra}


def _page(records: list[str]) -> bytes:
    return ('{"records":  [\n   ' + " ,\n\t".join(records) + '  ],\n "next": null }').encode("utf-8")


def test_edge_case_records_are_stored_and_indexed_byte_for_byte(vault):
    vault.write_providers({"acme": _provider()})
    body = _page(EDGE_RECORDS)
    with respx.mock(assert_all_called=True) as mock:
        mock.get(URL).mock(return_value=httpx.Response(200, content=body, headers={"content-type": "application/json"}))
        result = vault.run(HOUR, "acme")
    assert result.success, check_results(result)
    stored_key = f"raw/acme/2026/01/01/05/{hashlib.sha256(body).hexdigest()}.json"
    assert vault.store.get(stored_key) == body  # the page exactly as received
    for text in EDGE_RECORDS:
        sent = text.encode("utf-8")
        natural_id = json.loads(sent)["eventID"]
        entry = vault.catalog.get_record(log_id_for("acme", natural_id))
        assert entry is not None and entry.object_key == stored_key
        stored = vault.store.get_range(entry.object_key, entry.offset, entry.length)
        assert stored == sent
        assert entry.checksum == checksum(stored) == "sha256:" + hashlib.sha256(sent).hexdigest()
        assert decode_record(stored) == json.loads(sent)  # structurally identical, big ints exact
    assert decode_record(vault.store.get_range(entry.object_key, entry.offset, entry.length))
    first = vault.catalog.get_record(log_id_for("acme", "e-1"))
    assert decode_record(vault.store.get_range(first.object_key, first.offset, first.length))["bytes"] == 2**64 + 1


def test_landing_stages_its_snapshot_in_the_work_dir_and_leaves_nothing_there(vault):
    """The snapshot is written to a file of the landing's own under $VAULT_HOME/work as pages
    arrive (not held in memory), handed to the store whole, and the directory removed; one a
    landing killed with -9 left behind is swept by the next landing."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its pid runs nothing now
    stale = claim_work_dir(vault.home / "work", "landing")
    (stale / OWNER_FILE).write_text(json.dumps(json.loads((stale / OWNER_FILE).read_text()) | {"pid": finished.pid}))
    (stale / "landing-records.parquet").write_bytes(b"PAR1 half written")
    vault.write_providers({"acme": _provider()})
    with respx.mock(assert_all_called=True) as mock:
        mock.get(URL).mock(return_value=httpx.Response(200, content=_page(EDGE_RECORDS)))
        result = vault.run(HOUR, "acme")
    assert result.success, check_results(result)
    assert not stale.exists()
    assert not list((vault.home / "work").glob("landing-*"))
    landed = LandedPartition(vault.store, "acme", HourWindow.for_hour_key(HOUR))
    assert landed.row_count() == len(EDGE_RECORDS)
    assert sorted(landed.snapshot_table(["log_id"]).column("log_id").to_pylist()) == sorted(
        log_id_for("acme", json.loads(text)["eventID"]) for text in EDGE_RECORDS)


def test_a_record_delivered_twice_in_one_fetch_is_counted_once_as_a_duplicate(vault):
    vault.write_providers({"acme": _provider(lookback_hours=0)})
    with respx.mock() as mock:
        mock.get(URL).side_effect = [httpx.Response(200, content=_page([EDGE_RECORDS[0], EDGE_RECORDS[1], EDGE_RECORDS[0]]))]
        result = vault.run(HOUR, "acme")
    assert result.success, check_results(result)
    landing = materialization_metadata(result, "raw_landing")
    assert landing["duplicate_records_in_fetch"] == 1
    assert materialization_metadata(result, "record_index")["inserted"] == 2


def test_late_records_are_picked_up_by_the_lookback_and_duplicates_absorbed(vault):
    vault.write_providers({"acme": _provider(lookback_hours=1)})
    on_time = [EDGE_RECORDS[0], EDGE_RECORDS[1]]
    late = EDGE_RECORDS[2]  # event time 05:59:59, published after 06:00
    next_hour = ('{"eventID": "e-4", "eventTime": "2026-01-01T06:30:00Z", "eventName": "GetObject", "eventSource":'
                 ' "s3.amazonaws.com", "awsRegion": "us-east-1", "userIdentity": {"type": "IAMUser"}, "readOnly": true}')
    with respx.mock() as mock:
        route = mock.get(URL)
        route.side_effect = [
            httpx.Response(200, content=_page(on_time)),  # hour 05 (window 04:00-06:00)
            httpx.Response(200, content=_page(on_time + [late, next_hour])),  # hour 06 (window 05:00-07:00)
        ]
        first = vault.run(HOUR, "acme")
        second = vault.run(NEXT_HOUR, "acme")
        assert route.calls[0].request.url.params["since"] == "2026-01-01T04:00:00Z"
        assert route.calls[1].request.url.params["until"] == "2026-01-01T07:00:00Z"
    assert first.success and second.success, (check_results(first), check_results(second))
    index = materialization_metadata(second, "record_index")
    assert (index["inserted"], index["unchanged"]) == (2, 2)  # the late record and e-4; e-1/e-2 absorbed
    late_entry = vault.catalog.get_record(log_id_for("acme", "e-3"))
    assert late_entry.partition == f"{NEXT_HOUR}|acme" and late_entry.timestamp.startswith("2026-01-01T05:59:59")
    assert vault.catalog.get_watermark("acme").startswith("2026-01-01T06:30:00")
    assert vault.lake.count("audit_events", provider="acme") == 4
    assert check_results(second)["integrity_clean"]


@pytest.mark.parametrize(
    "response, cause",
    [
        (httpx.Response(200, content=b'{"records": [{"eventID": "x"}, {"eventID": '), "truncated"),
        (httpx.Response(200, content=b"<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"}), "not JSON"),
        (httpx.Response(200, content=b'{"records": [1, 2,, 3]}'), "invalid JSON"),
        (httpx.Response(401, content=b'{"error": "nope"}'), "401"),
        (httpx.Response(403, content=b"forbidden"), "403"),
        (httpx.Response(200, content=b'{"records": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}"), "levels deep"),
        (httpx.Response(200, content=b'{"records": [{"eventID": "x"}], "records": [{"eventID": "y"}]}'),
         "appears more than once"),
    ],
)
def test_a_bad_response_fails_the_partition_clearly_and_loses_nothing(vault, response, cause, monkeypatch):
    monkeypatch.setenv("ACME_TOKEN", "s3cr3t-token-value")
    vault.write_providers({"acme": _provider(auth={"type": "bearer", "token_env": "ACME_TOKEN"})})
    with respx.mock() as mock:
        mock.get(URL).mock(return_value=httpx.Response(200, content=_page(EDGE_RECORDS[:2])))
        assert vault.run(HOUR, "acme").success  # an earlier, good partition
        indexed_before = vault.catalog.count_records()
        mock.get(URL).mock(return_value=response)
        result = vault.run(NEXT_HOUR, "acme")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.to_string())
    assert "acme" in message and URL in message and "2026-01-01T06:00:00Z" in message and cause in message
    assert "s3cr3t-token-value" not in message
    assert vault.catalog.count_records() == indexed_before  # nothing half-ingested
    assert vault.catalog.count_records(partition=f"{NEXT_HOUR}|acme") == 0
    letters = vault.catalog.list_dead_letters(partition=f"{NEXT_HOUR}|acme")
    assert letters and letters[0].stage == "landing"
    if response.status_code == 200:  # the unusable body is kept for forensics
        assert vault.store.get(letters[0].object_key) == response.content
    # no snapshot of the failed hour, and its staging directory is gone with it
    assert not vault.store.exists(snapshot_records_key("acme", HourWindow.for_hour_key(NEXT_HOUR)))
    assert not list((vault.home / "work").glob("landing-*"))
    # the earlier partition is untouched and still verifies
    for entry in vault.catalog.iter_partition_records(f"{HOUR}|acme"):
        assert checksum(vault.store.get_range(entry.object_key, entry.offset, entry.length)) == entry.checksum


def test_each_pagination_style_lands_every_page(vault):
    vault.write_providers({"acme": _provider(pagination={"type": "cursor", "field": "next", "param": "cursor"})})
    pages = [
        ('{"records": [' + EDGE_RECORDS[0] + '], "next": "c2"}').encode(),
        ('{"records": [' + EDGE_RECORDS[1] + '], "next": "c3"}').encode(),
        ('{"records": [' + EDGE_RECORDS[2] + '], "next": null}').encode(),
    ]
    with respx.mock() as mock:
        mock.get(URL).side_effect = [httpx.Response(200, content=p) for p in pages]
        result = vault.run(HOUR, "acme")
    assert result.success, check_results(result)
    landing = materialization_metadata(result, "raw_landing")
    assert (landing["pages"], landing["records"]) == (3, 3)
    for page in pages:
        assert vault.store.get(f"raw/acme/2026/01/01/05/{hashlib.sha256(page).hexdigest()}.json") == page


# -- hostile providers (issue 8) -----------------------------------------------------------------------


def _no_step_retry_delay(monkeypatch):
    """Dagster's step retry policy waits 2 s, 4 s, ...; what is under test is whether it retries."""
    import dagster as dg

    from vault_pipeline.defs.ingestion import assets

    monkeypatch.setattr(assets, "NETWORK_RETRY", dg.RetryPolicy(max_retries=assets.NETWORK_RETRY.max_retries, delay=0))


def _step_failure(result) -> str:
    return next(str(e.event_specific_data.error.to_string()) for e in result.all_events
                if e.event_type_value == "STEP_FAILURE")


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"eventID": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
        b'{"records": [{"eventID": "x"}], "next": null, "records": []}',
    ],
    ids=["deep-nesting", "repeated-records-member"],
)
def test_a_hostile_body_is_refused_once_not_retried(vault, monkeypatch, body):
    _no_step_retry_delay(monkeypatch)
    vault.write_providers({"acme": _provider(retry={"max_attempts": 3, "backoff_base_s": 0, "backoff_max_s": 0})})
    with respx.mock() as mock:
        route = mock.get(URL).mock(return_value=httpx.Response(200, content=body))
        result = vault.run(HOUR, "acme")
    assert not result.success and route.call_count == 1  # neither the client nor Dagster retried it
    message = _step_failure(result)
    assert "RecursionError" not in message and "acme" in message and URL in message
    assert vault.catalog.count_records() == 0
    [letter] = vault.catalog.list_dead_letters(partition=f"{HOUR}|acme")
    assert letter.stage == "landing" and vault.store.get(letter.object_key) == body
    assert letter.detail["retryable"] is False


def test_a_provider_repeating_its_page_behind_new_links_fails_the_partition_at_the_repeat(vault, monkeypatch):
    _no_step_retry_delay(monkeypatch)
    vault.write_providers({"acme": _provider(pagination={"type": "link_header"})})
    pages = iter(range(2, 100_000))
    body = _page(EDGE_RECORDS[:1])
    with respx.mock() as mock:
        route = mock.get(URL).mock(side_effect=lambda request: httpx.Response(
            200, content=body, headers={"link": f'<{URL}?page={next(pages)}>; rel="next"'}))
        result = vault.run(HOUR, "acme")
    assert not result.success and route.call_count == 2
    message = _step_failure(result)
    assert "page 2 has the same body" in message and "as page 1" in message and "2026-01-01T05:00:00Z" in message
    assert vault.catalog.count_records() == 0


def test_an_interrupt_while_fetching_fails_the_partition_at_once_instead_of_retrying(vault, monkeypatch):
    _no_step_retry_delay(monkeypatch)
    vault.write_providers({"acme": _provider()})
    requests = []

    def interrupted(request):  # what SIGTERM does to a blocked read: Dagster's handler raises inside it
        requests.append(request)
        raise KeyboardInterrupt

    with respx.mock(assert_all_called=False) as mock:  # respx records no call whose side effect raised
        mock.get(URL).mock(side_effect=interrupted)
        result = vault.run(HOUR, "acme")
    assert not result.success and len(requests) == 1  # Dagster used to turn this into a step retry
    message = _step_failure(result)
    assert "interrupted (SIGTERM/SIGINT) while fetching page 1" in message and "nothing of this run was indexed" in message
    assert vault.catalog.count_records() == 0
