"""Pushed test runs: every test case of a real runner's report is an exact byte range, read back to the same fields."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from vault_pipeline.core.junit import (
    BodyTooLargeError,
    CaseResult,
    JUnitError,
    MalformedBodyError,
    NotTestResultsError,
    RunResult,
    TooDeepError,
    UnsafeXMLError,
    UnsupportedEncodingError,
    parse_junit,
    parse_result_json,
    parse_testcase,
    stable_id,
)
from vault_pipeline_tests.fixtures import junit_files
from vault_pipeline_tests.fixtures.junit_files import (
    PRODUCERS,
    generated_report,
    junit_file,
)


def _run(name: str) -> tuple[bytes, RunResult]:
    body = junit_file(name)
    return body, parse_junit(body)


def _case(run: RunResult, name: str) -> CaseResult:
    [case] = [case for case in run.cases if case.name == name]
    return case


def _assert_exact_spans(body: bytes, run: RunResult) -> None:
    """Each case's bytes are its <testcase> element as sent, in order, and read back to the same case."""
    previous_end = 0
    for case in run.cases:
        element = body[case.start : case.end]
        assert case.start >= previous_end
        assert element.startswith(b"<testcase") and element.endswith(b">")
        assert element.endswith((b"/>", b"</testcase>")) or element.rstrip(b" \t\r\n>").endswith(b"</testcase")
        again = parse_testcase(element, suite_path=case.suite_path)
        assert (again.start, again.end) == (0, len(element))
        assert replace(again, start=case.start, end=case.end) == case
        previous_end = case.end


# -- every producer's file -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_every_testcase_of_every_producer_is_an_exact_byte_range_that_reads_back_the_same(name):
    body, run = _run(name)
    assert len(run.cases) == body.count(b"<testcase ")
    _assert_exact_spans(body, run)
    assert run.consistent, run.mismatches
    assert run.format == "junit"


def test_pytest_xunit2_report_gives_a_failure_an_error_and_skips():
    _, run = _run("pytest_xunit2.xml")
    assert run.name == "pytest tests"
    assert [suite.name for suite in run.suites] == ["vault-ledger"]
    assert (run.totals.tests, run.totals.failures, run.totals.errors, run.totals.skipped, run.totals.passed) == (8, 1, 1, 2, 4)

    failed = _case(run, "test_rejects_tampered_entry")
    assert failed.status == "failed"
    assert failed.test_id == "tests.test_ledger::test_rejects_tampered_entry"
    assert failed.suite == "vault-ledger" and failed.suite_path == ("vault-ledger",)
    assert failed.problem.message.startswith("AssertionError: Merkle root changed & chain broken\nassert {'root'")
    assert failed.problem.text.endswith("tests/test_ledger.py:19: AssertionError")
    assert ">       assert actual == expected" in failed.problem.text  # &gt; decoded
    assert failed.problem.type is None  # pytest writes no type on failures

    errored = _case(run, "test_loads_keys")
    assert errored.status == "error"
    assert errored.problem.kind == "error"
    assert errored.problem.message == 'failed on setup with "FileNotFoundError: keystore not found: /etc/vault/keys.jks"'

    assert _case(run, "test_upload_to_s3").skip_message == "needs S3 credentials"
    xfail = _case(run, "test_known_bug")
    assert (xfail.status, xfail.skip_message) == ("skipped", "known bug VAULT-99")
    assert _case(run, "test_append_entry").properties == (("owner", "ledger-team"), ("ticket", "VAULT-412"))
    assert _case(run, "test_append_entry").property("ticket") == "VAULT-412"
    assert failed.file is None and failed.line is None  # xunit2 drops file and line


def test_pytest_xunit1_report_carries_file_line_output_sizes_and_unicode_ids():
    _, run = _run("pytest_xunit1.xml")
    case = _case(run, "test_append_entry")
    assert (case.file, case.line) == ("tests/test_ledger.py", 8)
    assert case.system_out_bytes == len(
        "--------------------------------- Captured Log ---------------------------------\n\n"
        "--------------------------------- Captured Out ---------------------------------\n"
        "appending entry 7 to chain <main>\n\n"
    )
    assert case.system_err_bytes > 0
    # pytest writes a skipped test's output twice; both count
    assert _case(run, "test_upload_to_s3").system_out_bytes == 2 * _case(run, "test_known_bug").system_out_bytes
    assert {"test_greeting[café]", "test_greeting[Ωmega]", "test_greeting[emoji_😀]"} <= {c.name for c in run.cases}


