"""The simulator provider: deterministic, realistic, awkward records, late data, paging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from vault_pipeline.core.framing import decode_record, frame_records
from vault_pipeline.core.windows import HourWindow, parse_timestamp
from vault_pipeline.providers.config import KINDS, parse_config
from vault_pipeline.providers.simulator import SimulatorProvider

HOUR = HourWindow.for_hour_key("2026-01-01-05:00")
NEXT_HOUR_TOO = HourWindow(HOUR.start, HOUR.end + timedelta(hours=1))  # [H, H+2)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}")


def _provider(name="sim", **settings) -> SimulatorProvider:
    entry = {"type": "simulator", "kind": "audit_event", "records_per_hour": 300, "seed": 1, **settings}
    return SimulatorProvider(parse_config({"providers": {name: entry}}).provider(name))


def _pages(provider, window=HOUR):
    return list(provider.fetch_pages(window))


def _spans(provider, window=HOUR) -> list[bytes]:
    return [span for page in _pages(provider, window) for span in page.framed.slices(page.body)]


def _records(provider, window=HOUR) -> list[dict]:
    return [decode_record(span) for span in _spans(provider, window)]


def _walk(value, depth=0):
    """(depth, value) of every value nested in ``value``."""
    yield depth, value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, depth + 1)


def _flawed(kind: str, record: dict) -> bool:
    """The invalid-record flaws the simulator module describes, per kind."""
    if kind == "audit_event":
        return record.get("readOnly") == "yes" or record.get("eventName") is None or "eventTime" not in record
    if kind == "generation_event":
        return (record["latency_ms"] < 0 or record["model"] is None or isinstance(record["tokens"]["total"], str)
                or not all(isinstance(t, str) for t in record["techniques_applied"]))
    if kind == "jailbreak_test":
        return (record["test_type"] not in ("autodan", "gptfuzz") or record["asr_rate"] > 1
                or isinstance(record["iterations"], str) or record["target"]["model"] is None)
    if kind == "agent_result":
        return (record["status"] == "exploded" or record["agent_name"] is None
                or record["output"]["passed"] > record["output"]["test_count"])
    return record["status"] == "exploded" or record["duration_ms"] < 0 or record["suite"] is None


# -- determinism ---------------------------------------------------------------------------


def test_same_seed_provider_and_hour_give_identical_bytes():
    first = [page.body for page in _pages(_provider(page_size=100))]
    again = [page.body for page in _pages(_provider(page_size=100))]
    assert len(first) == 3
    assert first == again


@pytest.mark.parametrize(
    "change",
    [
        {"settings": {"seed": 2}},
        {"name": "sim2"},
        {"window": HourWindow.for_hour_key("2026-01-01-06:00")},
    ],
)
def test_another_seed_provider_or_hour_gives_other_bytes(change):
    base = b"".join(p.body for p in _pages(_provider()))
    provider = _provider(change.get("name", "sim"), **change.get("settings", {}))
    other = b"".join(p.body for p in _pages(provider, change.get("window", HOUR)))
    assert other != base
    assert not set(_spans(provider, change.get("window", HOUR))) & set(_spans(_provider()))


def test_pages_are_framed_consistently_with_their_bytes():
    for page in _pages(_provider(page_size=120)):
        framed = frame_records(page.body, "records")
        assert framed.records == page.framed.records
        assert framed.envelope == {"page": page.number}
        assert page.url == f"simulator://sim/2026-01-01-05:00?page={page.number}"
        assert page.content_type == "application/json"


# -- record shape --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_carries_its_id_and_time_fields(kind):
    provider = _provider(kind=kind, invalid_fraction=0.0)
    id_field, time_field = provider.config.natural_id_field, provider.config.event_time_field
    spans = _spans(provider)
    records = [decode_record(span) for span in spans]
    assert 250 < len(records) <= 300
    for span, record in zip(spans, records, strict=True):
        assert span.startswith(f'{{"{id_field}": "'.encode())
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", record[id_field])
        assert HOUR.contains(parse_timestamp(record[time_field]))
    assert len({r[id_field] for r in records}) == len(records)


def test_custom_id_and_time_fields_are_used():
    records = _records(_provider(kind="test_result", id_field="uuid", time_field="at", invalid_fraction=0.0))
    assert records and all("uuid" in r and "at" in r and "id" not in r and "finished_at" not in r for r in records)


@pytest.mark.parametrize("kind", KINDS)
def test_records_contain_astral_plane_unicode(kind):
    provider = _provider(kind=kind)
    strings = [v for r in _records(provider) for _, v in _walk(r) if isinstance(v, str)]
    assert any(ord(ch) > 0xFFFF for s in strings for ch in s)
    body = b"".join(p.body for p in _pages(provider))
    assert b"\xf0" in body  # as raw 4-byte UTF-8 ...
    assert re.search(rb"\\ud8[0-3][0-9a-f]\\ud[c-f][0-9a-f]{2}", body)  # ... and as an escaped surrogate pair


def test_records_contain_combining_marks():
    strings = [v for r in _records(_provider()) for _, v in _walk(r) if isinstance(v, str)]
    assert any("e\u0301" in s for s in strings)


@pytest.mark.parametrize("kind", ["audit_event", "generation_event"])
def test_records_contain_integers_above_2_64_decoded_exactly(kind):
    records = _records(_provider(kind=kind))
    big = [v for r in records for _, v in _walk(r) if type(v) is int and v > 2**64]
    assert big
    assert all(type(v) is int for v in big)  # never silently a float
    if kind == "audit_event":
        assert 18446744073709551617 in big or 2**70 + 3 in big


@pytest.mark.parametrize("kind", KINDS)
def test_records_contain_nested_nulls(kind):
    records = _records(_provider(kind=kind))
    assert any(v is None and depth >= 2 for r in records for depth, v in _walk(r))


@pytest.mark.parametrize("kind", ["audit_event", "test_result"])
def test_records_contain_email_addresses(kind):
    strings = [v for r in _records(_provider(kind=kind)) for _, v in _walk(r) if isinstance(v, str)]
    assert any(EMAIL.fullmatch(s) for s in strings)


# -- invalid records -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_fraction_controls_how_many_records_are_flawed(kind):
    clean = _records(_provider(kind=kind, invalid_fraction=0.0))
    broken = _records(_provider(kind=kind, invalid_fraction=1.0))
    some = _records(_provider(kind=kind, invalid_fraction=0.25, records_per_hour=2000))
    assert sum(_flawed(kind, r) for r in clean) == 0
    assert sum(_flawed(kind, r) for r in broken) == len(broken) > 0
    share = sum(_flawed(kind, r) for r in some) / len(some)
    assert 0.12 < share < 0.4


def test_invalid_records_are_still_valid_json_objects_with_ids():
    for record in _records(_provider(kind="generation_event", invalid_fraction=1.0)):
        assert isinstance(record, dict) and record["id"]


# -- time and lateness ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_event_times_fall_within_the_hour(kind):
    provider = _provider(kind=kind, records_per_hour=500, invalid_fraction=0.0)
    times = [parse_timestamp(r[provider.config.event_time_field]) for r in _records(provider)]
    assert times and all(HOUR.contains(t) for t in times)
    assert times == sorted(times)  # provider order is time order
    assert max(times) - min(times) > timedelta(minutes=45)  # spread over the hour


def _hour_spans(provider, window, hour=HOUR):
    field = provider.config.event_time_field
    return [s for s in _spans(provider, window) if hour.contains(parse_timestamp(decode_record(s)[field]))]


def _is_subsequence(short, long) -> bool:
    items = iter(long)
    return all(any(x == y for y in items) for x in short)


def test_late_records_are_withheld_until_a_later_window():
    provider = _provider(kind="generation_event", records_per_hour=2000)
    on_time = _spans(provider, HOUR)
    later = _hour_spans(provider, NEXT_HOUR_TOO)
    assert len(on_time) < 2000  # some were published after the hour closed
    assert len(later) == 2000  # a window reaching into the next hour sees all of them
    assert set(on_time) < set(later)
    assert _is_subsequence(on_time, later)  # the very same bytes, in the same order


def test_lookback_of_the_same_hour_sees_the_same_bytes():
    # Partition H fetches [H-1, H+1): its hour-H records are exactly the hour's own fetch.
    provider = _provider(kind="audit_event", records_per_hour=1500, invalid_fraction=0.0)
    previous_hour = HourWindow(HOUR.start - timedelta(hours=1), HOUR.start)
    assert _hour_spans(provider, HOUR.with_lookback(1)) == _spans(provider, HOUR)
    assert _hour_spans(provider, HOUR.with_lookback(1), previous_hour)  # the earlier hour is there too


def test_next_partitions_lookback_keeps_the_hours_ids():
    # Partition H+1 fetches [H, H+2): hour H again, now with its late records. Every record
    # partition H landed must come back with the same natural id, or its log_id would change.
    provider = _provider(kind="audit_event", records_per_hour=1500, invalid_fraction=0.0)
    next_partition = HourWindow.for_hour_key("2026-01-01-06:00").with_lookback(1)
    assert next_partition == NEXT_HOUR_TOO
    own_ids = [decode_record(s)["eventID"] for s in _spans(provider, HOUR)]
    again_ids = [decode_record(s)["eventID"] for s in _hour_spans(provider, next_partition)]
    assert len(again_ids) > len(own_ids)
    assert set(own_ids) <= set(again_ids)


# -- paging --------------------------------------------------------------------------------


def test_page_size_is_respected():
    provider = _provider(records_per_hour=1000, page_size=128)
    pages = _pages(provider)
    sizes = [len(p.framed.records) for p in pages]
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert all(size == 128 for size in sizes[:-1])
    assert 0 < sizes[-1] <= 128
    assert sum(sizes) == len(_spans(_provider(records_per_hour=1000, page_size=5000)))


def test_an_empty_hour_yields_one_empty_page():
    [page] = _pages(_provider(records_per_hour=0))
    assert page.number == 1 and page.framed.records == []
    assert frame_records(page.body, "records").envelope == {"page": 1}


# -- distributions the analytics rely on -----------------------------------------------------


def _day(kind, **settings):
    provider = _provider(kind=kind, invalid_fraction=0.0, records_per_hour=600, **settings)
    records = []
    for hour in range(24):
        window = HourWindow.for_hour_key(f"2026-01-01-{hour:02d}:00")
        records += [dict(r, _hour=hour) for r in _records(provider, window)]
    return records


def test_generation_latencies_are_long_tailed_floats():
    latencies = sorted(r["latency_ms"] for r in _day("generation_event"))
    assert all(isinstance(v, float) and v > 0 for v in latencies)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    assert 300 < p50 < 3000 and p99 > 5 * p50


def test_generation_failures_cluster_by_vendor_and_hour():
    infra = {"rate_limited", "timeout", "server_error", "context_length_exceeded"}
    cells: dict[tuple[str, int], list[bool]] = {}
    for r in _day("generation_event"):
        cells.setdefault((r["provider"], r["_hour"]), []).append(r["error_code"] in infra)
    rates = sorted(sum(v) / len(v) for v in cells.values() if len(v) >= 30)
    assert rates[len(rates) // 2] < 0.08  # a typical vendor-hour barely fails ...
    assert rates[-1] > 0.2  # ... an incident hour fails a lot


def test_techniques_succeed_at_different_rates():
    outcome: dict[str, list[bool]] = {}
    for r in _day("generation_event"):
        assert all(isinstance(t, str) for t in r["techniques_applied"])
        assert r["tokens_used"] == r["tokens"]["total"] and r["prompt_length"] > 0
        for technique in r["techniques_applied"]:
            outcome.setdefault(technique, []).append(r["success"])
    rates = {t: sum(v) / len(v) for t, v in outcome.items()}
    assert len(rates) == 6 and max(rates.values()) - min(rates.values()) > 0.2
    assert max(rates, key=rates.get) == "many_shot" and min(rates, key=rates.get) == "payload_splitting"


def test_jailbreak_campaigns_are_consistent():
    records = _day("jailbreak_test")
    assert {r["test_type"] for r in records} == {"autodan", "gptfuzz"}
    for r in records:
        assert 0 <= r["successful_mutations"] <= r["iterations"]
        assert r["asr_rate"] == pytest.approx(r["successful_mutations"] / r["iterations"], abs=1e-6)
        assert r["test_id"]
