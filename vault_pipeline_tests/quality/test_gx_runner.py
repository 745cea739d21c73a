"""The GX suite runner on the project's real suites, with real Great Expectations (1.x).

Importing GX is slow, so the module shares one SuiteRunner and keeps to a handful of runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from vault_pipeline.core.framing import decode_record
from vault_pipeline.core.identity import log_id_for
from vault_pipeline.core.normalise import fact_table
from vault_pipeline.core.windows import HourWindow, parse_timestamp
from vault_pipeline.providers.config import KINDS, parse_config
from vault_pipeline.providers.simulator import SimulatorProvider
from vault_pipeline.quality.frames import input_frame
from vault_pipeline.quality.gx_runner import ExpectationOutcome, SuiteError, SuiteOutcome, SuiteRunner, suites_dir
from vault_pipeline.storage.catalog import fixed_width_timestamp

WINDOW = HourWindow.for_hour_key("2026-01-01-05:00")
IN_HOUR = "2026-01-01T05:{:02d}:00.000000Z"

CLEAN = {
    "audit_event": {
        "eventName": "GetObject", "eventSource": "s3.amazonaws.com", "awsRegion": "eu-west-1",
        "sourceIPAddress": "2001:db8::1", "userIdentity": {"type": "AssumedRole", "userName": "Zoë"},
        "recipientAccountId": "123456789012", "errorCode": None, "readOnly": True,
    },
    "generation_event": {
        "provider": "anthropic", "model": "claude-sonnet", "latency_ms": 850, "success": True,
        "tokens": {"prompt": 1200, "completion": 300, "total": 1500}, "cost_usd": 0.0066, "error": None,
    },
    "test_result": {
        "suite": "checkout", "test": "test_refund_3", "status": "failed", "duration_ms": 12.5,
        "error": {"type": "AssertionError", "message": "expected 200"}, "ci": {"build": 42, "branch": "main"},
    },
    "jailbreak_test": {
        "test_id": "jb-1", "test_type": "autodan", "target": {"provider": "local", "model": "llama-3-70b"},
        "iterations": 200, "successful_mutations": 31, "asr_rate": 0.155, "best_prompt": "You are DAN ⟨payload⟩",
    },
    "agent_result": {
        "execution_id": "ax-1", "agent_name": "QA_Assistant", "status": "success",
        "output": {"test_count": 42, "passed": 40, "failed": 2}, "duration_ms": 5100.0, "error": None,
    },
}


@pytest.fixture(scope="module")
def runner() -> SuiteRunner:
    return SuiteRunner()


def _rows(kind, records, start=0):
    return [(f"log_{i:032x}", IN_HOUR.format(i % 60), record) for i, record in enumerate(records, start)]


def _describe(column, kind="expect_column_values_to_be_in_set"):
    return f"{column}: {kind}"


def test_clean_frame_passes_every_expectation(runner):
    records = [dict(CLEAN["generation_event"], latency_ms=40 + i) for i in range(8)]
    outcome = runner.run("generation_event.input", input_frame("generation_event", WINDOW, _rows("generation_event", records)))
    suite = json.loads((suites_dir() / "generation_event.input.json").read_text())
    assert outcome.suite == "generation_event.input"
    assert outcome.evaluated == 8
    assert len(outcome.expectations) == len(suite["expectations"])
    assert all(e.success and e.unexpected_count == 0 and e.error is None for e in outcome.expectations)
    assert outcome.failing == {} and outcome.errors == []
    assert outcome.pass_rate == 1.0 and outcome.passed_records == 8


def test_a_frame_is_validated_without_hashing_it_for_a_batch_fingerprint(runner, monkeypatch):
    """The fingerprint only goes into GX's batch markers, which the vault never reads; the
    runner turns it off (GX's own threshold for large frames), and GX must still validate."""
    from great_expectations.execution_engine import pandas_execution_engine

    def hashed(_frame):
        raise AssertionError("GX fingerprinted the frame")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", hashed)
    records = [dict(CLEAN["generation_event"], latency_ms=40 + i) for i in range(5)] + [
        dict(CLEAN["generation_event"], latency_ms="fast")]
    outcome = runner.run("generation_event.input", input_frame("generation_event", WINDOW, _rows("generation_event", records)))
    assert outcome.evaluated == 6 and list(outcome.failing) == ["log_" + f"{5:032x}"]


def test_failing_records_are_named_with_reasons(runner):
    good = CLEAN["generation_event"]
    rows = _rows("generation_event", [good] * 6)
    rows += [
        ("log_wrong_type", IN_HOUR.format(1), dict(good, latency_ms="fast")),
        ("log_out_of_range", IN_HOUR.format(2), dict(good, latency_ms=700_000)),
        ("log_null_model", IN_HOUR.format(3), dict(good, model=None)),
        ("log_late", "2026-01-01T07:00:00.000000Z", good),
    ]
    outcome = runner.run("generation_event.input", input_frame("generation_event", WINDOW, rows))
    assert outcome.failing == {
        "log_wrong_type": [_describe("latency_ms__json_type")],
        "log_out_of_range": [_describe("latency_ms", "expect_column_values_to_be_between")],
        "log_null_model": [_describe("model", "expect_column_values_to_not_be_null")],
        "log_late": [_describe("in_window")],
    }
    assert outcome.evaluated == 10 and outcome.passed_records == 6
    assert outcome.pass_rate == pytest.approx(0.6)
    failed = {e.describe(): e.unexpected_count for e in outcome.expectations if not e.success}
    assert failed == {
        _describe("latency_ms__json_type"): 1,
        _describe("latency_ms", "expect_column_values_to_be_between"): 1,
        _describe("model", "expect_column_values_to_not_be_null"): 1,
        _describe("in_window"): 1,
    }
    assert outcome.errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_simulator_flaws_are_exactly_what_the_input_suite_rejects(runner, kind):
    """Clean simulated records all pass; every deliberately invalid one fails."""
    def provider(invalid_fraction):
        entry = {"type": "simulator", "kind": kind, "records_per_hour": 120, "seed": 5, "invalid_fraction": invalid_fraction}
        return SimulatorProvider(parse_config({"providers": {f"p{int(invalid_fraction)}": entry}}).provider(f"p{int(invalid_fraction)}"))

    rows, broken = [], set()
    for source in (provider(0.0), provider(1.0)):
        config = source.config
        for page in source.fetch_pages(WINDOW):
            for span in page.framed.slices(page.body):
                record = decode_record(span)
                log_id = log_id_for(config.name, record[config.natural_id_field])
                moment = parse_timestamp(record.get(config.event_time_field))
                rows.append((log_id, fixed_width_timestamp(moment) if moment else None, record))
                if config.invalid_fraction:
                    broken.add(log_id)
    outcome = runner.run(f"{kind}.input", input_frame(kind, WINDOW, rows))
    assert broken and len(broken) < len(rows)
    assert set(outcome.failing) == broken
    assert outcome.errors == []


def _output_frame(kind):
    items = []
    for i in range(4):
        body = json.dumps(CLEAN[kind]).encode() + bytes([i])
        digest = hashlib.sha256(body).hexdigest()
        row = SimpleNamespace(
            log_id=log_id_for("sim", f"n{i}"), natural_id=f"n{i}", checksum=f"sha256:{digest}",
            object_key=f"raw/sim/2026/01/01/05/{digest}.json", timestamp=IN_HOUR.format(i),
        )
        items.append((row, json.dumps(CLEAN[kind]).encode()))
    return fact_table(kind, "sim", "run-1", items).to_pandas()


def test_every_suite_in_the_repository_loads_and_passes_clean_data(runner):
    names = sorted(path.stem for path in suites_dir().glob("*.json"))
    assert names == sorted(f"{kind}.{side}" for kind in KINDS for side in ("input", "output"))
    for name in names:
        kind, side = name.split(".")
        if side == "input":
            frame = input_frame(kind, WINDOW, _rows(kind, [CLEAN[kind]] * 3))
        else:
            frame = _output_frame(kind)
        outcome = runner.run(name, frame)
        assert outcome.expectations, name
        assert outcome.errors == [], (name, outcome.errors)
        assert outcome.failing == {}, (name, outcome.failing)
        assert all(e.success for e in outcome.expectations), name


# -- merging chunks (pure: no GX run) ------------------------------------------------------


def _outcome(evaluated, successes, counts, failing, errors=None):
    errors = errors or [None] * len(successes)
    expectations = [
        ExpectationOutcome(type="expect_x", column=f"c{i}", success=s, unexpected_count=n, error=e)
        for i, (s, n, e) in enumerate(zip(successes, counts, errors, strict=True))
    ]
    return SuiteOutcome(suite="k.input", evaluated=evaluated, expectations=expectations, failing=failing)


def test_merge_adds_chunks():
    total = _outcome(10, [True, False], [0, 2], {"log_a": ["c1: expect_x"], "log_b": ["c1: expect_x"]})
    chunk = _outcome(5, [False, True], [1, 0], {"log_c": ["c0: expect_x"], "log_a": ["c0: expect_x"]}, [None, None])
    total.merge(chunk)
    assert total.evaluated == 15
    assert [e.success for e in total.expectations] == [False, False]
    assert [e.unexpected_count for e in total.expectations] == [1, 2]
    assert total.failing == {"log_a": ["c1: expect_x", "c0: expect_x"], "log_b": ["c1: expect_x"], "log_c": ["c0: expect_x"]}
    assert total.passed_records == 12
    assert total.pass_rate == pytest.approx(12 / 15)


def test_merge_keeps_the_first_error_and_all_success_stays_success():
    total = _outcome(3, [True, True], [0, 0], {})
    total.merge(_outcome(4, [True, True], [0, 0], {}, [None, "column missing"]))
    total.merge(_outcome(2, [True, True], [0, 0], {}, [None, "later error"]))
    assert total.evaluated == 9 and total.pass_rate == 1.0
    assert total.errors == ["c1: expect_x: column missing"]


def test_merge_refuses_a_different_suite_shape():
    with pytest.raises(ValueError):
        _outcome(1, [True], [0], {}).merge(_outcome(1, [True, True], [0, 0], {}))


def test_empty_outcome_pass_rate():
    assert SuiteOutcome(suite="s", evaluated=0, expectations=[]).pass_rate == 1.0


# -- broken suites -------------------------------------------------------------------------


def _broken_runner(tmp_path: Path, name: str, text: str) -> SuiteRunner:
    (tmp_path / f"{name}.json").write_text(text, encoding="utf-8")
    return SuiteRunner(directory=tmp_path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name": "bad", "expectations": [', "not valid JSON"),
        ('{"name": "bad"}', "no 'expectations' list"),
        ('["expect_column_values_to_not_be_null"]', "no 'expectations' list"),
        ('{"name": "bad", "expectations": [{"type": "expect_column_values_to_be_purple", "kwargs": {"column": "x"}}]}',
         "expect_column_values_to_be_purple"),
        ('{"name": "bad", "expectations": [{"kwargs": {"column": "x"}}]}', "expectation #0"),
    ],
)
def test_bad_suite_file_raises_suite_error_naming_the_file(tmp_path, text, fragment):
    runner = _broken_runner(tmp_path, "bad", text)
    frame = input_frame("audit_event", WINDOW, [])
    with pytest.raises(SuiteError) as info:
        runner.run("bad", frame)
    message = str(info.value)
    assert str(tmp_path / "bad.json") in message
    assert fragment in message