def test_surefire_report_with_jvm_properties_cdata_traces_output_and_a_flaky_rerun():
    _, run = _run("surefire_TEST-com.acme.vault.LedgerTest.xml")
    [suite] = run.suites
    assert suite.name == "com.acme.vault.LedgerTest"
    assert dict(suite.properties)["line.separator"] == "\n"
    assert dict(suite.properties)["java.vm.version"] == "21.0.3+9-LTS"

    failed = _case(run, "rejectsTamperedEntry")
    assert failed.problem.type == "org.opentest4j.AssertionFailedError"
    assert failed.problem.message == "expected: <true> but was: <false>"
    assert failed.problem.text.startswith("org.opentest4j.AssertionFailedError: expected: <true> but was: <false>\n\tat ")
    assert failed.system_out_bytes == len(
        "12:00:01.123 [main] INFO  com.acme.vault.Ledger - appending entry 7 (prev=9f2c…e1)\n"
        "12:00:01.125 [main] WARN  com.acme.vault.Ledger - hash chain broken at entry 7 & 8\n".encode()
    )
    assert _case(run, "loadsKeys").status == "error"
    assert _case(run, "loadsKeys").system_err_bytes == len("SLF4J: No SLF4J providers were found.\n")

    flaky = _case(run, "connectsToObjectStore")
    assert flaky.status == "passed"  # it passed on the rerun
    [rerun] = flaky.reruns
    assert (rerun.kind, rerun.type, rerun.message) == ("flakyFailure", "java.net.SocketTimeoutException", "Read timed out")
    assert rerun.text.startswith("java.net.SocketTimeoutException: Read timed out\n")
    assert flaky.system_out_bytes == 0  # the rerun's own output is not the case's
    assert flaky.duration_ms == 1807.0
    assert _case(run, "verifiesSignatureSlowly").skip_message == "Disabled until VAULT-123 is fixed"


def test_gradle_report_decodes_entities_and_keeps_suite_output_sizes():
    _, run = _run("gradle_TEST-com.acme.vault.MerkleTest.xml")
    failed = _case(run, "proofVerifies(int)[2]")
    assert failed.problem.message.endswith("expected <0x9f2c> & got <0x0000>")
    assert "expected <0x9f2c> & got <0x0000>\n\tat org.junit.Assert.fail" in failed.problem.text
    assert failed.test_id == "com.acme.vault.MerkleTest::proofVerifies(int)[2]"
    skipped = _case(run, "largeTree()")
    assert (skipped.status, skipped.skip_message, skipped.duration_ms) == ("skipped", None, 0.0)
    [suite] = run.suites
    assert suite.system_out_bytes == len("building tree of 1024 leaves\nroot = 9f2c41d0\n")
    assert suite.system_err_bytes == 0
    assert (suite.hostname, suite.timestamp, suite.duration_ms) == ("ci-runner-3", "2026-05-01T10:02:03", 87.0)


def test_jest_junit_report_with_unicode_titles_and_a_failure_without_message():
    _, run = _run("jest-junit.xml")
    assert [suite.name for suite in run.suites] == ["ledger/verify.test.ts", "dashboard/chart.test.tsx"]
    failed = _case(run, "verify › chain rejects a tampered entry")
    assert (failed.problem.message, failed.problem.type) == (None, None)
    assert "at Object.<anonymous> (/builds/acme/web/src/ledger/verify.test.ts:42:23)" in failed.problem.text
    assert failed.file == "src/ledger/verify.test.ts"
    unicode_case = _case(run, "verify › signatures 🔐 Ünïcödé key ids")
    assert unicode_case.status == "passed"
    assert unicode_case.test_id == "verify › signatures 🔐 Ünïcödé key ids::verify › signatures 🔐 Ünïcödé key ids"
    # jest-junit's root declares no skipped count: nothing to compare, nothing flagged
    assert run.declared.skipped is None and run.declared.tests == 6 and run.consistent


