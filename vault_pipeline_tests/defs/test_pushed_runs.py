"""Scenario: QA teams push their CI's JUnit reports (and agents their executions) and the hourly
graph makes vault records of them, like of any pulled provider's.

Eight real runners' reports are pushed for one hour to a ``type: push`` provider; the hour's run
lands each report byte-exact as ``raw/ci/.../{sha256}.xml``, every test case an exact range of it,
validates and normalises each case in the ``test_result`` shape (the push's suite, commit, branch
and build on every row), seals the partition in the ledger and promotes the cases to golden: a
clean case as its XML element, byte for byte, one whose failure names a person as masked JSON.
Running the hour again changes nothing, ``vault verify`` is clean until a byte of a landed report
is flipped, agent executions reach ``agent_results``, and two pushed runs of one commit that
disagree about a test make the insights refresh call it flaky.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import pyarrow.compute as pc
import pytest

from vault_pipeline.core.checksums import checksum
from vault_pipeline.core.junit import parse_junit
from vault_pipeline.core.ledger import (
    KIND_PARTITION,
    KIND_PROMOTION_DECISION,
    LedgerEntry,
)
from vault_pipeline.core.pushed_records import stored_case_value as value_of_testcase
from vault_pipeline.defs.insights.cli import refresh_insights
from vault_pipeline.defs.insights.tables import INSIGHTS
from vault_pipeline.defs.integrity.verification import verify_vault
from vault_pipeline.defs.promotion.promotion import iter_manifest_rows
from vault_pipeline.defs.schedules import HOURLY_SCHEDULE
from vault_pipeline.providers.config import load_config
from vault_pipeline.push.service import (
    AGENT_EXECUTION,
    TEST_RUN,
    PushParameters,
    PushRefused,
    PushService,
)
from vault_pipeline_tests.fixtures.junit_files import (
    BILLION_LAUGHS,
    PRODUCERS,
    junit_file,
)
from vault_pipeline_tests.fixtures.vault import check_results, materialization_metadata

HOUR = "2026-01-01-05:00"
PARTITION = f"{HOUR}|ci"
STARTED = "2026-01-01T05:10:00Z"
QUERY = PushParameters(suite="unit", commit="abc123", branch="main", build=42, started_at=STARTED)
ALL_PASSED = {"input_validation": True, "output_validation": True, "integrity_clean": True}
PUSH_PROVIDERS = {"ci": {"type": "push", "kind": "test_result"}, "agents": {"type": "push", "kind": "agent_result"}}

SIGNUP = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="accounts">
  <testsuite name="test_signup.py" tests="2" failures="1">
    <testcase classname="accounts.test_signup" name="test_sends_welcome_mail" time="0.300">
      <failure message="no welcome mail delivered to jane.doe@example.com" type="AssertionError">assert outbox</failure>
    </testcase>
    <testcase classname="accounts.test_signup" name="test_rejects_short_password" time="0.010"/>
  </testsuite>
</testsuites>
"""


def _door(vault, now: datetime = datetime(2026, 1, 2, tzinfo=UTC)) -> PushService:
    return PushService(store=vault.store, catalog=vault.catalog, config=lambda: load_config(vault.config_path),
                       clock=lambda: now)


def _push_all_producers(vault) -> dict[str, bytes]:
    """Every producer's report pushed for HOUR; sha256 -> body."""
    door = _door(vault)
    bodies = {}
    for name in sorted(PRODUCERS):
        body = junit_file(name)
        receipt = door.accept(TEST_RUN, "ci", body, parameters=QUERY, sent_by="ci-key")
        assert receipt.counts["tests"] == len(parse_junit(body).cases)
        bodies[hashlib.sha256(body).hexdigest()] = body
    return bodies


def _raw_key(sha: str, hour: str = "05") -> str:
    return f"raw/ci/2026/01/01/{hour}/{sha}.xml"


def _ledger(vault, provider: str = "ci") -> list[LedgerEntry]:
    return [LedgerEntry.from_json(text) for _, text in vault.catalog.ledger_entries(provider)]


