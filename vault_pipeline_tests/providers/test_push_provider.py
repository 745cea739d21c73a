"""Scenario: CI jobs and agents push results to the vault's door, and the hour's run fetches them.

``PushService.accept`` keeps an accepted body byte-exact in ``inbox/{provider}/YYYY/MM/DD/HH/``
with its ``PushContext`` and a pointer by push id; it refuses whatever the graph could not use,
keeping a refused *body* under ``dlq/`` with a dead letter (refused *query values* and providers
store nothing). ``PushProvider.fetch_pages`` then hands each pushed body of the window to landing
as one page: the exact bytes, the spans of its cases, in the order the pushes were received.
A body pushed twice is one push; the same body with other metadata is a conflict; a body
changed in the inbox after it was accepted is what the fetch reports. No Dagster here: the
object store, the catalog and the configuration are the product's own ports on a temp dir.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from vault_pipeline.core.junit import parse_junit
from vault_pipeline.core.windows import HourWindow
from vault_pipeline.providers.base import ProviderError
from vault_pipeline.providers.config import parse_config
from vault_pipeline.providers.factory import build_provider
from vault_pipeline.providers.push import PushProvider
from vault_pipeline.push.service import (
    AGENT_EXECUTION,
    TEST_RUN,
    PushNotFound,
    PushParameters,
    PushRefused,
    PushService,
)
from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog
from vault_pipeline_tests.fixtures import junit_files
from vault_pipeline_tests.fixtures.junit_files import PRODUCERS, junit_file

HOUR = "2026-01-01-05:00"
WINDOW = HourWindow.for_hour_key(HOUR)
NOW = datetime(2026, 1, 1, 6, 5, tzinfo=UTC)  # the door's clock: hour 06, after the runs of hour 05
QUERY = PushParameters(suite="unit", commit="abc123", branch="main", build=42, started_at="2026-01-01T05:10:00Z")
PROVIDERS = {
    "ci": {"type": "push", "kind": "test_result"},
    "agents": {"type": "push", "kind": "agent_result"},
    "small": {"type": "push", "kind": "test_result", "max_body_bytes": 200},
    "pulled": {"type": "simulator", "kind": "test_result"},
}
TWO_CASES = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="shop" tests="2" failures="1">
  <testcase classname="shop.Checkout" name="pays" time="0.1"/>
  <testcase classname="shop.Checkout" name="refunds" time="0.2"><failure message="503">boom</failure></testcase>
</testsuite>
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Door:
    """The push door and the push provider over one vault directory."""

    def __init__(self, tmp_path) -> None:
        self.store = LocalObjectStore(tmp_path / "objects")
        self.catalog = SqliteCatalog(tmp_path / "catalog.db")
        self.config = parse_config({"providers": PROVIDERS})
        self.clock = Clock(NOW)
        self.service = PushService(store=self.store, catalog=self.catalog, config=lambda: self.config,
                                   clock=self.clock)

    def push(self, body: bytes, parameters: PushParameters = QUERY, *, provider: str = "ci", what: str = TEST_RUN,
             content_type: str | None = None, sent_by: str = "ci-key"):
        return self.service.accept(what, provider, body, content_type=content_type, parameters=parameters,
                                   sent_by=sent_by)

    def provider(self, name: str = "ci") -> PushProvider:
        return PushProvider(self.config.providers[name], store=self.store)

    def pages(self, name: str = "ci", window: HourWindow = WINDOW) -> list:
        return list(self.provider(name).fetch_pages(window))

    def state(self) -> dict[str, bytes]:
        return {key: self.store.get(key) for key in self.store.list("")}

    def path(self, key: str):
        return self.store.root / key


@pytest.fixture
def door(tmp_path) -> Door:
    return Door(tmp_path)


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# -- accepted, then fetched -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_an_accepted_report_is_fetched_as_its_exact_bytes_with_the_spans_of_its_cases(door, name):
    body = junit_file(name)
    receipt = door.push(body)
    run = parse_junit(body)
    sha = _sha(body)
    assert receipt.push_id.startswith("tr_") and len(receipt.push_id) == 35 and not receipt.duplicate
    assert receipt.what == TEST_RUN and receipt.partition == f"{HOUR}|ci"
    assert receipt.counts["tests"] == len(run.cases) and receipt.counts["suites"] == len(run.suites)
    context = receipt.context
    assert (context.provider, context.kind, context.format, context.body_sha256, context.size) == (
        "ci", "test_result", "junit", sha, len(body))
    assert (context.hour, context.started_at, context.started_at_source) == (HOUR, "2026-01-01T05:10:00.000000Z", "query")
    assert (context.suite, context.commit, context.branch, context.build, context.sent_by) == (
        "unit", "abc123", "main", 42, "ci-key")
    assert context.received_at == "2026-01-01T06:05:00.000000Z"

    prefix = "inbox/ci/2026/01/01/05/"
    assert sorted(door.store.list("inbox/")) == sorted(
        [f"{prefix}{sha}.xml", f"{prefix}{sha}.push.json", f"inbox/_pushes/{receipt.push_id}.json"])
    assert door.store.get(f"{prefix}{sha}.xml") == body  # byte-exact: BOM, CRLF, quoting and all
    assert json.loads(door.store.get(f"{prefix}{sha}.push.json")) == context.to_dict()

    [page] = door.pages()
    assert page.body == body and page.number == 1
    assert (page.extension, page.content_type) == ("xml", "application/xml")
    assert page.url == f"push://ci/{receipt.push_id}"
    assert page.context == context.to_dict()
    assert page.sha256 == sha  # checked against the digest it was pushed under, so landing need not hash it again
    assert list(zip(page.framed.offsets, page.framed.lengths, strict=True)) == [(c.start, c.length) for c in run.cases]
    assert page.framed.slices(body) == [body[c.start:c.end] for c in run.cases]
    assert page.framed.natural_ids == [f"{sha}:{c.start}" for c in run.cases]
    assert page.framed.event_times == ["2026-01-01T05:10:00.000000Z"] * len(run.cases)


def test_a_json_array_of_results_is_kept_as_json_and_its_records_keep_their_own_ids(door):
    body = b'[{"id": "r-1", "test": "t1", "status": "passed"},\n {"test": "t2", "status": "failed"}]'
    receipt = door.push(body, content_type="application/json; charset=utf-8")
    assert receipt.context.format == "json" and receipt.counts["tests"] == 2
    assert door.store.get(f"inbox/ci/2026/01/01/05/{_sha(body)}.json") == body
    [page] = door.pages()
    assert (page.body, page.extension, page.content_type) == (body, "json", "application/json")
    assert page.framed.natural_ids[0] == "r-1"
    assert page.framed.natural_ids[1] == f"{_sha(body)}:{page.framed.offsets[1]}"


def test_the_provider_factory_builds_a_push_provider_over_the_vaults_store(door):
    provider = build_provider(door.config.providers["ci"], store=door.store)
    assert isinstance(provider, PushProvider) and provider.store is door.store
    assert door.config.providers["ci"].lookback_hours == 0  # nothing arrives late for a lookback to find


def test_pushes_are_fetched_in_the_order_they_were_received_not_by_digest(door):
    bodies = [junit_file(name) for name in sorted(PRODUCERS)][:4]
    order = sorted(bodies, key=_sha, reverse=True)  # received in the reverse order of their digests
    for minute, body in enumerate(order):
        door.clock.now = NOW + timedelta(minutes=minute)
        door.push(body, PushParameters(started_at=f"2026-01-01T05:{50 - minute:02d}:00Z"))
    pages = door.pages()
    assert [page.body for page in pages] == order
    assert [page.number for page in pages] == [1, 2, 3, 4]


def test_a_window_fetches_the_pushes_of_its_hours_only(door):
    five, six = junit_file("jest-junit.xml"), junit_file("gotestsum.xml")
    door.push(five)
    door.push(six, PushParameters(started_at="2026-01-01T06:01:00Z"))
    assert [p.body for p in door.pages()] == [five]
    assert [p.body for p in door.pages(window=HourWindow.for_hour_key("2026-01-01-06:00"))] == [six]
    assert [p.body for p in door.pages(window=HourWindow(WINDOW.start, WINDOW.end + timedelta(hours=1)))] == [five, six]
    assert door.pages(window=HourWindow.for_hour_key("2026-01-01-04:00")) == []
    assert door.pages("agents") == []  # another push provider's inbox is its own


def test_a_run_without_started_at_belongs_to_its_reports_zoned_start_else_to_when_it_was_received(door):
    door.clock.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    reported = door.push(junit_file("gotestsum.xml"), PushParameters())  # suites stamped ...T10:00:00Z
    assert (reported.context.started_at, reported.context.started_at_source) == ("2026-05-01T10:00:00.000000Z", "report")
    assert reported.context.hour == "2026-05-01-10:00"
    received = door.push(junit_file("jest-junit.xml"), PushParameters())  # naive timestamps only
    assert (received.context.started_at, received.context.started_at_source) == ("2026-05-01T12:00:00.000000Z", "received")
    assert door.store.exists(f"inbox/ci/2026/05/01/12/{_sha(junit_file('jest-junit.xml'))}.xml")


def test_an_agent_push_is_dated_by_its_executions_and_fetched_as_json(door):
    body = (b'[{"execution_id": "ax-1", "agent_name": "QA_Assistant", "status": "success", '
            b'"timestamp": "2026-01-01T05:20:00Z"},\n {"execution_id": "ax-2", "agent_name": "QA_Assistant", '
            b'"status": "failure", "timestamp": "2026-01-01T05:05:00Z"}]')
    receipt = door.push(body, PushParameters(), provider="agents", what=AGENT_EXECUTION)
    assert receipt.push_id.startswith("ax_") and receipt.counts == {"executions": 2}
    assert (receipt.context.kind, receipt.context.format, receipt.context.hour) == ("agent_result", "agent", HOUR)
    assert (receipt.context.started_at, receipt.context.started_at_source) == ("2026-01-01T05:05:00.000000Z", "records")
    [page] = door.pages("agents")
    assert (page.body, page.extension, page.content_type) == (body, "json", "application/json")
    assert [json.loads(piece)["execution_id"] for piece in page.framed.slices(body)] == ["ax-1", "ax-2"]
    assert page.framed.natural_ids is None  # named and dated by their own execution_id and timestamp


def test_a_push_is_found_again_by_its_id(door):
    receipt = door.push(TWO_CASES)
    door.service.record_job(receipt, "run-1")
    found = door.service.get(receipt.push_id)
    assert (found.context, found.counts, found.jobs) == (receipt.context, receipt.counts, ["run-1"])
    with pytest.raises(PushNotFound):
        door.service.get(receipt.push_id, AGENT_EXECUTION)
    for unknown in ("tr_" + "0" * 32, "tr_../../etc/passwd", "nonsense"):
        with pytest.raises(PushNotFound):
            door.service.get(unknown)


# -- refused -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "what", "body", "parameters", "code", "parameter"), [
    (None, TEST_RUN, TWO_CASES, QUERY, "missing_parameter", "provider_id"),
    ("nope", TEST_RUN, TWO_CASES, QUERY, "unknown_provider", "provider_id"),
    ("pulled", TEST_RUN, TWO_CASES, QUERY, "not_a_push_provider", "provider_id"),
    ("agents", TEST_RUN, TWO_CASES, QUERY, "wrong_kind", "provider_id"),
    ("ci", AGENT_EXECUTION, b'{"execution_id": "a", "timestamp": "2026-01-01T05:00:00Z"}', PushParameters(),
     "wrong_kind", "provider_id"),
    ("small", TEST_RUN, TWO_CASES + b" " * 200, QUERY, "body_too_large", None),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(build="42a"), "invalid_build", "build"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(build=-1), "invalid_build", "build"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(suite=""), "invalid_suite", "suite"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(suite="x" * 201), "invalid_suite", "suite"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(branch="   "), "invalid_branch", "branch"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(commit="abc def"), "invalid_commit", "commit"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(started_at="2026-01-01T05:00:00"), "invalid_started_at", "started_at"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(started_at="soon"), "invalid_started_at", "started_at"),
    ("agents", AGENT_EXECUTION, b'{"execution_id": "a", "timestamp": "2026-01-01T05:00:00Z"}',
     PushParameters(started_at="2026-01-01T05:00:00Z"), "invalid_started_at", "started_at"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(started_at="2026-01-01T06:11:00Z"), "started_in_future", "started_at"),
    ("ci", TEST_RUN, TWO_CASES, PushParameters(started_at="2025-12-31T23:59:00Z"), "before_first_hour", "started_at"),
])
def test_a_refused_provider_or_query_value_stores_nothing_at_all(door, provider, what, body, parameters, code,
                                                                 parameter):
    with pytest.raises(PushRefused) as refused:
        door.service.accept(what, provider, body, parameters=parameters, sent_by="ci-key")
    assert (refused.value.code, refused.value.parameter) == (code, parameter)
    assert door.state() == {}  # not in inbox/, not in dlq/: the body was never the problem
    assert door.catalog.count_dead_letters() == 0


def test_a_report_dated_in_the_future_by_its_own_timestamp_is_refused_and_kept(door):
    body = junit_file("pytest_xunit2.xml")  # its testsuite's timestamp says 2026-12, after the clock's now
    with pytest.raises(PushRefused) as refused:
        door.service.accept(TEST_RUN, "ci", body, sent_by="ci-key")
    assert (refused.value.code, refused.value.parameter) == ("started_in_future", "started_at")
    [letter] = door.catalog.list_dead_letters(provider="ci")
    assert letter.stage == "push" and door.store.get(letter.object_key) == body  # the body was the problem
    assert not list(door.store.list("inbox/"))


def test_the_future_tolerance_allows_a_runner_clock_a_few_minutes_ahead(door):
    receipt = door.push(TWO_CASES, PushParameters(started_at="2026-01-01T06:09:59Z"))
    assert receipt.context.hour == "2026-01-01-06:00"


@pytest.mark.parametrize(("provider", "what", "body", "code"), [
    ("ci", TEST_RUN, b"<testsuites><testsuite name='s'><testcase name='t'/>", "malformed_body"),
    ("ci", TEST_RUN, b"", "malformed_body"),
    ("ci", TEST_RUN, b'{"suite": "s", "test": "t"}', "not_test_results"),  # JSON, but not an array of results
    ("ci", TEST_RUN, junit_files.BILLION_LAUGHS, "unsafe_xml"),
    ("ci", TEST_RUN, junit_files.QUADRATIC_BLOWUP, "unsafe_xml"),
    ("ci", TEST_RUN, junit_files.EXTERNAL_SYSTEM_ENTITY, "unsafe_xml"),
    ("ci", TEST_RUN, junit_files.EXTERNAL_PUBLIC_DTD, "unsafe_xml"),
    ("ci", TEST_RUN, junit_files.PARAMETER_ENTITY, "unsafe_xml"),
    ("ci", TEST_RUN, junit_files.XINCLUDE, "unsafe_xml"),
    ("ci", TEST_RUN, junit_files.deeply_nested(100), "nesting_too_deep"),
    ("ci", TEST_RUN, "<testsuite name='s'><testcase name='t'/></testsuite>".encode("utf-16"), "unsupported_encoding"),
    ("ci", TEST_RUN, b"<html><body>502 Bad Gateway</body></html>", "not_test_results"),
    ("ci", TEST_RUN, b"[1, 2]", "not_test_results"),
    ("ci", TEST_RUN, b'<testsuites name="empty"/>', "no_test_cases"),
    ("ci", TEST_RUN, b"[]", "no_test_cases"),
    ("agents", AGENT_EXECUTION, b"[]", "not_test_results"),
    ("agents", AGENT_EXECUTION, b"<testsuites/>", "malformed_body"),
    ("agents", AGENT_EXECUTION, b'{"execution_id": "a", "timestamp": "2026-01-01T05:00:00"}', "invalid_timestamp"),
    ("agents", AGENT_EXECUTION, b'{"execution_id": "a"}', "invalid_timestamp"),
    ("agents", AGENT_EXECUTION, (b'[{"execution_id": "a", "timestamp": "2026-01-01T05:59:59Z"},'
                                 b' {"execution_id": "b", "timestamp": "2026-01-01T06:00:00Z"}]'), "mixed_hours"),
])
def test_a_refused_body_is_kept_in_the_dead_letter_zone_and_nothing_reaches_the_inbox(door, provider, what, body, code):
    with pytest.raises(PushRefused) as refused:
        door.service.accept(what, provider, body, parameters=QUERY if what == TEST_RUN else PushParameters(),
                            sent_by="ci-key")
    key = f"dlq/{provider}/2026/01/01/06/{_sha(body)}.body"  # the hour it was refused in
    assert refused.value.code == code
    assert key in str(refused.value)  # the caller is told where to look
    assert list(door.store.list("inbox/")) == []
    assert list(door.store.list("dlq/")) == [key]
    assert door.store.get(key) == body
    [letter] = door.catalog.list_dead_letters()
    assert (letter.provider, letter.partition, letter.stage) == (provider, f"2026-01-01-06:00|{provider}", "push")
    assert letter.reason.startswith(f"{code}: ")
    assert (letter.object_key, letter.offset, letter.length, letter.log_id) == (key, 0, len(body), None)
    assert letter.created_at == "2026-01-01T06:05:00.000000Z"
    assert letter.detail["sent_by"] == "ci-key"
    assert letter.detail["format"] == ("agent" if what == AGENT_EXECUTION else "json" if body[:1] in (b"[", b"{") else "junit")


def test_the_same_refused_body_twice_is_one_dead_letter(door):
    for _ in range(2):
        with pytest.raises(PushRefused, match="unsafe_xml|DOCTYPE"):
            door.push(junit_files.BILLION_LAUGHS)
    assert door.catalog.count_dead_letters() == 1 and len(list(door.store.list("dlq/"))) == 1


# -- pushed twice ------------------------------------------------------------------------------------


def test_the_same_report_pushed_again_is_the_same_push_and_changes_nothing(door):
    first = door.push(TWO_CASES)
    before = door.state()
    door.clock.advance(minutes=20)
    again = door.push(TWO_CASES, sent_by="another-key")
    assert again.duplicate and not first.duplicate
    assert (again.push_id, again.context, again.counts) == (first.push_id, first.context, first.counts)
    assert door.state() == before
    assert [page.body for page in door.pages()] == [TWO_CASES]


def test_a_report_re_sent_without_started_at_is_still_the_same_push(door):
    first = door.push(TWO_CASES)
    door.clock.advance(hours=3)
    again = door.push(TWO_CASES, PushParameters(suite="unit", commit="abc123", branch="main", build=42))
    assert again.duplicate and again.context.hour == first.context.hour == HOUR


@pytest.mark.parametrize("parameters", [
    PushParameters(suite="unit", commit="def456", branch="main", build=42, started_at="2026-01-01T05:10:00Z"),
    PushParameters(suite="unit", commit="abc123", branch="main", build=43, started_at="2026-01-01T05:10:00Z"),
    PushParameters(suite="e2e", commit="abc123", branch="main", build=42, started_at="2026-01-01T05:10:00Z"),
    PushParameters(suite="unit", commit="abc123", branch="main", build=42, started_at="2026-01-01T05:11:00Z"),
])
def test_the_same_report_with_other_metadata_is_refused_as_a_conflict(door, parameters):
    first = door.push(TWO_CASES)
    before = door.state()
    with pytest.raises(PushRefused) as refused:
        door.push(TWO_CASES, parameters)
    assert refused.value.code == "conflicting_push" and first.push_id in str(refused.value)
    assert door.state() == before and door.catalog.count_dead_letters() == 0


def test_the_same_body_pushed_to_two_providers_is_two_pushes(door):
    door.config = parse_config({"providers": PROVIDERS | {"ci2": {"type": "push", "kind": "test_result"}}})
    one, two = door.push(TWO_CASES), door.push(TWO_CASES, provider="ci2")
    assert one.push_id != two.push_id and not two.duplicate
    assert [p.body for p in door.pages("ci")] == [p.body for p in door.pages("ci2")] == [TWO_CASES]


# -- changed in the inbox after it was accepted -------------------------------------------------------


def test_a_body_made_unreadable_in_the_inbox_makes_the_fetch_fail_naming_its_key(door):
    receipt = door.push(TWO_CASES)
    key = f"inbox/ci/2026/01/01/05/{_sha(TWO_CASES)}.xml"
    door.path(key).write_bytes(TWO_CASES[:-30])  # truncated by hand after acceptance
    with pytest.raises(ProviderError) as failed:
        door.pages()
    assert key in str(failed.value) and "altered in the inbox" in str(failed.value)
    assert failed.value.url == f"push://ci/{receipt.push_id}" and failed.value.body == TWO_CASES[:-30]


def test_a_body_deleted_from_the_inbox_makes_the_fetch_fail_naming_its_key(door):
    door.push(TWO_CASES)
    key = f"inbox/ci/2026/01/01/05/{_sha(TWO_CASES)}.xml"
    door.path(key).unlink()
    with pytest.raises(ProviderError, match=f"pushed body {key} is gone from the inbox"):
        door.pages()


def test_a_body_rewritten_in_the_inbox_but_still_junit_is_not_fetched(door):
    """The inbox is not trusted either: a body that no longer hashes to what was pushed (here a
    failure edited away, still well-formed JUnit) fails the fetch, naming the key and both digests."""
    receipt = door.push(TWO_CASES)
    key = f"inbox/ci/2026/01/01/05/{_sha(TWO_CASES)}.xml"
    forged = TWO_CASES.replace(b'name="refunds" time="0.2"><failure message="503">boom</failure></testcase>',
                               b'name="refunds" time="0.2"/>')
    assert forged != TWO_CASES and parse_junit(forged).totals.failures == 0
    door.path(key).write_bytes(forged)
    with pytest.raises(ProviderError) as failed:
        door.pages()
    message = str(failed.value)
    assert key in message and "altered in the inbox" in message and receipt.push_id in message
    assert f"sha256:{_sha(forged)}" in message and f"sha256:{receipt.context.body_sha256}" in message
    assert failed.value.body == forged  # landing keeps it in the dead-letter zone for a look