def test_gotestsum_report_with_go_escapes_and_a_parent_failing_with_its_subtest():
    _, run = _run("gotestsum.xml")
    sub = _case(run, "TestVerify/tampered_entry")
    assert sub.test_id == "github.com/acme/vault/pkg/ledger::TestVerify/tampered_entry"
    assert sub.problem.text == (
        "=== RUN   TestVerify/tampered_entry\n    ledger_test.go:88: root mismatch: got \"ab13\", want \"ab12\"\n"
        "--- FAIL: TestVerify/tampered_entry (0.02s)\n"
    )
    assert sub.problem.type == ""  # gotestsum writes type=""; kept as sent
    assert _case(run, "TestVerify").status == "failed"
    skipped = _case(run, "TestSlowReplay")
    assert skipped.skip_message.splitlines()[1] == "    ledger_test.go:120: skipping in -short mode"
    assert dict(run.suites[0].properties) == {"go.version": "go1.22.2 linux/amd64"}
    assert _case(run, "TestAppend").duration_ms == 10.0


def test_phpunit_nested_suites_give_each_case_its_nearest_suite_and_full_path():
    _, run = _run("phpunit_nested.xml")
    case = _case(run, 'testRejects with data set "forged signature"')
    assert case.suite == "Acme\\Vault\\Tests\\LedgerTest::testRejects"
    assert case.suite_path == ("", "Unit", "Acme\\Vault\\Tests\\LedgerTest", "Acme\\Vault\\Tests\\LedgerTest::testRejects")
    assert (case.file, case.line, case.duration_ms) == ("/app/tests/Unit/LedgerTest.php", 31, 7.207)
    assert case.problem.type == "PHPUnit\\Framework\\ExpectationFailedException"
    counted = {suite.path[-1]: suite.counted for suite in run.suites}
    assert counted["Unit"].tests == 5 and counted["Acme\\Vault\\Tests\\LedgerTest"].tests == 4
    assert counted["Acme\\Vault\\Tests\\LedgerTest::testRejects"].failures == 1
    assert all(not suite.mismatches for suite in run.suites)  # every level's declared totals hold


def test_windows_report_with_bom_crlf_single_quotes_and_locale_formatted_times():
    body, run = _run("windows_crlf_bom_single_quotes.xml")
    assert body.startswith(b"\xef\xbb\xbf")
    failed = _case(run, 'restore "golden" zone')
    element = body[failed.start : failed.end]
    assert element.startswith(b"<testcase classname='Vault.Integration.Backup'")
    assert b"\r\n" in element  # line endings inside the record are the sender's
    assert failed.problem.message == "restore took too long: 29.75 s > 20 s"
    assert failed.system_out_bytes == len("copying 1,024 objects\r\ndone")
    assert _case(run, "full backup of C:\\vault\\objects").duration_ms == 1_204_250.0  # time='1,204.25'
    assert run.suites[0].duration_ms == 1_234_500.0  # time='1,234.5'
    decimal_comma = _case(run, "prüfsumme über alle Objekte")
    assert decimal_comma.duration_ms is None  # time='0,5' is never guessed at
    assert decimal_comma.notes == ("time '0,5' is not a number of seconds; the duration is left unknown",)
    assert dict(run.suites[0].properties) == {"agent.os": "Windows Server 2022 & WSL2"}


# -- reading rules ---------------------------------------------------------------------------


def _one_case(testcase: str) -> CaseResult:
    [case] = parse_junit(f'<testsuite name="s">{testcase}</testsuite>'.encode()).cases
    return case