def _manifest_rows(vault, kind: str = "test_result", provider: str = "ci") -> list[dict]:
    return list(iter_manifest_rows(vault.store, f"golden/{kind}/{provider}/2026-01-01/05/"))


def _golden_bytes(vault, row: dict) -> bytes:
    golden = row["golden"]
    return vault.store.get_range(golden["key"], golden["offset"], golden["length"])


def _verify(vault):
    return verify_vault(store=vault.store, catalog=vault.catalog, verifier=vault.resource.ledger_signer().verifier())


# -- the eight producers through the hourly graph --------------------------------------------------


def test_every_producers_pushed_report_lands_as_exact_testcase_records_with_the_pushs_ci_fields(vault):
    vault.write_providers(PUSH_PROVIDERS)
    bodies = _push_all_producers(vault)
    cases = {sha: parse_junit(body).cases for sha, body in bodies.items()}
    total = sum(len(c) for c in cases.values())

    result = vault.run(HOUR, "ci")
    assert result.success, check_results(result)
    assert check_results(result) == ALL_PASSED
    landing = materialization_metadata(result, "raw_landing")
    assert (landing["pages"], landing["records"], landing["new_objects"]) == (len(PRODUCERS), total, len(PRODUCERS))
    assert materialization_metadata(result, "record_index")["inserted"] == total
    assert sorted(vault.store.list("raw/ci/")) == sorted(_raw_key(sha) for sha in bodies)
    for sha, body in bodies.items():
        assert vault.store.get(_raw_key(sha)) == body  # the report as it was pushed

    records = list(vault.catalog.iter_partition_records(PARTITION))
    assert vault.catalog.count_records(partition=PARTITION) == len(records) == total
    spans = {(sha, c.start): c for sha, found in cases.items() for c in found}
    for record in records:
        sha, _, offset = record.natural_id.partition(":")
        case = spans.pop((sha, int(offset)))
        assert record.object_key == _raw_key(sha)
        assert (record.offset, record.length) == (case.start, case.length)
        piece = vault.store.get_range(record.object_key, record.offset, record.length)
        assert piece == bodies[sha][case.start:case.end] and piece.startswith(b"<testcase")
        assert record.checksum == checksum(piece)
        assert record.timestamp == "2026-01-01T05:10:00.000000Z"  # the run's start
    assert spans == {}  # every case of every report is a record

    rows = vault.lake.read("test_results", provider="ci")
    assert rows.num_rows == total
    for column, value in (("suite", "unit"), ("commit", "abc123"), ("branch", "main"), ("build", 42)):
        assert set(rows[column].to_pylist()) == {value}, column
    assert set(rows["date"].to_pylist()) == {"2026-01-01"} and set(rows["hour"].to_pylist()) == {"05"}
    expected = Counter((_raw_key(sha), c.test_id, c.status) for sha, found in cases.items() for c in found)
    got = Counter(zip(rows["object_key"].to_pylist(), rows["test"].to_pylist(), rows["status"].to_pylist(), strict=True))
    assert got == expected
    assert all("::" in test for test in rows["test"].to_pylist())  # every producer here writes a classname
    surefire = rows.filter(pc.equal(rows["test"], "com.acme.vault.LedgerTest::rejectsTamperedEntry")).to_pylist()
    assert [r["status"] for r in surefire] == ["failed"]
    assert surefire[0]["error_type"] == "org.opentest4j.AssertionFailedError"


def test_running_the_pushed_hour_again_changes_nothing(vault):
    vault.write_providers(PUSH_PROVIDERS)
    _push_all_producers(vault)
    first = vault.run(HOUR, "ci")
    assert first.success, check_results(first)
    log_ids = sorted(r.log_id for r in vault.catalog.iter_partition_records(PARTITION))
    objects = {key: vault.store.get(key) for key in vault.store.list("raw/")}
    ledger = list(vault.catalog.ledger_entries("ci"))
    sealed = materialization_metadata(first, "ledger_entry")
    lake_version = vault.lake.version("test_results")

    second = vault.run(HOUR, "ci")
    assert second.success and check_results(second) == ALL_PASSED
    assert sorted(r.log_id for r in vault.catalog.iter_partition_records(PARTITION)) == log_ids
    index = materialization_metadata(second, "record_index")
    assert index["inserted"] == 0 and index["unchanged"] == index["records"] == len(log_ids)
    assert materialization_metadata(second, "raw_landing")["new_objects"] == 0
    assert materialization_metadata(second, "normalised_records")["inserted"] == 0
    again = materialization_metadata(second, "ledger_entry")
    assert again["new_entry"] is False
    assert (again["sequence"], again["entry_hash"], again["merkle_root"]) == (
        sealed["sequence"], sealed["entry_hash"], sealed["merkle_root"])
    assert materialization_metadata(second, "golden_promotion")["new_decision_entry"] is False
    assert list(vault.catalog.ledger_entries("ci")) == ledger
    assert {key: vault.store.get(key) for key in vault.store.list("raw/")} == objects
    assert vault.lake.version("test_results") == lake_version


