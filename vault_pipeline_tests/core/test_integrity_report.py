"""The integrity report: which findings fail a partition, exact counts, capped listing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import vault_pipeline
from vault_pipeline.core.integrity import FAILING, MAX_LISTED, WARNING, IntegrityReport


def test_empty_report_is_clean():
    report = IntegrityReport("2026-01-01-00:00|acme", counts={"objects": 3, "records": 10})
    assert report.clean and report.failing == 0
    assert report.to_dict() == {
        "partition": "2026-01-01-00:00|acme",
        "clean": True,
        "counts": {"objects": 3, "records": 10},
        "finding_counts": {},
        "findings": [],
    }
    assert report.markdown().startswith("No discrepancies")


@pytest.mark.parametrize("kind", sorted(FAILING))
def test_each_failing_kind_fails_the_partition(kind):
    report = IntegrityReport("p")
    report.add(kind, key="raw/x")
    assert not report.clean
    assert report.failing == 1
    assert report.to_dict()["clean"] is False


@pytest.mark.parametrize("kind", sorted(WARNING))
def test_warnings_are_reported_but_do_not_fail(kind):
    report = IntegrityReport("p")
    report.add(kind, key="raw/x")
    assert report.clean and report.failing == 0
    assert report.to_dict()["finding_counts"] == {kind: 1}
    assert kind in report.markdown()


def test_failing_and_warning_kinds_do_not_overlap():
    assert not FAILING & WARNING


def test_counts_mix_kinds_and_detail_is_listed():
    report = IntegrityReport("p")
    report.add("missing_object", key="raw/a.json")
    report.add("missing_object", key="raw/b.json")
    report.add("orphaned_object", key="raw/c.json")
    report.add("changed_record", log_id="log_1", offset=10)
    assert report.failing == 3
    data = report.to_dict()
    assert data["finding_counts"] == {"changed_record": 1, "missing_object": 2, "orphaned_object": 1}
    assert list(data["finding_counts"]) == sorted(data["finding_counts"])
    assert data["findings"][3] == {"type": "changed_record", "log_id": "log_1", "offset": 10}
    json.dumps(data)  # serialisable as stored


def test_listing_is_capped_but_counting_is_exact():
    report = IntegrityReport("p")
    for i in range(MAX_LISTED + 25):
        report.add("changed_object", key=f"raw/{i}.json")
    report.add("orphaned_object", key="raw/late.json")
    assert len(report.findings) == MAX_LISTED
    assert report.finding_counts["changed_object"] == MAX_LISTED + 25
    assert report.finding_counts["orphaned_object"] == 1  # counted though not listed
    assert report.failing == MAX_LISTED + 25


def test_markdown_limits_rows_and_says_how_many_more():
    report = IntegrityReport("p")
    for i in range(20):
        report.add("missing_in_catalog", log_id=f"log_{i}")
    text = report.markdown(limit=5)
    rows = [line for line in text.splitlines() if line.startswith("| missing_in_catalog")]
    assert len(rows) == 5
    assert "log_id=log_0" in rows[0]
    assert "| ... | 15 more |" in text


def test_every_finding_kind_the_diff_emits_is_classified():
    root = Path(vault_pipeline.__file__).parent
    emitted = set()
    for path in [*root.joinpath("defs", "integrity").glob("*.py"), *root.joinpath("core").glob("*.py")]:
        emitted |= set(re.findall(r'\.add\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert emitted, "no findings found in the snapshot diff code"
    assert emitted <= FAILING | WARNING, emitted - (FAILING | WARNING)
