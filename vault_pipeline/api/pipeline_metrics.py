"""Pipeline metrics on ``/metrics``: how the vault's runs, checks, promotions and proofs are doing.

An operator's Prometheus scrapes the API; this collector answers from the vault's own records
at scrape time (no pushgateway, nothing to keep in step): the Dagster instance the runs are
recorded on (run counts, run and step durations, step outcomes, failed freshness/SLA checks,
promotion decisions from ``golden_promotion``'s materializations) and the catalog (records and
dead letters per provider, quarantined items, the newest stored ``vault verify`` result). The
work per scrape is bounded: the runs that finished in the last ``window_s`` (at most
``max_runs``), each finished run's steps and checks read once and kept while it is in the
window, quarantine items up to ``max_quarantine``, and everything cached ``cache_s`` seconds so
a burst of scrapers costs one computation. Labels are bounded (job, step, status, provider,
decision, reason, check, finding type): never a run id, log id or partition. A source that
does not answer is reported as ``vault_pipeline_metrics_source_up{source} 0``; a scrape never
fails because of it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vault_pipeline.core.ledger import VAULT_CHAIN
from vault_pipeline.reports.moments import utc_moment
from vault_pipeline.reports.verify_runs import ARTIFACT_KIND, verify_runs
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

WINDOW_ENV, CACHE_ENV = "VAULT_METRICS_WINDOW_HOURS", "VAULT_METRICS_CACHE_S"
DEFAULT_WINDOW_HOURS, DEFAULT_CACHE_S = 24.0, 10.0
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
ACTIVE = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
PROMOTION_ASSET = dg.AssetKey("golden_promotion")
DECISIONS = ("clean", "masked", "quarantined")
RUN_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
STEP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
VERIFY_LOOKBACK_DAYS = 7
# "freshness" anywhere, or "sla" as a word of the check name (freshness_check, hourly_sla,
# sla_met), so Dagster's freshness checks and a custom SLA check count alike, but a check named
# "translation_sanity" does not.
SLA_CHECK = re.compile(r"freshness|(?<![a-z])sla(?![a-z])")


def is_sla_check(check_name: str) -> bool:
    return bool(SLA_CHECK.search(check_name.lower()))


def provider_of(partition: str | None) -> str:
    """The provider dimension of an ``hour|provider`` partition key; "" for any other key."""
    if not partition or "|" not in partition:
        return ""
    return partition.rpartition("|")[2]


@dataclass(frozen=True, slots=True)
class _FinishedRun:
    """What a finished run contributes; a finished run's events no longer change."""

    job: str
    status: str
    ended_at: float
    duration_s: float | None
    steps: tuple[tuple[str, str, float | None], ...]  # (step, status, seconds)
    sla_misses: tuple[tuple[str, str, str], ...]  # (asset, check, provider)