@pytest.mark.parametrize(
    ("time_attr", "milliseconds"),
    [("0.5", 500.0), ("0.123", 123.0), ("12", 12_000.0), ("1e-3", 1.0), (".25", 250.0), (" 2.5 ", 2500.0),
     ("1,234.5", 1_234_500.0), ("12,345,678.9", 12_345_678_900.0)],
)
def test_durations_are_seconds_turned_into_milliseconds_exactly(time_attr, milliseconds):
    assert _one_case(f'<testcase name="t" time="{time_attr}"/>').duration_ms == milliseconds


@pytest.mark.parametrize("time_attr", ["1,234", "0,5", "-1", "nan", "inf", "", "fast", "1e999", "1e99999999999999999999"])
def test_a_time_that_is_not_plainly_seconds_leaves_the_duration_unknown_with_a_note(time_attr):
    case = _one_case(f'<testcase name="t" time="{time_attr}"/>')
    assert case.duration_ms is None
    assert len(case.notes) == 1 and repr(time_attr) in case.notes[0]


def test_a_case_without_time_has_unknown_duration_and_no_note():
    case = _one_case('<testcase name="t" classname="c"/>')
    assert (case.duration_ms, case.notes, case.status) == (None, (), "passed")


def test_the_first_failure_or_error_sets_the_status_and_every_one_is_kept():
    case = _one_case('<testcase name="t"><skipped/><error message="teardown"/><failure message="call"/></testcase>')
    assert case.status == "error"
    assert [(p.kind, p.message) for p in case.problems] == [("error", "teardown"), ("failure", "call")]
    assert _one_case('<testcase name="t"><skipped/><failure message="xpass strict"/></testcase>').status == "failed"


def test_stable_id_prefers_classname_then_suite_then_the_bare_name():
    assert stable_id("pkg.Mod", "test_x", "suite") == "pkg.Mod::test_x"
    assert stable_id(None, "test_x", "suite") == "suite::test_x"
    assert stable_id("", "test_x", None) == "test_x"
    assert _one_case('<testcase name="t"/>').test_id == "s::t"


def test_counts_and_line_numbers_that_are_not_plain_digits_are_not_read():
    run = parse_junit('<testsuite tests="²" failures="-1" errors="1.0"><testcase name="t" line="²"/></testsuite>'.encode())
    assert (run.declared.tests, run.declared.failures, run.declared.errors) == (None, None, None)
    assert run.cases[0].line is None and run.cases[0].notes == ("line '²' is not a line number",)


def test_a_testcase_without_a_name_is_kept_with_a_note():
    case = _one_case('<testcase classname="c"/>')
    assert (case.name, case.test_id) == ("", "c::")
    assert case.notes == ("the testcase has no name attribute",)


def test_failure_text_and_message_are_cut_to_the_byte_budget_on_a_character_boundary():
    long_text = "é" * 30_000  # 60,000 UTF-8 bytes
    case = parse_junit(
        f'<testsuite><testcase name="t"><failure message="{"m" * 20_000}">{long_text}</failure></testcase></testsuite>'.encode(),
        max_text_bytes=1001,
    ).cases[0]
    assert case.problem.truncated
    assert case.problem.text == "é" * 500  # 1000 bytes: the 1001st would split a character
    assert case.problem.message == "m" * 1001
    short = parse_junit(b'<testsuite><testcase name="t"><failure>short</failure></testcase></testsuite>').cases[0]
    assert (short.problem.text, short.problem.truncated) == ("short", False)


@pytest.mark.parametrize(
    "testcase",
    [
        b'<testcase name="a/>b" classname=">x"/>',  # "/>" and ">" inside attribute values
        b"<testcase name='it&apos;s \"q\" />'\n\tclassname='c' />",  # single quotes holding double ones
        b'<testcase name="t"></testcase >',  # whitespace before the end tag's ">"
        b'<testcase name="t"><failure><![CDATA[</testcase>]]></failure></testcase>',
        b'<testcase name="t"><!-- </testcase> --></testcase>',
    ],
)
def test_spans_are_exact_around_tricky_tag_endings(testcase):
    body = b'<testsuite name="s">' + testcase + b"</testsuite>"  # a self-closing case right before </testsuite>
    run = parse_junit(body)
    [case] = run.cases
    assert body[case.start : case.end] == testcase
    _assert_exact_spans(body, run)