def test_a_refused_push_in_the_same_hour_leaves_the_accepted_reports_run_untouched(vault):
    vault.write_providers(PUSH_PROVIDERS)
    door = _door(vault, now=datetime(2026, 1, 1, 5, 40, tzinfo=UTC))
    door.accept(TEST_RUN, "ci", SIGNUP, parameters=QUERY, sent_by="ci-key")
    with pytest.raises(PushRefused) as refused:
        door.accept(TEST_RUN, "ci", BILLION_LAUGHS, parameters=QUERY, sent_by="ci-key")
    assert refused.value.code == "unsafe_xml"
    [letter] = vault.catalog.list_dead_letters(partition=PARTITION)  # the refusal's, in the same partition
    assert letter.stage == "push"
    result = vault.run(HOUR, "ci")
    assert result.success and check_results(result) == ALL_PASSED
    assert vault.lake.count("test_results", provider="ci") == vault.catalog.count_records(partition=PARTITION) == 2
    assert not any(BILLION_LAUGHS == vault.store.get(key) for key in vault.store.list("raw/"))


def test_an_hour_nobody_pushed_to_lands_nothing_and_passes(vault):
    vault.write_providers(PUSH_PROVIDERS)
    result = vault.run(HOUR, "ci")
    assert result.success, check_results(result)
    assert materialization_metadata(result, "raw_landing")["records"] == 0
    assert vault.catalog.count_records(partition=PARTITION) == 0


# -- promotion ------------------------------------------------------------------------------------


def test_a_clean_test_case_is_promoted_as_its_xml_and_one_naming_a_person_as_masked_json(vault):
    vault.write_providers(PUSH_PROVIDERS)
    _door(vault).accept(TEST_RUN, "ci", SIGNUP, parameters=QUERY, sent_by="ci-key")
    result = vault.run(HOUR, "ci")
    assert result.success, check_results(result)
    promotion = materialization_metadata(result, "golden_promotion")
    assert (promotion["count_clean"], promotion["count_masked"], promotion["count_quarantined"]) == (1, 1, 0)

    rows = {vault.catalog.get_record(row["log_id"]).offset: row for row in _manifest_rows(vault)}
    mail, password = parse_junit(SIGNUP).cases
    clean, masked = rows[password.start], rows[mail.start]
    entry = vault.catalog.get_record(clean["log_id"])
    assert clean["decision"] == "clean" and not clean.get("masked")
    assert clean["raw"] == {"key": entry.object_key, "offset": entry.offset, "length": entry.length,
                            "digest": entry.checksum}
    assert _golden_bytes(vault, clean) == SIGNUP[password.start:password.end]  # the element, byte for byte
    assert clean["golden"]["digest"] == entry.checksum

    assert masked["decision"] == "masked"
    assert {item["type"] for item in masked["masked"]} == {"email"}
    raw_case = vault.store.get_range(vault.catalog.get_record(masked["log_id"]).object_key, mail.start, mail.length)
    assert raw_case == SIGNUP[mail.start:mail.end] and b"jane.doe@example.com" in raw_case  # raw is never touched
    value = json.loads(_golden_bytes(vault, masked))  # a masked case is its fields as JSON: XML is not rewritten
    original = value_of_testcase(raw_case)
    assert value.keys() == original.keys()
    assert value["test_id"] == "accounts.test_signup::test_sends_welcome_mail" and value["status"] == "failed"
    assert "jane.doe@example.com" not in value["error"]["message"]
    assert value["error"]["message"].startswith("no welcome mail delivered to ")
    golden = b"".join(vault.store.get(key) for key in vault.store.list("golden/test_result/ci/"))
    assert b"jane.doe@example.com" not in golden
    decision = [e for e in _ledger(vault) if e.kind == KIND_PROMOTION_DECISION][-1]
    assert decision.body["counts"]["masked"] == 1 and "jane.doe" not in decision.to_json()