@dataclass
class _Histogram:
    """Bucket counts of a window's observations, for a gauge histogram."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
        self.total += value
        self.n += 1

    def buckets(self) -> list[tuple[str, float]]:
        counts = self.counts or [0] * len(self.bounds)
        return [(repr(bound), float(count)) for bound, count in zip(self.bounds, counts, strict=True)] + \
            [("+Inf", float(self.n))]


class PipelineMetrics(Collector):
    """A prometheus_client collector over the Dagster instance, the catalog and the object store."""

    def __init__(self, *, instance: Callable[[], dg.DagsterInstance | None], catalog: Catalog, store: ObjectStore,
                 window_s: float = DEFAULT_WINDOW_HOURS * 3600, cache_s: float = DEFAULT_CACHE_S,
                 max_runs: int = 1000, max_quarantine: int = 20_000,
                 clock: Callable[[], float] = time.time) -> None:
        if not window_s > 0:
            raise ValueError(f"the pipeline metrics window must be positive, not {window_s!r} s ({WINDOW_ENV})")
        if not cache_s >= 0:
            raise ValueError(f"the pipeline metrics cache must be 0 or more seconds, not {cache_s!r} ({CACHE_ENV})")
        self.instance, self.catalog, self.store = instance, catalog, store
        self.window_s, self.cache_s, self.max_runs, self.max_quarantine = window_s, cache_s, max_runs, max_quarantine
        self.clock = clock
        self._lock = threading.Lock()
        self._families: list[Any] | None = None
        self._computed_at = 0.0
        self._runs: dict[str, _FinishedRun] = {}  # finished runs of the window, by run id
        self._jobs_seen: set[str] = set()

    @classmethod
    def for_api(cls, api: Any, env: dict[str, str] | None = None) -> PipelineMetrics:
        """The collector of an API: the instance its job backend records runs on, its catalog and store;
        the window and cache from ``VAULT_METRICS_WINDOW_HOURS`` (24) and ``VAULT_METRICS_CACHE_S`` (10)."""
        env = os.environ if env is None else env
        return cls(instance=runner_instance(api.jobs.runner), catalog=api.catalog, store=api.store,
                   window_s=_number(env, WINDOW_ENV, DEFAULT_WINDOW_HOURS) * 3600,
                   cache_s=_number(env, CACHE_ENV, DEFAULT_CACHE_S))

    def describe(self) -> Iterable[Any]:
        return []  # registering must not compute anything; names are not checked for clashes

    def collect(self) -> Iterable[Any]:
        with self._lock:
            started = time.monotonic()
            if self._families is None or started - self._computed_at >= self.cache_s:
                self._families = self._compute(self.clock())
                self._computed_at = time.monotonic()
            families = self._families
        yield from families

    # computing ------------------------------------------------------------------------------
    def _compute(self, now: float) -> list[Any]:
        families: list[Any] = []
        up = GaugeMetricFamily("vault_pipeline_metrics_source_up",
                               "1 when the source of the pipeline metrics answered at the last computation",
                               labels=["source"])
        for source, build in (("dagster", self._dagster), ("catalog", self._catalog), ("verify", self._verify)):
            try:
                built = build(now)
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can, it never fails
                # The type only: a storage error may quote a connection string.
                log.warning("pipeline metrics: %s unavailable (%s)", source, type(exc).__name__)
                up.add_metric([source], 0)
            else:
                families.extend(built)
                up.add_metric([source], 1)
        window = GaugeMetricFamily("vault_pipeline_metrics_window_seconds",
                                   "how far back the windowed pipeline metrics look", value=self.window_s)
        return [*families, up, window]

    def _dagster(self, now: float) -> list[Any]:
        instance = self.instance()
        if instance is None:
            raise LookupError("no Dagster instance")
        since = now - self.window_s
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=list(FINISHED), updated_after=datetime.fromtimestamp(since, UTC)),
            limit=self.max_runs, order_by="update_timestamp", ascending=False)
        current: dict[str, _FinishedRun] = {}
        for record in records:
            run = record.dagster_run
            known = self._runs.get(run.run_id)
            current[run.run_id] = known if known is not None else self._read_run(instance, record)
        self._runs = current  # runs that left the window are forgotten
        finished = [run for run in current.values() if run.ended_at >= since]
        self._jobs_seen |= {run.job for run in finished}

        totals = CounterMetricFamily("vault_runs", "Dagster runs that finished, by job and outcome (all time)",
                                     labels=["job", "status"])
        for job in sorted(self._jobs_seen):
            for status in FINISHED:
                count = instance.get_runs_count(dg.RunsFilter(job_name=job, statuses=[status]))
                totals.add_metric([job, status.value.lower()], count)
        active = GaugeMetricFamily("vault_runs_active", "Dagster runs queued or running now", labels=["status"])
        for status in ACTIVE:
            active.add_metric([status.value.lower()], instance.get_runs_count(dg.RunsFilter(statuses=[status])))

        run_durations: dict[str, _Histogram] = {}
        step_durations: dict[tuple[str, str], _Histogram] = {}
        outcomes: Counter[tuple[str, str]] = Counter()
        sla: Counter[tuple[str, str, str]] = Counter()
        for run in finished:
            if run.duration_s is not None:
                run_durations.setdefault(run.job, _Histogram(RUN_BUCKETS)).observe(run.duration_s)
            for step, status, seconds in run.steps:
                outcomes[(step, status)] += 1
                if seconds is not None:
                    step_durations.setdefault((run.job, step), _Histogram(STEP_BUCKETS)).observe(seconds)
            sla.update(run.sla_misses)
        sla.update(self._runless_sla_misses(instance, since))

        window = f"the last {_hours(self.window_s)} h"
        run_family = GaugeHistogramMetricFamily(
            "vault_run_duration_seconds", f"wall time of the Dagster runs that finished in {window}, by job",
            labels=["job"])
        for job, histogram in sorted(run_durations.items()):
            run_family.add_metric([job], histogram.buckets(), histogram.total)
        step_family = GaugeHistogramMetricFamily(
            "vault_step_duration_seconds", f"wall time of the steps of the runs that finished in {window}",
            labels=["job", "step"])
        for (job, step), histogram in sorted(step_durations.items()):
            step_family.add_metric([job, step], histogram.buckets(), histogram.total)
        outcome_family = GaugeMetricFamily(
            "vault_step_outcomes", f"steps of the runs that finished in {window}, by step and outcome",
            labels=["step", "status"])
        for (step, status), count in sorted(outcomes.items()):
            outcome_family.add_metric([step, status], count)
        sla_family = GaugeMetricFamily(
            "vault_sla_misses", f"failed freshness/SLA asset check evaluations in {window}",
            labels=["asset", "check", "provider"])
        for (asset, check, provider), count in sorted(sla.items()):
            sla_family.add_metric([asset, check, provider], count)
        return [totals, active, run_family, step_family, outcome_family, sla_family,
                self._promotion_decisions(instance, since, window)]

    def _read_run(self, instance: dg.DagsterInstance, record: Any) -> _FinishedRun:
        run = record.dagster_run
        started, ended = record.start_time, record.end_time
        ended_at = ended if ended is not None else record.update_timestamp.timestamp()
        steps = []
        for stats in instance.get_run_step_stats(run.run_id):
            status = stats.status.value.lower() if stats.status is not None else "unknown"
            seconds = stats.end_time - stats.start_time if stats.end_time and stats.start_time else None
            steps.append((stats.step_key, status, seconds))
        partition = run.tags.get("dagster/partition")
        events = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        return _FinishedRun(job=run.job_name, status=run.status.value.lower(), ended_at=ended_at,
                            duration_s=ended - started if started is not None and ended is not None else None,
                            steps=tuple(steps), sla_misses=tuple(_sla_misses(events, partition)))

    def _runless_sla_misses(self, instance: dg.DagsterInstance, since: float) -> list[tuple[str, str, str]]:
        """Evaluations reported outside any run (``report_runless_asset_event``), newest 1000."""
        from dagster._core.instance.utils import RUNLESS_RUN_ID

        events = instance.get_records_for_run(RUNLESS_RUN_ID, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                                              limit=1000, ascending=False).records
        return list(_sla_misses([e for e in events if e.event_log_entry.timestamp >= since], None))

    def _promotion_decisions(self, instance: dg.DagsterInstance, since: float, window: str) -> GaugeMetricFamily:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PROMOTION_ASSET, after_timestamp=since), limit=self.max_runs)
        newest: dict[str | None, Any] = {}
        for record in result.records:  # newest first: a partition's re-promotion replaces its decisions
            newest.setdefault(record.partition_key, record)
        decisions: Counter[tuple[str, str]] = Counter()
        for partition, record in newest.items():
            metadata = record.asset_materialization.metadata
            for decision in DECISIONS:
                entry = metadata.get(f"count_{decision}")
                decisions[(provider_of(partition), decision)] += int(entry.value) if entry is not None else 0
        family = GaugeMetricFamily(
            "vault_promotion_decisions",
            f"records by golden_promotion decision, over the partitions promoted in {window} (newest promotion of each)",
            labels=["provider", "decision"])
        for (provider, decision), count in sorted(decisions.items()):
            family.add_metric([provider, decision], count)
        return family

    def _catalog(self, _now: float) -> list[Any]:
        per_provider: Counter[str] = Counter()
        for partition, count in self.catalog.partition_record_counts().items():
            per_provider[provider_of(partition) or partition] += count
        records = GaugeMetricFamily("vault_catalog_records", "records the catalog indexes, by provider",
                                    labels=["provider"])
        dead = GaugeMetricFamily("vault_dead_letters", "records held back as dead letters, by provider",
                                 labels=["provider"])
        for provider in sorted(per_provider):
            records.add_metric([provider], per_provider[provider])
            dead.add_metric([provider], self.catalog.count_dead_letters(provider=provider))
        items: Counter[tuple[str, str, str]] = Counter()
        offset, page_size = 0, 1000
        while offset < self.max_quarantine:
            page = self.catalog.list_quarantine(limit=page_size, offset=offset)
            for item in page:
                items[(str(item.get("provider", "")), str(item.get("reason", "")), str(item.get("status", "")))] += 1
            if len(page) < page_size:
                break
            offset += page_size
        quarantine = GaugeMetricFamily(
            "vault_quarantine_items", "items in the quarantine, by provider, reason and status "
            "(quarantined until an admin approves them)", labels=["provider", "reason", "status"])
        for (provider, reason, status), count in sorted(items.items()):
            quarantine.add_metric([provider, reason, status], count)
        return [records, dead, quarantine]

    def _verify(self, now: float) -> list[Any]:
        newest = None
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(VERIFY_LOOKBACK_DAYS):  # newest day first; the first day with a run holds the newest
            offset = 0
            while True:
                page = self.catalog.search_artifacts(provider=VAULT_CHAIN, partition=day.strftime("%Y-%m-%d"),
                                                     kind=ARTIFACT_KIND, limit=1000, offset=offset)
                for artifact in page:
                    if newest is None or artifact.created_at > newest.created_at:
                        newest = artifact
                offset += len(page)
                if len(page) < 1000:
                    break
            if newest is not None:
                break
            day -= timedelta(days=1)
        clean = GaugeMetricFamily("vault_verify_clean", "1 when the newest stored `vault verify` run found nothing")
        findings = GaugeMetricFamily("vault_verify_findings", "findings of the newest stored `vault verify` run, by type",
                                     labels=["type"])
        finished = GaugeMetricFamily("vault_verify_last_finished_timestamp_seconds",
                                     "when the newest stored `vault verify` run finished (Unix time)")
        if newest is None:
            return [clean, findings, finished]  # no run in the lookback: absent() alerts on it
        moment = utc_moment(newest.created_at)
        runs = verify_runs(self.catalog, self.store, moment, moment + timedelta(microseconds=1))
        result = runs[-1] if runs else {"missing": True}
        if result.get("missing") or result.get("altered"):
            # The stored result itself is gone or changed: that is what the newest run tells now.
            counts = Counter({"verify_result_missing" if result.get("missing") else "verify_result_altered": 1})
            is_clean = False
        else:
            counts = Counter(str(finding.get("type", "")) for finding in result.get("findings", []))
            is_clean = bool(result.get("clean"))
        clean.add_metric([], 1 if is_clean else 0)
        for kind, count in sorted(counts.items()):
            findings.add_metric([kind], count)
        finished.add_metric([], moment.timestamp())
        return [clean, findings, finished]


def _sla_misses(events: Iterable[Any], run_partition: str | None) -> Iterable[tuple[str, str, str]]:
    for event in events:
        evaluation = event.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed or not is_sla_check(evaluation.check_name):
            continue
        partition = getattr(evaluation, "partition", None) or run_partition
        yield evaluation.asset_key.to_user_string(), evaluation.check_name, provider_of(partition)


def runner_instance(runner: Any) -> Callable[[], dg.DagsterInstance | None]:
    """The Dagster instance a job backend records runs on: the embedded runner's own; for the
    GraphQL backend the deployment's (``DAGSTER_HOME``, opened on first use), else none."""
    instance = getattr(runner, "instance", None)
    if instance is not None:
        return lambda: instance
    opened: list[dg.DagsterInstance] = []
    lock = threading.Lock()

    def deployment_instance() -> dg.DagsterInstance | None:
        with lock:
            if not opened:
                if not os.environ.get("DAGSTER_HOME"):
                    return None
                opened.append(dg.DagsterInstance.get())
            return opened[0]

    return deployment_instance


def _number(env: dict[str, str] | os._Environ, name: str, default: float) -> float:
    text = env.get(name, "")
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: give a number, e.g. {default:g}") from None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}"