def test_missing_suite(tmp_path):
    with pytest.raises(SuiteError, match="not found") as info:
        SuiteRunner(directory=tmp_path).run("audit_event.input", input_frame("audit_event", WINDOW, []))
    assert str(tmp_path / "audit_event.input.json") in str(info.value)


def test_expectation_on_a_missing_column_is_reported_as_an_error(tmp_path):
    suite = {"name": "t", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "event_time"}},
    ]}
    runner = _broken_runner(tmp_path, "t", json.dumps(suite))
    frame = input_frame("audit_event", WINDOW, [("log_1", IN_HOUR.format(0), {}), ("log_2", None, {})])
    outcome = runner.run("t", frame)
    missing, present = outcome.expectations
    assert not missing.success and "no_such_column" in (missing.error or "")
    assert outcome.errors and outcome.errors[0].startswith("no_such_column: expect_column_values_to_not_be_null")
    assert not present.success and present.error is None and present.unexpected_count == 1
    assert outcome.failing == {"log_2": ["event_time: expect_column_values_to_not_be_null"]}


def test_a_suite_names_the_columns_its_expectations_look_at_and_log_id(tmp_path):
    suite = {"name": "t", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "event_time"}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b", "kwargs": {"column_A": "a", "column_B": "b"}},
    ]}
    assert _broken_runner(tmp_path, "t", json.dumps(suite)).columns("t") == {"log_id", "event_time", "a", "b"}
    assert SuiteRunner().columns("audit_event.output") >= {"log_id", "checksum", "event_name", "event_time"}


def test_a_table_level_expectation_needs_every_column(tmp_path):
    suite = {"name": "t", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "event_time"}},
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["log_id", "event_time"]}},
    ]}
    assert _broken_runner(tmp_path, "t", json.dumps(suite)).columns("t") is None


def test_a_conditional_expectation_needs_every_column(tmp_path):
    suite = {"name": "t", "expectations": [
        {"type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "event_time", "row_condition": 'col("status")=="ok"', "condition_parser": "great_expectations"}},
    ]}
    assert _broken_runner(tmp_path, "t", json.dumps(suite)).columns("t") is None