def test_declared_totals_that_disagree_with_the_cases_are_flagged_not_refused():
    body = b"""<testsuites>
      <testsuite name="a" tests="3" failures="2" errors="0" skipped="0">
        <testcase name="1"/><testcase name="2"><failure/></testcase>
      </testsuite>
      <testsuite name="b" tests="1" failures="0"><testcase name="3"/></testsuite>
    </testsuites>"""
    run = parse_junit(body)
    assert len(run.cases) == 3
    assert not run.consistent
    assert run.declared.tests == 4 and run.declared.failures == 2  # summed over the top-level suites
    assert run.mismatches == (
        "the run declares tests=4 but its test cases give 3",
        "the run declares failures=2 but its test cases give 1",
        "suite 'a' declares tests=3 but its test cases give 2",
        "suite 'a' declares failures=2 but its test cases give 1",
    )


def test_a_bare_testsuite_root_declares_the_run_totals():
    run = parse_junit(b'<testsuite name="only" tests="2" skipped="1"><testcase name="x"/><testcase name="y"><skipped/></testcase></testsuite>')
    assert (run.name, run.declared.tests, run.declared.skipped, run.totals.skipped) == ("only", 2, 1, 1)
    assert run.consistent


def test_a_stored_record_reads_back_through_parse_testcase_and_maps_to_the_test_result_kind():
    body, run = _run("surefire_TEST-com.acme.vault.LedgerTest.xml")
    case = _case(run, "loadsKeys")
    record = parse_testcase(body[case.start : case.end], suite=case.suite).as_record()
    assert record["suite"] == "com.acme.vault.LedgerTest"
    assert record["test"] == "loadsKeys" and record["status"] == "error"
    assert record["error"]["type"] == "java.io.FileNotFoundException"
    assert record["error"]["message"] == "keystore not found: /etc/vault/keys.jks"
    assert record["duration_ms"] == 2.0
    with pytest.raises(NotTestResultsError, match="expected a <testcase> element, found <testsuite>"):
        parse_testcase(body)


# -- hostile bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attack", "says"),
    [
        (junit_files.BILLION_LAUGHS, "<!DOCTYPE lolz> with an internal subset"),
        (junit_files.QUADRATIC_BLOWUP, "<!DOCTYPE t> with an internal subset"),
        (junit_files.EXTERNAL_SYSTEM_ENTITY, "<!DOCTYPE testsuite> with an internal subset"),
        (junit_files.EXTERNAL_PUBLIC_DTD, "external PUBLIC identifier '-//ACME//JUnit//EN'"),
        (junit_files.PARAMETER_ENTITY, "<!DOCTYPE testsuite> with an internal subset"),
        (b'<!DOCTYPE testsuite SYSTEM "file:///etc/passwd"><testsuite/>', "external SYSTEM identifier 'file:///etc/passwd'"),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "<!DOCTYPE html>"),
    ],
)
def test_any_doctype_is_refused_before_an_entity_is_expanded_or_fetched(attack, says):
    started = time.perf_counter()
    with pytest.raises(UnsafeXMLError, match="DTDs are refused") as refused:
        parse_junit(attack)
    assert says in str(refused.value)
    assert refused.value.code == "unsafe_xml"
    assert time.perf_counter() - started < 0.5  # refused at the declaration, nothing expanded