def test_every_producers_cases_without_pii_are_promoted_byte_exact(vault):
    vault.write_providers(PUSH_PROVIDERS)
    _push_all_producers(vault)
    result = vault.run(HOUR, "ci")
    assert result.success, check_results(result)
    rows = _manifest_rows(vault)
    assert len(rows) == vault.catalog.count_records(partition=PARTITION)
    partition_entry = [e for e in _ledger(vault) if e.kind == KIND_PARTITION][-1]
    for row in rows:
        assert row["decision"] == "clean", row
        entry = vault.catalog.get_record(row["log_id"])
        assert _golden_bytes(vault, row) == vault.store.get_range(entry.object_key, entry.offset, entry.length)
        assert row["ledger_entry"] == {"sequence": partition_entry.sequence, "hash": partition_entry.entry_hash}


# -- vault verify ---------------------------------------------------------------------------------


def test_vault_verify_is_clean_after_a_pushed_hour_and_finds_a_flipped_byte_in_a_landed_report(vault):
    vault.write_providers(PUSH_PROVIDERS)
    _push_all_producers(vault)
    assert vault.run(HOUR, "ci").success
    report = _verify(vault)
    assert report.clean, [f.to_dict() for f in report.findings]
    assert (report.providers, report.partitions) == (1, 1)
    assert report.records == vault.catalog.count_records(partition=PARTITION)

    victim = next(r for r in vault.catalog.iter_partition_records(PARTITION) if r.length > 40)
    assert victim.object_key.endswith(".xml")
    path = vault.home / "objects" / victim.object_key
    data = bytearray(path.read_bytes())
    data[victim.offset + victim.length // 2] ^= 0x01  # one bit, inside one <testcase> element
    path.write_bytes(bytes(data))
    report = _verify(vault)
    assert sorted({f.type for f in report.findings}) == ["object_altered", "record_bytes_altered"]
    assert all(f.partition == PARTITION for f in report.findings)
    assert any(victim.log_id in f.detail for f in report.findings)
    assert any(victim.object_key in (f.detail + json.dumps(f.to_dict())) for f in report.findings)


# -- agent executions ------------------------------------------------------------------------------


AGENT_RUNS = [
    {"execution_id": "ax-001", "agent_name": "QA_Assistant", "status": "success", "timestamp": "2026-01-01T05:02:00Z",
     "output": {"test_count": 120, "passed": 120, "failed": 0}, "duration_ms": 8123.5, "error": None},
    {"execution_id": "ax-002", "agent_name": "Regression_Bot", "status": "failure", "timestamp": "2026-01-01T05:31:10Z",
     "output": {"test_count": 40, "passed": 37, "failed": 3}, "duration_ms": 15000, "error": {"message": "browser crashed"}},
    {"execution_id": "ax-003", "agent_name": "Ünïcode_Agent", "status": "partial", "timestamp": "2026-01-01T05:59:59.999Z",
     "output": {"test_count": 5, "passed": 4, "failed": 0}, "duration_ms": 61.0},
]


def test_pushed_agent_executions_reach_the_agent_results_table(vault):
    vault.write_providers(PUSH_PROVIDERS)
    body = ("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in AGENT_RUNS) + "\n]").encode()
    receipt = _door(vault).accept(AGENT_EXECUTION, "agents", body, sent_by="agent-key")
    assert receipt.context.hour == HOUR and receipt.counts == {"executions": 3}

    result = vault.run(HOUR, "agents")
    assert result.success, check_results(result)
    assert check_results(result) == ALL_PASSED
    sha = hashlib.sha256(body).hexdigest()
    assert vault.store.get(f"raw/agents/2026/01/01/05/{sha}.json") == body
    records = {r.natural_id: r for r in vault.catalog.iter_partition_records(f"{HOUR}|agents")}
    assert sorted(records) == ["ax-001", "ax-002", "ax-003"]  # named by their own execution_id
    for run in AGENT_RUNS:
        record = records[run["execution_id"]]
        assert json.loads(vault.store.get_range(record.object_key, record.offset, record.length)) == run
    assert records["ax-003"].timestamp == "2026-01-01T05:59:59.999000Z"

    rows = {r["natural_id"]: r for r in vault.lake.read("agent_results", provider="agents").to_pylist()}
    assert sorted(rows) == ["ax-001", "ax-002", "ax-003"]
    for run in AGENT_RUNS:
        row = rows[run["execution_id"]]
        assert (row["agent_name"], row["status"]) == (run["agent_name"], run["status"])
        assert (row["test_count"], row["passed"], row["failed"]) == tuple(run["output"][k] for k in ("test_count", "passed", "failed"))
        assert row["duration_ms"] == float(run["duration_ms"])
        assert row["error_message"] == (run.get("error") or {}).get("message")
        assert row["event_time"].isoformat().startswith(run["timestamp"][:19])


# -- insights ------------------------------------------------------------------------------------


def _checkout_run(outcome: str) -> bytes:
    pay = ('<testcase classname="shop.Checkout" name="test_pay" time="0.2"/>' if outcome == "passed" else
           '<testcase classname="shop.Checkout" name="test_pay" time="0.2"><failure message="503 from payments">'
           "retry budget exhausted</failure></testcase>")
    failures = 0 if outcome == "passed" else 1
    return (f'<testsuites><testsuite name="Checkout" tests="2" failures="{failures}">{pay}'
            '<testcase classname="shop.Checkout" name="test_refund" time="0.1"/></testsuite></testsuites>').encode()


def test_two_pushed_runs_of_one_commit_that_disagree_make_the_test_flaky_in_the_insights(vault):
    vault.write_providers(PUSH_PROVIDERS)
    door = _door(vault)
    for build, (hour, outcome) in enumerate((("05", "passed"), ("06", "failed")), start=1):
        door.accept(TEST_RUN, "ci", _checkout_run(outcome), sent_by="ci-key", parameters=PushParameters(
            suite="checkout", commit="c0ffee", branch="main", build=build, started_at=f"2026-01-01T{hour}:15:00Z"))
        assert vault.run(f"2026-01-01-{hour}:00", "ci").success
    statuses = vault.lake.read("test_results", provider="ci")
    pay = statuses.filter(pc.equal(statuses["test"], "shop.Checkout::test_pay"))
    assert sorted(zip(pay["build"].to_pylist(), pay["status"].to_pylist())) == [(1, "passed"), (2, "failed")]

    outcome = refresh_insights(as_of="2026-01-02T00:00:00Z", definitions=vault.definitions(), instance=vault.instance)
    assert outcome.success, outcome.error
    flaky = vault.lake.read(INSIGHTS["flaky_tests"].table).to_pylist()
    assert [(row["suite"], row["test"]) for row in flaky] == [("checkout", "shop.Checkout::test_pay")]
    [row] = flaky
    assert row["flaky_commits"] == ["c0ffee"] and (row["pass_count"], row["fail_count"]) == (1, 1)
    assert outcome.counts["flaky_tests"] == 1
    top = outcome.metadata["flaky_tests"]["top"]
    assert any(item["test"] == "shop.Checkout::test_pay" and item["suite"] == "checkout" for item in top)


# -- the schedule ----------------------------------------------------------------------------------


def test_the_hourly_schedule_pulls_only_from_providers_that_pull(vault):
    vault.write_providers(PUSH_PROVIDERS | {"sim": {"type": "simulator", "kind": "test_result"}})
    definitions = vault.definitions()
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 1, 6, 10, tzinfo=UTC),
                                        repository_def=definitions.get_repository_def())
    requests = list(definitions.resolve_schedule_def(HOURLY_SCHEDULE).evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == ["2026-01-01-05:00|sim"]
