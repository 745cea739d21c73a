"""``vault push junit FILE...`` (and ``vault push agent FILE...``): a CI job's results into the vault.

With ``--url`` (or ``VAULT_URL``) each file is sent to a running vault (``POST /v1/test-runs``,
the key from ``VAULT_API_KEY``) and, unless ``--no-wait``, followed until its run has completed;
without, the files go into this machine's vault (``VAULT_HOME``) and the hour's graph runs here,
on the vault's Dagster instance, like ``vault run``. ``--commit``, ``--branch`` and ``--build``
default to what the CI system says in its environment (GitHub Actions, GitLab CI, Jenkins,
CircleCI, Buildkite), so a pipeline step is one line. Each file prints its run id, partition and
counts. Exit 0 when every file was stored and its run completed; 1 when a run failed (or the
vault cannot be reached); 2 when a file was refused (the code and what to fix are printed, e.g.
``unsafe_xml``, ``body_too_large``, ``unknown_provider``) or cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from vault_pipeline.push.service import AGENT_EXECUTION, TEST_RUN

# What CI systems put in the environment, in the order looked at.
CI_DEFAULTS = {
    "commit": ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT", "CIRCLE_SHA1", "BUILDKITE_COMMIT"),
    "branch": ("GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "CIRCLE_BRANCH", "BUILDKITE_BRANCH"),
    "build": ("GITHUB_RUN_NUMBER", "CI_PIPELINE_IID", "BUILD_NUMBER", "CIRCLE_BUILD_NUM", "BUILDKITE_BUILD_NUMBER"),
}
PATHS = {TEST_RUN: "/v1/test-runs", AGENT_EXECUTION: "/v1/agent-executions"}
COUNT_ORDER = ("tests", "passed", "failed", "errors", "skipped", "unknown_status", "suites", "executions")


def add_push_parser(commands) -> None:
    push = commands.add_parser("push", help="push test results (JUnit XML) or agent results into the vault")
    kinds = push.add_subparsers(dest="push_command", required=True)
    junit = kinds.add_parser(
        "junit", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="push JUnit XML reports (pytest --junitxml, Surefire, Gradle, jest-junit, gotestsum, ...)",
        description="Store each JUnit XML report (or JSON array of test results) byte-exact under a push provider "
                    "and run its hour's graph: validation, index, lake, integrity, ledger, promotion.")
    junit.add_argument("files", nargs="+", metavar="FILE", help="report files")
    junit.add_argument("--provider", required=True, help="a provider of type: push, kind test_result")
    junit.add_argument("--suite", help="the suite of every case (default: each case's testsuite name)")
    for name in ("commit", "branch", "build"):
        junit.add_argument(f"--{name}", help=f"default: ${' / $'.join(CI_DEFAULTS[name][:3])} ...")
    junit.add_argument("--started-at", help="when the run started, ISO-8601 with a zone (default: the report's "
                       "zoned timestamp, else now)")
    agent = kinds.add_parser("agent", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                             help="push agent execution results (a JSON object or array per file)")
    agent.add_argument("files", nargs="+", metavar="FILE")
    agent.add_argument("--provider", required=True, help="a provider of type: push, kind agent_result")
    for parser in (junit, agent):
        parser.add_argument("--url", default=os.environ.get("VAULT_URL"),
                            help="a running vault (vault serve); key from VAULT_API_KEY. Default: $VAULT_URL, "
                                 "else this machine's vault")
        parser.add_argument("--no-wait", action="store_true", help="with --url: do not wait for the runs")
        parser.add_argument("--timeout", type=float, default=600.0, help="with --url: seconds to wait per run")
        parser.add_argument("--json", action="store_true", help="print one JSON object per file")


def run_push(args: argparse.Namespace) -> int:
    what = TEST_RUN if args.push_command == "junit" else AGENT_EXECUTION
    params = _parameters(args) if what == TEST_RUN else {}
    bodies = []
    for name in args.files:
        try:
            bodies.append((name, Path(name).read_bytes()))
        except OSError as exc:
            print(f"vault push: {name}: cannot read it: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.url:
        return _push_http(args, what, bodies, params)
    return _push_embedded(args, what, bodies, params)


def _parameters(args) -> dict[str, Any]:
    params = {"suite": args.suite, "started_at": args.started_at}
    for name, variables in CI_DEFAULTS.items():
        value = getattr(args, name)
        if value is None:
            value = next((os.environ[v] for v in variables if os.environ.get(v)), None)
        params[name] = value
    return params


def _show(args, file: str, answer: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps({"file": file, **answer}, sort_keys=True))
        return
    counts = answer.get("counts", {})
    counts = ", ".join(f"{k} {counts[k]}" for k in sorted(counts, key=lambda k: (COUNT_ORDER.index(k) if k in COUNT_ORDER
                                                                             else len(COUNT_ORDER), k)))
    state = answer.get("state") or answer.get("status")
    line = f"{file}: {answer['run_id']} {state} ({answer['partition']}; {counts})"
    if answer.get("duplicate"):
        line += " - already pushed: the same run"
    if answer.get("dead_letters"):
        line += f"; {answer['dead_letters']} record(s) failed validation (kept in the dead-letter queue)"
    print(line)
    if answer.get("error"):
        print(f"  error: {answer['error']}")
    for note in answer.get("notes", [])[:5]:
        print(f"  note: {note}")


def _refused(file: str, code: str, detail: Any) -> int:
    message = detail.get("message", detail) if isinstance(detail, dict) else detail
    print(f"vault push: {file} refused ({code}): {message}", file=sys.stderr)
    return 2


# -- over HTTP ---------------------------------------------------------------------------------


def _push_http(args, what: str, bodies: list[tuple[str, bytes]], params: dict[str, Any]) -> int:
    import httpx

    key = os.environ.get("VAULT_API_KEY")
    if not key:
        print("vault push: --url needs the API key in VAULT_API_KEY (a key with the ingest role)", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    worst = 0
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120.0) as http:
        for file, body in bodies:
            query = {"provider_id": args.provider, **{k: v for k, v in params.items() if v is not None}}
            try:
                response = http.post(PATHS[what], params=query, content=body,
                                     headers={"Content-Type": _media_type(what, body)})
            except httpx.HTTPError as exc:
                print(f"vault push: the vault at {base} cannot be reached: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            answer = _json(response)
            if response.status_code != 202:
                worst = max(worst, _refused(file, answer.get("error", str(response.status_code)), answer.get("detail")))
                continue
            if not args.no_wait:
                answer = {**answer, **_follow(http, what, answer["run_id"], args.timeout)}
            _show(args, file, answer)
            if answer.get("state") == "failed" or answer.get("error"):
                worst = max(worst, 1)
    return worst


def _follow(http, what: str, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"{PATHS[what]}/{run_id}")
        answer = _json(response)
        if response.status_code != 200:
            return {"state": "unknown", "error": f"{response.status_code} {answer.get('error')}"}
        if answer["state"] in ("completed", "failed"):
            return answer
        if time.monotonic() > deadline:
            return {**answer, "error": f"still {answer['state']} after {timeout:.0f} s (follow it with GET "
                                       f"{PATHS[what]}/{run_id})"}
        time.sleep(0.5)


def _media_type(what: str, body: bytes) -> str:
    from vault_pipeline.core.pushed_records import MEDIA_TYPES, sniff_format

    return "application/json" if what == AGENT_EXECUTION else MEDIA_TYPES[sniff_format(body)]


def _json(response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {"error": "http_error", "detail": response.text[:300]}
    return value if isinstance(value, dict) else {"detail": value}


# -- embedded ----------------------------------------------------------------------------------


def _push_embedded(args, what: str, bodies: list[tuple[str, bytes]], params: dict[str, Any]) -> int:
    from vault_pipeline.cli import prepare_local_instance
    from vault_pipeline.defs.resources import vault_resource
    from vault_pipeline.hourly_runs import HourlyRunner
    from vault_pipeline.push.service import PushParameters, PushRefused, PushService

    vault = vault_resource()
    service = PushService(store=vault.object_store(), catalog=vault.catalog(), config=vault.vault_config)
    accepted, worst = [], 0
    for file, body in bodies:
        try:
            receipt = service.accept(what, args.provider, body, content_type=None,
                                     parameters=PushParameters(**params), sent_by="cli:vault push")
        except PushRefused as exc:
            worst = max(worst, _refused(file, exc.code, str(exc)))
            continue
        accepted.append((file, receipt))
    outcomes: dict[str, Any] = {}
    runner = None
    for _file, receipt in accepted:
        if receipt.partition in outcomes:
            continue
        if runner is None:
            prepare_local_instance()
            runner = HourlyRunner(show_steps=not args.json)
        if receipt.duplicate and runner.succeeded(receipt.jobs):
            continue  # pushed and landed before: nothing to do
        hour, provider = receipt.partition.split("|")
        outcomes[receipt.partition] = runner.run(hour, provider, as_job=True)
    for file, receipt in accepted:
        outcome = outcomes.get(receipt.partition)
        if outcome is not None:
            service.record_job(receipt, outcome.run_id)
        rejected, _letters = service.rejections(receipt)
        answer = {"run_id": receipt.push_id, "partition": receipt.partition, "counts": receipt.counts,
                  "duplicate": receipt.duplicate, "notes": receipt.notes, "dead_letters": rejected,
                  "state": "completed" if outcome is None or outcome.success else "failed",
                  "job_id": receipt.jobs[-1] if receipt.jobs else None}
        if outcome is not None and not outcome.success:
            answer["error"] = f"failed at {outcome.failed_step or '?'}: {outcome.error or 'see the run in the UI'}"
            worst = max(worst, 1)
        _show(args, file, answer)
    return worst