def test_xinclude_is_refused_never_resolved():
    with pytest.raises(UnsafeXMLError, match=r"uses XInclude \(on <testsuite>, line 2\)"):
        parse_junit(junit_files.XINCLUDE)
    with pytest.raises(UnsafeXMLError, match="XInclude"):
        parse_junit(b'<testsuite><testcase name="t"><xi:include href="/etc/passwd"/></testcase></testsuite>')


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'<testsuite name="s">\n  <testcase name="t"></testsuit>\n</testsuite>', "malformed XML at line 2, column 24: mismatched tag"),
        (b'<testsuite name="s"><testcase name="t">', "ends before its root element is complete"),
        (b'<testsuite name="s"/><testsuite name="again"/>', "line 1, column 22: junk after document element"),
        (b'<testsuite><testcase name="t">&nbsp;</testcase></testsuite>', "undefined entity"),
        (b'<testsuite name="s" name="twice"/>', "duplicate attribute"),
        (b"", "the body is empty"),
        (b"  \r\n ", "the body is empty"),
    ],
)
def test_malformed_xml_is_refused_with_where_it_broke(body, says):
    with pytest.raises(MalformedBodyError) as refused:
        parse_junit(body)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "the root element is <html> (an HTML error page?)"),
        (b'<?xml version="1.0"?><test-run testcasecount="1"/>', "the root element is <test-run>"),  # NUnit 3
        (b'<testsuite><testcase name="a"><testcase name="b"/></testcase></testsuite>', "a <testcase> inside a <testcase>"),
        (b'<testsuite><testcase name="a"><testsuite/></testcase></testsuite>', "a <testsuite> inside a <testcase>"),
    ],
)
def test_xml_that_is_not_a_junit_report_is_refused(body, says):
    with pytest.raises(NotTestResultsError) as refused:
        parse_junit(body)
    assert says in str(refused.value)


def test_a_body_over_the_limit_is_refused_before_it_is_parsed_and_one_at_the_limit_is_read():
    body = junit_file("gotestsum.xml")
    with pytest.raises(BodyTooLargeError, match=f"the body is {len(body)} bytes, over the limit of {len(body) - 1} bytes") as refused:
        parse_junit(body, max_bytes=len(body) - 1)
    assert refused.value.code == "body_too_large"
    assert len(parse_junit(body, max_bytes=len(body)).cases) == 5


def test_absurd_nesting_is_refused_and_the_limit_can_be_raised():
    with pytest.raises(TooDeepError, match="elements nest more than 32 deep"):
        parse_junit(junit_files.deeply_nested(40))
    with pytest.raises(TooDeepError):
        parse_junit(junit_files.deeply_nested(200_000))
    assert parse_junit(junit_files.deeply_nested(40), max_depth=41).suites[-1].path == ("s",) * 40


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('<?xml version="1.0" encoding="UTF-16"?><testsuite name="s"/>'.encode("utf-16"), "UTF-16 or UTF-32"),
        ('<testsuite name="s"/>'.encode("utf-16-le"), "UTF-16 or UTF-32"),
        ('<testsuite name="s"/>'.encode("utf-32"), "UTF-16 or UTF-32"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><testsuite name="caf\xe9"/>', "names encoding 'ISO-8859-1'"),
        (b'<?xml version="1.0" encoding="windows-1252"?><testsuite name="s"/>', "names encoding 'windows-1252'"),
        (b'<testsuite name="caf\xe9"/>', "not valid UTF-8 (byte 20: invalid continuation byte)"),
    ],
)
def test_anything_but_utf8_is_refused_rather_than_transcoded(body, says):
    with pytest.raises(UnsupportedEncodingError) as refused:
        parse_junit(body)
    assert says in str(refused.value)


@pytest.mark.parametrize("prefix", [b'<?xml version="1.0" encoding="utf-8"?>', b"<?xml version='1.0' encoding='US-ASCII'?>", b"\xef\xbb\xbf", b""])
def test_utf8_declared_any_way_or_with_a_bom_is_read_and_spans_count_every_byte(prefix):
    body = prefix + b'\n<testsuite name="s"><testcase name="t"/></testsuite>'
    [case] = parse_junit(body).cases
    assert body[case.start : case.end] == b'<testcase name="t"/>'


def test_every_refusal_is_a_junit_error_with_a_code():
    for body in (junit_files.BILLION_LAUGHS, b"<html/>", b"<testsuite>", b'<testsuite name="\xff"/>'):
        with pytest.raises(JUnitError) as refused:
            parse_junit(body)
        assert refused.value.code in {"unsafe_xml", "not_test_results", "malformed_body", "unsupported_encoding"}


# -- JSON test results -----------------------------------------------------------------------

