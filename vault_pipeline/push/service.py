"""Taking pushed test runs and agent results in at the door, before the hourly graph sees them.

``PushService.accept`` is what ``POST /v1/test-runs``, ``POST /v1/agent-executions``, ``vault
push junit`` and the embedded ``SecureDataPipeline`` client all call. It refuses, before anything
is stored as good, whatever the graph could not use: an unknown provider (``unknown_provider``),
a provider that does not take pushes or not this kind, a body over the provider's
``max_body_bytes`` (never read past the limit, so not kept), wrong query values (a ``build``
that is not a number, a ``started_at`` without a time zone or in the future), and a body that is
malformed, unsafe (any DOCTYPE, so no entity is ever expanded or fetched) or not test results;
such a body is kept under ``dlq/`` with a dead letter saying why, so a refused upload can be
looked at. An accepted body is stored byte-exact in the inbox with its ``PushContext``, under
the hour its run started, and a pointer names it by its push id (``tr_...`` for a test run,
``ax_...`` for agent executions: a digest of provider and body, so pushing the same report again
is the same push and changes nothing; the same body with other metadata is refused as a
conflict). The caller then launches (or joins) the hour's run and ``record_job`` notes it, so
``status`` can answer from the run like an ingest job.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vault_pipeline.core.checksums import PREFIX
from vault_pipeline.core.layout import (
    dlq_body_key,
    inbox_body_key,
    inbox_context_key,
    push_pointer_key,
    raw_key,
)
from vault_pipeline.core.pushed_records import (
    AGENT,
    EXTENSIONS,
    JUNIT,
    PushContext,
    PushRefused,
    check_commit,
    frame_agent_results,
    read_run,
    report_started_at,
    sniff_format,
)
from vault_pipeline.core.test_runs import DEFAULT_MAX_DEPTH, JUnitError, RunResult
from vault_pipeline.core.windows import HourWindow, parse_timestamp
from vault_pipeline.providers.config import ProviderConfig, VaultConfig
from vault_pipeline.storage.catalog import Catalog, DeadLetter, fixed_width_timestamp
from vault_pipeline.storage.leases import held_lease
from vault_pipeline.storage.object_store import ObjectMissingError, ObjectStore

TEST_RUN, AGENT_EXECUTION = "test_run", "agent_execution"
KIND_OF = {TEST_RUN: "test_result", AGENT_EXECUTION: "agent_result"}
ID_PREFIX = {TEST_RUN: "tr_", AGENT_EXECUTION: "ax_"}
FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks of CI runners drift
LEASE_WAIT_S, LEASE_TTL_S = 60.0, 30.0  # a push is held while stored and launched: seconds, not minutes
MAX_TEXT_PARAMETER = 200


class PushNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class PushParameters:
    """The query of a push: what the body itself does not say."""

    suite: str | None = None
    commit: str | None = None
    branch: str | None = None
    build: int | str | None = None
    started_at: str | None = None


@dataclass(slots=True)
class PushReceipt:
    push_id: str
    what: str  # test_run | agent_execution
    context: PushContext
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    duplicate: bool = False
    jobs: list[str] = field(default_factory=list)  # runs launched for it, oldest first

    @property
    def partition(self) -> str:
        return f"{self.context.hour}|{self.context.provider}"


class PushService:
    def __init__(self, *, store: ObjectStore, catalog: Catalog, config: Callable[[], VaultConfig],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.catalog, self.config, self.clock = store, catalog, config, clock

    # accepting ----------------------------------------------------------------------------
    def accept(self, what: str, provider_id: str | None, body: bytes, *, content_type: str | None = None,
               parameters: PushParameters = PushParameters(), sent_by: str = "",
               then: Callable[[PushReceipt], None] | None = None) -> PushReceipt:
        """Check and store a push; ``then`` runs with the receipt while the push is still held (one
        holder per push id across processes, so simultaneous identical pushes launch one run)."""
        provider = self._provider(what, provider_id)
        if len(body) > provider.max_body_bytes:
            raise PushRefused("body_too_large", f"the body is {len(body)} bytes; provider {provider.name!r} accepts "
                              f"at most {provider.max_body_bytes} (max_body_bytes in vault.yaml)")
        now = self.clock().astimezone(UTC)
        build = _build(parameters.build)
        for name in ("suite", "branch"):
            value = getattr(parameters, name)
            if value is not None and not (0 < len(value) <= MAX_TEXT_PARAMETER and value.strip()):
                raise PushRefused(f"invalid_{name}", f"{name} must be 1-{MAX_TEXT_PARAMETER} characters", name)
        check_commit(parameters.commit)
        asked_start = _started_at(parameters.started_at) if parameters.started_at is not None else None
        if asked_start is not None and what == AGENT_EXECUTION:
            raise PushRefused("invalid_started_at", "agent executions are dated by their own timestamp; "
                              "leave started_at out", "started_at")
        format = AGENT if what == AGENT_EXECUTION else sniff_format(body, content_type)
        try:
            counts, notes, started, source = self._read(provider, body, format, asked_start, now)
        except (JUnitError, PushRefused) as exc:  # the body itself cannot be used: keep it for a look
            kept = self._keep_refused(provider.name, body, now, f"{exc.code}: {exc}", format, sent_by)
            raise PushRefused(exc.code, f"{exc} (the body is kept as {kept} for inspection)",
                              getattr(exc, "parameter", None)) from None
        if source == "query":
            self._check_hour(started, now, provider.name)
        sha = hashlib.sha256(body).hexdigest()
        context = PushContext(
            push_id=ID_PREFIX[what] + hashlib.sha256(f"{provider.name}\x1f{sha}".encode()).hexdigest()[:32],
            provider=provider.name, kind=provider.kind, format=format, body_sha256=sha, size=len(body),
            hour=started.strftime("%Y-%m-%d-%H:00"), started_at=fixed_width_timestamp(started),
            started_at_source=source, received_at=fixed_width_timestamp(now), sent_by=sent_by,
            suite=parameters.suite, commit=parameters.commit, branch=parameters.branch, build=build)
        with held_lease(self.catalog, f"push:{context.push_id}", f"{sent_by or 'push'}:{uuid.uuid4().hex}",
                        wait_s=LEASE_WAIT_S, ttl_s=LEASE_TTL_S, busy=_busy(context.push_id)):
            receipt = self._existing(context.push_id)
            if receipt is not None:
                if not receipt.context.same_run(context):
                    raise PushRefused("conflicting_push", f"this body was pushed before as {receipt.push_id} with "
                                      f"other metadata (commit {receipt.context.commit!r}, build "
                                      f"{receipt.context.build!r}, suite {receipt.context.suite!r}); a report names "
                                      "one run", None)
                receipt.duplicate = True
            else:
                window = HourWindow.for_hour_key(context.hour)
                self.store.put(inbox_body_key(provider.name, window, sha, EXTENSIONS[format]), body,
                               known_checksum=PREFIX + sha)
                self.store.put(inbox_context_key(provider.name, window, sha), _json(context.to_dict()), overwrite=True)
                receipt = PushReceipt(context.push_id, what, context, counts, notes)
                self._write_pointer(receipt)
            if then is not None:
                then(receipt)
        return receipt

    def _read(self, provider: ProviderConfig, body: bytes, format: str, asked_start: datetime | None,
              now: datetime) -> tuple[dict[str, int], list[str], datetime, str]:
        """(counts, notes, when the run started, where that came from), or the refusal of the body."""
        # Push bodies nest 32 levels at most (PHPUnit nests suites 4-5 deep), or the provider's own lower limit.
        depth = min(provider.max_nesting_depth, DEFAULT_MAX_DEPTH)
        if format == AGENT:
            counts = {"executions": len(frame_agent_results(body, max_depth=depth))}
            started, source, notes = self._agent_hour(provider, body), "records", []
        else:
            run = read_run(body, format, max_bytes=provider.max_body_bytes, max_depth=depth)
            if not run.cases:
                raise PushRefused("no_test_cases", "the report holds no test case: nothing to store (did the "
                                  "test run collect any tests?)")
            counts = _run_counts(run)
            notes = [*run.notes, *run.mismatches, *sorted({note for case in run.cases for note in case.notes})][:50]
            reported = report_started_at(run)
            started, source = ((asked_start, "query") if asked_start else (reported, "report") if reported
                               else (now, "received"))
        if source != "query":  # dated by the body itself: a wrong hour is the body's fault
            self._check_hour(started, now, provider.name)
        return counts, notes, started, source

    def record_job(self, receipt: PushReceipt, job_id: str) -> None:
        if job_id not in receipt.jobs:
            receipt.jobs.append(job_id)
            self._write_pointer(receipt)

    # looking up ---------------------------------------------------------------------------
    def get(self, push_id: str, what: str | None = None) -> PushReceipt:
        found = self._existing(push_id)
        if found is None or (what is not None and found.what != what):
            raise PushNotFound(push_id)
        return found

    def rejections(self, receipt: PushReceipt, limit: int = 100) -> tuple[int, list[DeadLetter]]:
        """(how many of the push's records input validation dead-lettered, the first ``limit``):
        its records are those of its body's raw object in its partition."""
        context = receipt.context
        key = raw_key(context.provider, HourWindow.for_hour_key(context.hour), context.body_sha256,
                      EXTENSIONS[context.format])
        found, offset, page = [], 0, 10_000
        while True:
            letters = self.catalog.list_dead_letters(partition=receipt.partition, limit=page, offset=offset)
            found += [letter for letter in letters if letter.object_key == key]
            if len(letters) < page:
                return len(found), found[:limit]
            offset += page

    # internals ----------------------------------------------------------------------------
    def _provider(self, what: str, provider_id: str | None) -> ProviderConfig:
        if not provider_id:
            raise PushRefused("missing_parameter", "provider_id is required: the push provider (type: push in "
                              "vault.yaml) to store the results under", "provider_id")
        config = self.config()
        provider = config.providers.get(provider_id)
        if provider is None:
            pushing = sorted(n for n, p in config.providers.items() if p.type == "push" and p.kind == KIND_OF[what])
            raise PushRefused("unknown_provider", f"unknown provider {provider_id!r}; providers that take "
                              f"{KIND_OF[what]} pushes: {', '.join(pushing) or 'none (add one with type: push)'}",
                              "provider_id")
        if provider.type != "push":
            raise PushRefused("not_a_push_provider", f"provider {provider_id!r} is of type {provider.type}: it pulls "
                              "its records; pushes go to a provider of type: push", "provider_id")
        if provider.kind != KIND_OF[what]:
            raise PushRefused("wrong_kind", f"provider {provider_id!r} takes {provider.kind} pushes, not "
                              f"{KIND_OF[what]}", "provider_id")
        return provider

    def _agent_hour(self, provider: ProviderConfig, body: bytes) -> datetime:
        """The one hour an agent push's executions share (their own ``timestamp``s)."""
        from vault_pipeline.core.framing import decode_record
        from vault_pipeline.core.identity import lookup

        framed = frame_agent_results(body)
        hours, first = set(), None
        for number, piece in enumerate(framed.slices(body)):
            value = lookup(decode_record(piece), provider.event_time_field)
            moment = parse_timestamp(value)
            if moment is None:
                raise PushRefused("invalid_timestamp", f"agent result {number}: {provider.event_time_field} "
                                  f"{value!r} is not an ISO-8601 time with a zone (e.g. 2026-01-23T10:00:00.000Z)",
                                  provider.event_time_field)
            hours.add(moment.replace(minute=0, second=0, microsecond=0))
            first = moment if first is None or moment < first else first
        if len(hours) > 1:
            raise PushRefused("mixed_hours", f"the executions fall in {len(hours)} different hours; one push holds "
                              "one hour's executions (send each hour separately)", provider.event_time_field)
        return first

    def _check_hour(self, started: datetime, now: datetime, provider: str) -> None:
        if started > now + FUTURE_TOLERANCE:
            raise PushRefused("started_in_future", f"the run starts at {started.isoformat()}, after now "
                              f"({now.isoformat()}); check the runner's clock or started_at", "started_at")
        first = self.config().partitions.start_time
        if started < first:
            raise PushRefused("before_first_hour", f"the run starts at {started.isoformat()}, before the vault's "
                              f"first hour {first.isoformat()} (partitions.start in vault.yaml)", "started_at")

    def _keep_refused(self, provider: str, body: bytes, now: datetime, reason: str, format: str, sent_by: str) -> str:
        window = HourWindow.for_hour_key(now.strftime("%Y-%m-%d-%H:00"))
        digest = hashlib.sha256(body).hexdigest()
        key = dlq_body_key(provider, window, digest)
        self.store.put(key, body, known_checksum=PREFIX + digest)
        partition = f"{window.hour_key}|{provider}"
        self.catalog.add_dead_letters([DeadLetter(
            dead_letter_id="dl_" + hashlib.sha256(f"push|{partition}|{key}".encode()).hexdigest()[:32],
            provider=provider, partition=partition, stage="push", reason=reason[:2000], object_key=key,
            offset=0, length=len(body), created_at=fixed_width_timestamp(now),
            detail={"format": format, "sent_by": sent_by})])
        return key

    def _existing(self, push_id: str) -> PushReceipt | None:
        if not (push_id[:3] in ID_PREFIX.values() and len(push_id) == 35 and all(c in "0123456789abcdef" for c in push_id[3:])):
            return None
        try:
            pointer = json.loads(self.store.get(push_pointer_key(push_id)))
        except ObjectMissingError:
            return None
        return PushReceipt(push_id, pointer["what"], PushContext.from_dict(pointer["context"]), pointer["counts"],
                           pointer.get("notes", []), jobs=list(pointer.get("jobs", [])))

    def _write_pointer(self, receipt: PushReceipt) -> None:
        self.store.put(push_pointer_key(receipt.push_id), _json({
            "what": receipt.what, "context": receipt.context.to_dict(), "counts": receipt.counts,
            "notes": receipt.notes, "jobs": receipt.jobs}), overwrite=True)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True).encode()


