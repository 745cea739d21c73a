"""Scenario: a CI step pushes its test reports with ``vault push junit`` (and a QA job its agent
results with ``vault push agent``), into this machine's vault or a running one.

A CI job ends with one line, ``vault push junit reports/*.xml --provider ci``. Without ``--url``
each report is stored byte-exact in the local vault (``VAULT_HOME``) and the hour's graph runs
here: the command names each file's run id, its partition and counts, and the catalog and the
lake then hold every test case, with the commit, branch and build the CI system put in the
environment. Pushing the same reports again (a retried CI step) is the same run and launches no
Dagster run. A hostile report is refused by code (exit 2) without keeping the good ones out; a
path that cannot be read is exit 2 before anything is stored. With ``--url`` (or ``VAULT_URL``)
the reports go to ``POST /v1/test-runs`` of a vault served on loopback, and the command follows
each run until the server says it completed; without ``VAULT_API_KEY`` it stops at once (exit 2)
and a vault that is not listening is exit 1 with the address in the message. The embedded
scenarios run ``vault`` in-process (the ``operator`` fixture); the ones about the installed
command, its environment and ``--json`` run it as a subprocess, as a CI runner would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from vault_pipeline.core.junit import parse_junit
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.push.cli import CI_DEFAULTS
from vault_pipeline_tests.fixtures.api import VaultService
from vault_pipeline_tests.fixtures.junit_files import (
    BILLION_LAUGHS,
    JUNIT_DIR,
    XINCLUDE,
    counts_of,
    junit_file,
    sha256,
)
from vault_pipeline_tests.fixtures.provider_server import closed_port_url

CI, AGENTS = "ci", "agents"
PROVIDERS = {CI: {"type": "push", "kind": "test_result"}, AGENTS: {"type": "push", "kind": "agent_result"}}
# The embedded vault runs on the real clock: a complete hour of yesterday, after the vault's first hour.
HOUR = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
HOUR_KEY = HOUR.strftime("%Y-%m-%d-%H:00")
HOUR_PATH = HOUR.strftime("%Y/%m/%d/%H")
STARTED_AT = (HOUR + timedelta(minutes=17)).strftime("%Y-%m-%dT%H:%M:%SZ")
FIRST_HOUR = (HOUR - timedelta(days=2)).strftime("%Y-%m-%d-%H:00")
CI_VARIABLES = sorted({name for names in CI_DEFAULTS.values() for name in names})
VAULT = str(Path(sys.executable).with_name("vault"))
# "FILE: tr_... completed (PARTITION; tests 8, passed 4, ...)[ - already pushed: the same run][; N record(s) ...]"
LINE = re.compile(r"^(?P<file>.+): (?P<run_id>(?:tr|ax)_[0-9a-f]{32}) (?P<state>\w+) "
                  r"\((?P<partition>[^;]+); (?P<counts>[^)]*)\)(?P<rest>.*)$")
PYTEST, JEST, GOTEST, SUREFIRE = ("pytest_xunit1.xml", "jest-junit.xml", "gotestsum.xml",
                                  "surefire_TEST-com.acme.vault.LedgerTest.xml")


def printed_counts(line: dict[str, str]) -> dict[str, int]:
    """``tests 8, passed 4, ...`` of a result line as a dict (the order is the answer's)."""
    return {name: int(value) for name, value in (part.split(" ") for part in line["counts"].split(", "))}


def result_lines(out: str) -> dict[str, dict[str, str]]:
    """The per-file lines of the command's output, by file (step progress lines are skipped)."""
    found = {}
    for line in out.splitlines():
        match = LINE.match(line)
        if match:
            found[match["file"]] = match.groupdict()
    return found


class LocalVault:
    """The vault a ``vault push`` wrote to, through the product's own ports, opened fresh."""

    def __init__(self, home: Path, config: Path) -> None:
        self.home, self.config = home, config

    def _ports(self) -> VaultResource:
        return VaultResource(home=str(self.home), config_path=str(self.config))

    def count(self, provider: str) -> int:
        return self._ports().catalog().count_records(provider=provider)

    def dead_letters(self, provider: str) -> list:
        return self._ports().catalog().list_dead_letters(provider=provider)

    def rows(self, table: str, provider: str) -> list[dict[str, Any]]:
        lake = self._ports().lake()
        return lake.read(table, provider=provider).to_pylist() if lake.exists(table) else []

    def keys(self, prefix: str) -> list[str]:
        root = self.home / "objects"
        if not root.exists():
            return []
        found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def get(self, key: str) -> bytes:
        return (self.home / "objects" / key).read_bytes()

    def runs(self) -> int:
        """Dagster runs recorded on the vault's instance ($VAULT_HOME/dagster)."""
        if not (self.home / "dagster" / "dagster.yaml").exists():
            return 0
        with dg.DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            return instance.get_runs_count()


def write_config(path: Path) -> None:
    path.write_text(yaml.safe_dump({"providers": PROVIDERS, "partitions": {"start": FIRST_HOUR}}))


@pytest.fixture
def pusher(operator, monkeypatch):
    """``vault`` in-process on a fresh vault whose vault.yaml has the two push providers; no CI
    variables and no VAULT_URL in the environment, whatever CI runs this suite."""
    write_config(operator.config)
    # prepare_local_instance sets DAGSTER_HOME in os.environ: registered here so teardown restores it
    monkeypatch.setenv("DAGSTER_HOME", str(operator.home / "dagster"))
    for name in (*CI_VARIABLES, "VAULT_URL", "VAULT_API_KEY", "VAULT_ENV"):
        monkeypatch.delenv(name, raising=False)
    operator.vault = LocalVault(operator.home, operator.config)
    return operator


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: this one's without CI variables or a vault URL, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in (*CI_VARIABLES, "VAULT_URL", "VAULT_API_KEY", "DAGSTER_HOME", "VAULT_DEBUG")}
    return {**env, "VAULT_ENV": "local", "VAULT_OTEL_EXPORTER": "none", **extra}


def run_vault(*args: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([VAULT, *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# -- embedded: into this machine's vault ---------------------------------------------------------
def test_two_producers_reports_land_in_one_hour_and_a_second_push_changes_nothing(pusher):
    files = [str(JUNIT_DIR / PYTEST), str(JUNIT_DIR / JEST)]
    bodies = {file: Path(file).read_bytes() for file in files}

    code, out, err = pusher("push", "junit", *files, "--provider", CI, "--started-at", STARTED_AT,
                            "--commit", "3f9c2e1a7b", "--branch", "main", "--build", "4711")

    assert code == 0, out + err
    assert "Traceback" not in out + err
    lines = result_lines(out)
    assert set(lines) == set(files), out
    for file, line in lines.items():
        assert line["state"] == "completed" and line["partition"] == f"{HOUR_KEY}|{CI}", line
        assert printed_counts(line) == counts_of(bodies[file]) and line["rest"] == "", line
    assert len({line["run_id"] for line in lines.values()}) == 2  # one run id per report
    assert f"{HOUR_KEY}|{CI}  record_index" in out  # the hour's graph ran here, step by step
    assert pusher.vault.runs() == 1  # both reports in one hour: one run of its partition

    # byte-exact in the inbox and the raw zone; one record per <testcase>
    for body in bodies.values():
        assert pusher.vault.get(f"inbox/{CI}/{HOUR_PATH}/{sha256(body)}.xml") == body
        assert pusher.vault.get(f"raw/{CI}/{HOUR_PATH}/{sha256(body)}.xml") == body
    cases = [case for body in bodies.values() for case in parse_junit(body).cases]
    assert pusher.vault.count(CI) == len(cases) == 14
    rows = pusher.vault.rows("test_results", CI)
    assert sorted(row["test"] for row in rows) == sorted(case.test_id for case in cases)
    assert {(row["commit"], row["branch"], row["build"]) for row in rows} == {("3f9c2e1a7b", "main", 4711)}
    assert {row["status"] for row in rows} >= {"passed", "failed", "skipped"}

    # the CI step retried: the same runs, nothing stored or run again
    code, again, err = pusher("push", "junit", *files, "--provider", CI, "--started-at", STARTED_AT,
                              "--commit", "3f9c2e1a7b", "--branch", "main", "--build", "4711")
    assert code == 0, again + err
    repeated = result_lines(again)
    assert {f: line["run_id"] for f, line in repeated.items()} == {f: line["run_id"] for f, line in lines.items()}
    assert all(line["state"] == "completed" and "already pushed" in line["rest"] for line in repeated.values()), again
    assert "record_index" not in again  # no graph ran
    assert pusher.vault.runs() == 1 and pusher.vault.count(CI) == 14

    # a retried report with a new one of the same hour: only the new one adds a run, and its cases
    gotest = str(JUNIT_DIR / GOTEST)
    code, mixed, err = pusher("push", "junit", files[0], gotest, "--provider", CI, "--started-at", STARTED_AT,
                              "--commit", "3f9c2e1a7b", "--branch", "main", "--build", "4711")
    assert code == 0, mixed + err
    mixed_lines = result_lines(mixed)
    assert "already pushed" in mixed_lines[files[0]]["rest"] and mixed_lines[files[0]]["state"] == "completed"
    assert mixed_lines[gotest]["rest"] == "" and mixed_lines[gotest]["state"] == "completed"
    assert pusher.vault.runs() == 2
    assert pusher.vault.count(CI) == 14 + len(parse_junit(junit_file(GOTEST)).cases)


def test_a_hostile_report_is_refused_by_code_and_the_good_ones_still_land(pusher, tmp_path):
    laughs, xinclude = tmp_path / "laughs.xml", tmp_path / "xinclude.xml"
    laughs.write_bytes(BILLION_LAUGHS)
    xinclude.write_bytes(XINCLUDE)
    good = str(JUNIT_DIR / SUREFIRE)

    code, out, err = pusher("push", "junit", str(laughs), good, str(xinclude), "--provider", CI,
                            "--started-at", STARTED_AT)

    assert code == 2, out + err
    assert f"vault push: {laughs} refused (unsafe_xml): " in err
    assert f"vault push: {xinclude} refused (unsafe_xml): " in err
    assert "Traceback" not in out + err and "lollol" not in err  # never expanded
    lines = result_lines(out)
    assert set(lines) == {good} and lines[good]["state"] == "completed", out
    assert pusher.vault.count(CI) == len(parse_junit(junit_file(SUREFIRE)).cases)
    assert pusher.vault.keys(f"inbox/{CI}/") == sorted(
        f"inbox/{CI}/{HOUR_PATH}/{sha256(junit_file(SUREFIRE))}{suffix}" for suffix in (".push.json", ".xml"))
    # the refused bodies are kept byte-exact under dlq/ for a look, with a dead letter each
    kept = {key for key in pusher.vault.keys(f"dlq/{CI}/") if key.endswith(".body")}
    assert {pusher.vault.get(key) for key in kept} == {BILLION_LAUGHS, XINCLUDE}
    assert sorted(letter.reason.split(":")[0] for letter in pusher.vault.dead_letters(CI)
                  if letter.stage == "push") == ["unsafe_xml", "unsafe_xml"]


def test_a_wrong_provider_or_option_is_refused_with_its_code_and_stores_nothing(pusher):
    report = str(JUNIT_DIR / JEST)
    for args, words in (
        (("--provider", "nobody"), f"{report} refused (unknown_provider): unknown provider 'nobody'"),
        (("--provider", AGENTS), f"{report} refused (wrong_kind)"),
        (("--provider", CI, "--build", "42a"), f"{report} refused (invalid_build)"),
        (("--provider", CI, "--started-at", "2999-01-01T00:00:00Z"), f"{report} refused (started_in_future)"),
        (("--provider", CI, "--started-at", "yesterday"), f"{report} refused (invalid_started_at)"),
    ):
        code, out, err = pusher("push", "junit", report, *args)
        assert code == 2 and out == "" and words in err and "Traceback" not in err, (args, out, err)
    assert pusher.vault.keys("") == [] and pusher.vault.runs() == 0


def test_an_unknown_provider_names_the_providers_that_take_the_push(pusher):
    code, _, err = pusher("push", "junit", str(JUNIT_DIR / JEST), "--provider", "nobody")
    assert code == 2 and f"providers that take test_result pushes: {CI}" in err, err


def test_a_path_that_cannot_be_read_is_exit_2_before_anything_is_stored(pusher, tmp_path):
    missing, directory = tmp_path / "no-such-report.xml", tmp_path / "reports"
    directory.mkdir()
    for unreadable in (missing, directory):
        code, out, err = pusher("push", "junit", str(JUNIT_DIR / JEST), str(unreadable), "--provider", CI,
                                "--started-at", STARTED_AT)
        assert code == 2 and out == "", out + err
        assert err.startswith(f"vault push: {unreadable}: cannot read it: ") and err.count("\n") == 1, err
    assert pusher.vault.keys("") == [] and pusher.vault.runs() == 0


def test_vault_push_agent_stores_the_executions_and_counts_the_ones_failing_validation(pusher, tmp_path):
    at = (HOUR + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    good = [{"timestamp": at, "agent_name": "QA_Assistant", "status": "success", "duration_ms": 1200,
             "output": {"test_count": 42, "passed": 40, "failed": 2}},
            {"timestamp": at.replace(":05:", ":35:"), "agent_name": "QA_Reviewer", "status": "failure",
             "error": {"message": "timed out"}, "output": {"test_count": 3, "passed": 1}}]
    bad = {"timestamp": at.replace(":05:", ":45:"), "agent_name": "QA_Assistant", "status": "exploded"}
    undated = {"agent_name": "QA_Assistant", "status": "success"}
    files = {name: tmp_path / f"{name}.json" for name in ("good", "bad", "undated")}
    for name, value in (("good", good), ("bad", bad), ("undated", undated)):
        files[name].write_text(json.dumps(value))

    code, out, err = pusher("push", "agent", *map(str, files.values()), "--provider", AGENTS)

    assert code == 2, out + err  # the undated one is refused
    assert f"vault push: {files['undated']} refused (invalid_timestamp): " in err
    lines = result_lines(out)
    assert set(lines) == {str(files["good"]), str(files["bad"])}, out
    for name, executions in (("good", 2), ("bad", 1)):
        line = lines[str(files[name])]
        assert line["run_id"].startswith("ax_") and line["state"] == "completed", line
        assert line["partition"] == f"{HOUR_KEY}|{AGENTS}" and printed_counts(line) == {"executions": executions}
    assert lines[str(files["good"])]["rest"] == ""
    assert "1 record(s) failed validation (kept in the dead-letter queue)" in lines[str(files["bad"])]["rest"]
    assert pusher.vault.runs() == 1

    rows = pusher.vault.rows("agent_results", AGENTS)
    assert sorted((row["agent_name"], row["status"], row["test_count"], row["passed"]) for row in rows) == [
        ("QA_Assistant", "success", 42, 40), ("QA_Reviewer", "failure", 3, 1)]
    assert pusher.vault.get(f"raw/{AGENTS}/{HOUR_PATH}/{sha256(files['good'].read_bytes())}.json") == \
        files["good"].read_bytes()
    letters = pusher.vault.dead_letters(AGENTS)
    assert sorted(letter.stage for letter in letters) == ["input_validation", "push"], letters
    (rejected,) = [letter for letter in letters if letter.stage != "push"]
    assert "status" in rejected.reason and rejected.object_key.endswith(f"{sha256(files['bad'].read_bytes())}.json")

    # an agent result file is pushed again: the same execution, no run
    code, again, err = pusher("push", "agent", str(files["good"]), "--provider", AGENTS)
    assert code == 0 and "already pushed" in again and pusher.vault.runs() == 1, again + err


def test_a_report_without_a_date_pushed_right_after_the_tests_ran_lands_in_the_current_hour(pusher, tmp_path):
    """No --started-at and no zoned timestamp: the run is dated now, in the hour under way, which
    must be a partition (it once was not: DagsterUnknownPartitionError, a traceback, exit 1)."""
    report = tmp_path / "smoke.xml"
    report.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="smoke" tests="1">'
                       b'<testcase classname="smoke" name="test_up" time="0.010"/></testsuite>\n')
    now = datetime.now(UTC)

    code, out, err = pusher("push", "junit", str(report), "--provider", CI)

    assert code == 0, out + err
    (line,) = result_lines(out).values()
    assert line["state"] == "completed" and line["partition"].split("|")[0] in {
        now.strftime("%Y-%m-%d-%H:00"), datetime.now(UTC).strftime("%Y-%m-%d-%H:00")}
    assert pusher.vault.count(CI) == 1


# -- the installed command, as a CI runner calls it ----------------------------------------------
def test_the_ci_systems_variables_name_the_commit_branch_and_build_and_json_is_one_object_a_file(tmp_path):
    config, home = tmp_path / "vault.yaml", tmp_path / "home"
    write_config(config)
    sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
    env = clean_env(VAULT_HOME=str(home), VAULT_CONFIG=str(config), GITHUB_SHA=sha, GITHUB_REF_NAME="feature/push",
                    GITHUB_RUN_NUMBER="314", CI_COMMIT_SHA="not-this-one", BUILD_NUMBER="1")
    files = [str(JUNIT_DIR / PYTEST), str(JUNIT_DIR / GOTEST)]

    done = run_vault("push", "junit", *files, "--provider", CI, "--started-at", STARTED_AT, "--json", env=env,
                     cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but one object per file
    assert [answer["file"] for answer in answers] == files
    for answer in answers:
        assert answer["run_id"].startswith("tr_") and answer["state"] == "completed", answer
        assert answer["partition"] == f"{HOUR_KEY}|{CI}" and answer["duplicate"] is False
        assert answer["counts"] == counts_of(Path(answer["file"]).read_bytes()) and answer["dead_letters"] == 0
        assert answer["job_id"]
    assert answers[0]["job_id"] == answers[1]["job_id"]  # one run for the hour
    vault = LocalVault(home, config)
    rows = vault.rows("test_results", CI)
    assert len(rows) == vault.count(CI) == sum(len(parse_junit(Path(f).read_bytes()).cases) for f in files)
    assert {(row["commit"], row["branch"], row["build"]) for row in rows} == {(sha, "feature/push", 314)}

    # an option given on the command line wins over the environment
    jest = str(JUNIT_DIR / JEST)
    done = run_vault("push", "junit", jest, "--provider", CI, "--started-at", STARTED_AT, "--branch", "release/2",
                     "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    jest_tests = {case.test_id for case in parse_junit(junit_file(JEST)).cases}
    assert {(row["commit"], row["branch"], row["build"]) for row in vault.rows("test_results", CI)
            if row["test"] in jest_tests} == {(sha, "release/2", 314)}


# -- over HTTP: into a running vault -------------------------------------------------------------
@pytest.fixture
def served(vault_service_factory) -> VaultService:
    return vault_service_factory(stack="embedded", providers={CI: PROVIDERS[CI], AGENTS: PROVIDERS[AGENTS]})


SERVED_STARTED_AT = "2026-01-01T05:17:00Z"  # the served vault's clock is 2026-01-02T00:00Z


def test_reports_pushed_to_a_running_vault_are_followed_until_completed(served, tmp_path):
    files = [str(JUNIT_DIR / PYTEST), str(JUNIT_DIR / SUREFIRE)]
    env = clean_env(VAULT_URL=served.base_url, VAULT_API_KEY=served.keys["ingester"],
                    VAULT_HOME=str(tmp_path / "not-used"), GITHUB_SHA="abc123", GITHUB_RUN_NUMBER="77")

    done = run_vault("push", "junit", *files, "--provider", CI, "--started-at", SERVED_STARTED_AT, env=env,
                     cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = result_lines(done.stdout)
    assert set(lines) == set(files), done.stdout
    for file, line in lines.items():
        assert line["state"] == "completed" and line["partition"] == f"2026-01-01-05:00|{CI}", line
        assert printed_counts(line) == counts_of(Path(file).read_bytes())
        status = served.api.expect(served.api.request("GET", f"/v1/test-runs/{line['run_id']}"), 200)
        assert status["state"] == "completed" and status["records_synced"] > 0, status
        assert (status["commit"], status["build"]) == ("abc123", 77)
    assert not (tmp_path / "not-used").exists()  # nothing local
    cases = [case for file in files for case in parse_junit(Path(file).read_bytes()).cases]
    assert served.catalog.count(provider=CI) == len(cases)
    rows = served.harness.lake.read("test_results", provider=CI).to_pylist()
    assert sorted(row["test"] for row in rows) == sorted(case.test_id for case in cases)
    assert {(row["commit"], row["build"]) for row in rows} == {("abc123", 77)}


def test_url_mode_in_process_no_wait_refusals_and_a_repeat(served, tmp_path, monkeypatch, capsys):
    from vault_pipeline import cli

    for name in (*CI_VARIABLES, "VAULT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAULT_API_KEY", served.keys["ingester"])
    laughs = tmp_path / "laughs.xml"
    laughs.write_bytes(BILLION_LAUGHS)
    jest = str(JUNIT_DIR / JEST)

    def vault(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = vault("push", "junit", str(laughs), jest, "--provider", CI, "--started-at", SERVED_STARTED_AT,
                           "--url", served.base_url + "/", "--no-wait", "--json")
    assert code == 2, out + err
    assert f"vault push: {laughs} refused (unsafe_xml): " in err
    (answer,) = [json.loads(line) for line in out.splitlines()]
    assert answer["file"] == jest and answer["run_id"].startswith("tr_") and answer["duplicate"] is False
    assert answer["status"] in ("pending", "processing", "completed") and answer["job_id"]

    # pushed again and followed: the same run, completed
    code, out, err = vault("push", "junit", jest, "--provider", CI, "--started-at", SERVED_STARTED_AT,
                           "--url", served.base_url)
    assert code == 0, out + err
    line = result_lines(out)[jest]
    assert line["run_id"] == answer["run_id"] and line["state"] == "completed" and "already pushed" in line["rest"]
    assert served.catalog.count(provider=CI) == len(parse_junit(junit_file(JEST)).cases)

    # VAULT_URL instead of --url; a server-side refusal is exit 2 with the server's code
    monkeypatch.setenv("VAULT_URL", served.base_url)
    code, out, err = vault("push", "junit", jest, "--provider", "nobody")
    assert code == 2 and out == "" and f"vault push: {jest} refused (unknown_provider): " in err, out + err
    code, out, err = vault("push", "junit", jest, "--provider", CI, "--started-at", "2026-01-03T00:00:00Z")
    assert code == 2 and "refused (started_in_future)" in err, out + err


def test_url_without_an_api_key_is_exit_2_and_sends_nothing(pusher, served):
    code, out, err = pusher("push", "junit", str(JUNIT_DIR / JEST), "--provider", CI, "--url", served.base_url)
    assert code == 2 and out == ""
    assert "VAULT_API_KEY" in err and err.count("\n") == 1, err
    assert served.objects.keys("") == [] and served.harness.instance.get_runs_count() == 0
    assert pusher.vault.keys("") == []  # and nothing into the local vault either


def test_a_vault_that_is_not_listening_is_exit_1_naming_its_address(pusher, monkeypatch):
    monkeypatch.setenv("VAULT_API_KEY", "key-anything")
    with closed_port_url("") as url:
        code, out, err = pusher("push", "junit", str(JUNIT_DIR / JEST), "--provider", CI, "--url", url)
    assert code == 1 and out == "", out + err
    assert err.startswith(f"vault push: the vault at {url} cannot be reached: ConnectError") and "Traceback" not in err
    assert pusher.vault.keys("") == []