RESULTS_JSON = (
    '[\n  {"suite": "checkout", "test": "test_refund_😀", "status": "failed", "duration_ms": 1234.5,\n'
    '   "error": {"type": "AssertionError", "message": "expected 200, got 503"}, "ci": {"build": 18446744073709551617}},\n'
    '  {"suite": "checkout", "test": "test_login", "status": "passed", "duration_ms": 12, "classname": "tests.auth"},\n'
    '  {"suite": "search", "test": "test_rank", "status": "skipped", "skip_message": "flaky index", "duration_ms": null}\n]'
).encode()


def test_json_results_are_exact_byte_ranges_with_the_same_record_shape():
    run = parse_result_json(RESULTS_JSON)
    assert run.format == "json"
    first, second, third = run.cases
    assert RESULTS_JSON[first.start : first.end].startswith(b'{"suite": "checkout", "test": "test_refund_\xf0\x9f\x98\x80"')
    assert RESULTS_JSON[first.start : first.end].endswith(b'"ci": {"build": 18446744073709551617}}')
    assert RESULTS_JSON[third.start : third.end] == (
        b'{"suite": "search", "test": "test_rank", "status": "skipped", "skip_message": "flaky index", "duration_ms": null}'
    )
    assert (first.status, first.duration_ms, first.problem.type, first.problem.message) == (
        "failed", 1234.5, "AssertionError", "expected 200, got 503")
    assert first.test_id == "checkout::test_refund_😀"
    assert (second.test_id, second.duration_ms) == ("tests.auth::test_login", 12.0)
    assert (third.skip_message, third.duration_ms) == ("flaky index", None)
    assert (run.totals.tests, run.totals.failures, run.totals.skipped) == (3, 1, 1)
    assert [(suite.name, suite.counted.tests) for suite in run.suites] == [("checkout", 2), ("search", 1)]
    junit_case = parse_junit(junit_file("gotestsum.xml")).cases[0]
    assert first.as_record().keys() == junit_case.as_record().keys()


def test_json_results_with_bad_fields_are_kept_with_notes_for_validation_to_judge():
    body = b'[{"suite": "s", "test": 7, "status": "exploded", "duration_ms": -1, "error": "boom", "line": "x"}]'
    run = parse_result_json(body)
    [case] = run.cases
    assert (case.name, case.status, case.duration_ms, case.line) == ("7", "exploded", None, None)
    assert case.notes == (
        "test is int, not a string",
        "status 'exploded' is not one of passed, failed, error, skipped",
        "duration_ms -1 is not a non-negative number; the duration is left unknown",
        "error is str, not an object",
        "line 'x' is not a line number",
    )
    assert run.notes == ("1 test results have an unknown status (counted in tests, and so in passed)",)


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b'{"records": []}', NotTestResultsError, "expected a JSON array"),
        (b'[{"test": "a"}, 3]', NotTestResultsError, "test result 1 is int, not a JSON object"),
        (b'[{"test": "a"', MalformedBodyError, "invalid JSON"),
        (b"[" * 100 + b"]" * 100, TooDeepError, "100 levels deep"),
        (b'[{"test": "caf\xe9"}]', MalformedBodyError, "not valid UTF-8"),
    ],
)
def test_json_that_is_not_an_array_of_results_is_refused(body, error, says):
    with pytest.raises(error) as refused:
        parse_result_json(body)
    assert says in str(refused.value)


def test_json_body_over_the_limit_is_refused():
    with pytest.raises(BodyTooLargeError):
        parse_result_json(RESULTS_JSON, max_bytes=100)


# -- a large run -------------------------------------------------------------------------------


def test_ten_thousand_testcases_are_framed_exactly_and_quickly():
    body = generated_report(10_000)
    started = time.perf_counter()
    run = parse_junit(body)
    elapsed = time.perf_counter() - started
    assert len(run.cases) == 10_000
    assert run.consistent, run.mismatches[:3]
    assert run.totals.failures > 400 and run.totals.errors > 50 and run.totals.skipped > 200
    _assert_exact_spans(body, run)
    # Measured at about 130,000 test cases/s (11 MB/s of XML); the bound only catches a collapse.
    assert elapsed < 2.0, f"{len(run.cases) / elapsed:,.0f} test cases/s"
