"""Failure clusters: one template per problem, variable parts masked, every occurrence kept."""

import pyarrow as pa
import pyarrow.compute as pc

from vault_pipeline.core.insights import (
    failure_clusters,
    group_messages,
    grouping_accuracy,
    mask,
)

from .conftest import make_results


def test_variable_parts_are_masked():
    got = mask(pa.array([
        "timeout at 2026-01-02T03:04:05.123Z after 30.5 s",
        "record 123e4567-e89b-12d3-a456-426614174000 missing",
        "refused 10.0.0.7:5432 and http://api.internal:8080/v1/x?y=1",
        "KeyError: 'user id' in \"quoted value\" but can't mask apostrophes",
        "No such file: /tmp/pytest-3/out/result.json at tests/unit/test_a.py:42",
        "pointer 0x7ffdeadbeef and object 9f86d081884c7d65 and blk_-1608999687919862906",
    ])).to_pylist()
    assert got == [
        "timeout at <TS> after <NUM> s",
        "record <UUID> missing",
        "refused <IP> and <URL>",
        "KeyError: <STR> in <STR> but can't mask apostrophes",
        "No such file: <PATH> at <PATH>:<NUM>",
        "pointer <NUM> and object <NUM> and blk_<NUM>",
    ]


def failing(test, build, message, error_type="AssertionError", text=None):
    return {"test": test, "build": build, "status": "failed", "error_type": error_type,
            "error_message": message, "error_text": text}


def test_a_cluster_carries_its_template_counts_tests_and_every_occurrence():
    runs = [failing("t1", 1, "timed out after 30 s connecting to 10.0.0.1:80"),
            failing("t2", 2, "timed out after 45 s connecting to 10.0.0.2:81"),
            {"test": "t3", "build": 2, "status": "passed"},
            failing("t1", 3, "timed out after 5 s connecting to 10.0.0.3:82"),
            failing("t3", 3, "expected 3 rows but got 4", text="line one\nline two\nline three\nline four")]
    table = failure_clusters(make_results(runs))
    rows = table.to_pylist()
    assert [r["count"] for r in rows] == [3, 1]
    timeout = rows[0]
    assert timeout["template"] == "AssertionError timed out after <NUM> s connecting to <IP>"
    assert timeout["occurrences"] == [{"test": "t1", "build": 1}, {"test": "t2", "build": 2},
                                      {"test": "t1", "build": 3}]
    assert (timeout["tests"], timeout["tests_affected"]) == (["t1", "t2"], 2)
    assert (timeout["first_build"], timeout["last_build"]) == (1, 3)
    assert timeout["first_seen"] < timeout["last_seen"]
    # Only the first three lines of the text belong to the message.
    assert rows[1]["template"] == "AssertionError expected <NUM> rows but got <NUM> line one line two line three"
    assert table.schema.field("occurrences").type == pa.list_(
        pa.struct([("test", pa.string()), ("build", pa.int64())]))


def test_the_cluster_id_is_the_same_on_every_refresh():
    runs = [failing("t", b, f"worker {b} crashed") for b in range(1, 4)]
    first = failure_clusters(make_results(runs))["cluster_id"].to_pylist()
    assert first == failure_clusters(make_results(runs[::-1]))["cluster_id"].to_pylist()


def test_unmasked_variable_words_become_wildcards_and_different_problems_stay_apart():
    messages = [f"cannot reach service {name} from the test runner" for name in ("redis", "kafka", "minio")]
    messages += ["disk quota exceeded on volume", "disk quota exceeded on volume"]
    group, templates = group_messages(messages)
    assert list(group[:3]) == [group[0]] * 3 and group[3] == group[4] != group[0]
    assert "cannot reach service <*> from the test runner" in templates


def test_no_failures_no_clusters_and_missing_messages_group_together():
    assert failure_clusters(make_results([{"test": "t", "build": 1, "status": "passed"}])).num_rows == 0
    runs = [{"test": "t", "build": b, "status": "error"} for b in (1, 2)]
    rows = failure_clusters(make_results(runs)).to_pylist()
    assert len(rows) == 1 and rows[0]["count"] == 2


def test_grouping_accuracy_counts_a_line_right_only_when_its_group_is_exact():
    assert grouping_accuracy([1, 1, 2, 2], ["a", "a", "b", "b"]) == 1.0
    assert grouping_accuracy([1, 1, 1, 2], ["a", "a", "b", "b"]) == 0.0  # merged a+b, split b
    assert grouping_accuracy([1, 1, 2, 3], ["a", "a", "b", "b"]) == 0.5  # b split: only a right


def test_the_labelled_corpus_groups_by_family():
    from vault_pipeline.core.insights import failure_messages
    from vault_pipeline_tests.fixtures.insights_history import history

    results = history(60, 60, seed=5).results
    failed = results.filter(pc.is_valid(results["family"]))
    group, _ = group_messages(failure_messages(failed))
    assert grouping_accuracy(group, failed["family"].to_pylist()) >= 0.95