def _busy(push_id: str) -> Callable[[str | None], Exception]:
    return lambda holder: PushRefused("push_busy", f"the same body is being pushed by another request ({push_id}); "
                                      "push it again in a moment")


def _build(value: int | str | None) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise PushRefused("invalid_build", f"build {str(value)[:40]!r} is not a build number (a whole number "
                          "0-999999999999999999, e.g. the CI run number)", "build")
    return int(text)


def _started_at(value: str) -> datetime:
    moment = parse_timestamp(value)
    if moment is None:
        raise PushRefused("invalid_started_at", f"started_at {value[:60]!r} is not an ISO-8601 time with a zone "
                          "(e.g. 2026-01-23T10:00:00Z)", "started_at")
    return moment


def _run_counts(run: RunResult) -> dict[str, int]:
    totals = run.totals
    counts = {"tests": totals.tests, "passed": sum(case.status == "passed" for case in run.cases),
              "failed": totals.failures, "errors": totals.errors, "skipped": totals.skipped, "suites": len(run.suites)}
    unknown = totals.tests - counts["passed"] - totals.failures - totals.errors - totals.skipped
    if unknown:  # a JSON result with a status of its own: input validation dead-letters it
        counts["unknown_status"] = unknown
    return counts


__all__ = ["AGENT_EXECUTION", "JUNIT", "TEST_RUN", "PushNotFound", "PushParameters", "PushReceipt", "PushRefused",
           "PushService"]
