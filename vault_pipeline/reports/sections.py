"""The compliance report's sections, each built from the vault's own records, never typed by hand.

One builder per section name (``usage``, ``retention``, ``access_logs``, ``data_lineage``,
``audit_trail``, ``data_quality``, ``integrity``, and the custom sections of ``reports:`` in
vault.yaml); each reads through the storage ports (the lake through the analytics queries,
pinned to one table version per report; the catalog; the object store; the ledger) and returns
a generic ``Section`` (core/report_model.py) the renderers lay out. A source that cannot be read
raises ``ReportSourceError`` naming the section and the cause: the report then fails whole, and
nothing partial is stored.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from vault_pipeline.api.analytics_queries import (
    FACT_TABLE,
    LAKE_TABLES,
    TECHNIQUE_MART,
    AnalyticsError,
    Snapshot,
    iso_z,
)
from vault_pipeline.core.ledger import entries_from_dicts, verify_chain
from vault_pipeline.core.report_model import SECTION_NAMES, Chart, Section, Table
from vault_pipeline.defs.integrity.ledger_stage import ledger_retention_days, stored_checkpoint
from vault_pipeline.reports.access import access_summary
from vault_pipeline.reports.audit_trail import audit_trail
from vault_pipeline.reports.context import ReportContext, ReportSourceError, listing, pct, series_interval
from vault_pipeline.reports.lineage import sample_records, trace_records
from vault_pipeline.reports.moments import utc_moment
from vault_pipeline.reports.verify_runs import verify_runs
from vault_pipeline.storage.lake import DeltaLake, LakeError, sql_ident, sql_literal

PASS_RATE_TARGET = 0.99  # the input/output checks block a partition under this (DESIGN.md)
TITLES = {
    "usage": "Usage summary", "retention": "Retention status", "access_logs": "Access logs",
    "data_lineage": "Data lineage", "audit_trail": "Audit trail", "data_quality": "Data quality",
    "integrity": "Integrity",
}


# -- usage -----------------------------------------------------------------------------------------
def build_usage(ctx: ReportContext) -> Section:
    ctx.require_lake("usage")
    q, window, facts = ctx.queries, ctx.window, ctx.snapshot(FACT_TABLE)
    try:
        metrics = q.metrics(window, facts, None)
        providers = q.providers(window, facts)
        models = q.models(window, facts)
        techniques = q.techniques(window, ctx.snapshot(TECHNIQUE_MART), None)
        interval = series_interval(ctx)
        series = q.timeseries(window, facts, "requests", "count", interval, None)
    except AnalyticsError as exc:
        raise ReportSourceError("usage", f"the lake cannot be read ({exc.code}: {exc.detail})") from None
    by_name = {m["metric_name"]: m for m in metrics}
    before = {m["metric_name"]: m["previous_value"] for m in metrics}
    summary = {
        "requests": int(by_name["total_requests"]["value"] or 0),
        "success rate": pct(by_name["success_rate"]["value"]),
        "average latency (ms)": by_name["avg_latency_ms"]["value"],
        "p95 latency (ms)": by_name["p95_latency_ms"]["value"],
        "tokens": int(by_name["total_tokens"]["value"] or 0),
        "cost (USD)": by_name["total_cost_usd"]["value"],
        "LLM providers": len(providers),
        "change in requests vs previous period": (
            None if by_name["total_requests"]["change_percent"] is None
            else f"{by_name['total_requests']['change_percent']:+.2f} %"),
    }
    trend = Table("Against the previous period of equal length", ["metric", "this period", "previous period",
                                                                   "change %"],
                  [[m["metric_name"], m["value"], before.get(m["metric_name"]), m["change_percent"]] for m in metrics])
    notes = []
    tables = [
        trend,
        Table("Requests by LLM provider", ["provider", "requests", "successful", "failed", "share %",
                                           "avg latency ms", "p95 latency ms", "tokens", "cost USD"],
              [[p["provider_id"], p["total_requests"], p["successful_requests"], p["failed_requests"],
                round(p["request_share"] * 100, 2), p["avg_latency_ms"], p["p95_latency_ms"], p["total_tokens"],
                p["total_cost_usd"]] for p in providers]),
        listing("Requests by model", ["provider", "model", "requests", "successful", "avg latency ms", "tokens",
                                       "cost USD"],
                 [[m["provider_id"], m["model"], m["total_requests"], m["successful_requests"], m["avg_latency_ms"],
                   m["total_tokens"], m["total_cost_usd"]] for m in models], notes, "models"),
        listing("Requests by technique", ["technique", "source", "uses", "successes", "success rate %",
                                           "avg latency ms", "attack success rate"],
                 [[t["technique"], t["source"], t["uses"], t["successes"], round(t["success_rate"] * 100, 2),
                   t["avg_latency_ms"], t["attack_success_rate"]] for t in techniques], notes, "techniques"),
    ]
    labels = [p["timestamp"][:13 if interval == "hour" else 10] for p in series]
    charts = [
        Chart("line", f"Requests per {interval}", labels, {"requests": [p["value"] for p in series]}),
        Chart("bar", "Requests by LLM provider", [str(p["provider_id"]) for p in providers],
              {"successful": [p["successful_requests"] for p in providers],
               "failed": [p["failed_requests"] for p in providers]}),
    ]
    generation = [t for t in techniques if t["source"] == "generation_event"] or techniques
    if generation:
        charts.append(Chart("pie", "Technique uses", [str(t["technique"]) for t in generation],
                            {"uses": [t["uses"] for t in generation]}))
    if not summary["requests"]:
        notes.append("No generation events in this period: the usage figures are zero.")
    notes.append("Percentiles: DataFusion percentile_cont over the period's rows (docs/api.md gives its bound).")
    ctx.sources["usage"] = {"requests": summary["requests"], "interval": interval}
    return Section("usage", TITLES["usage"], summary, tables, charts, notes)


# -- retention -------------------------------------------------------------------------------------
def _next_maintenance(cron: str, now: datetime) -> str | None:
    try:  # Dagster's own cron evaluation: the moment its schedule will tick
        from dagster._utils.schedules import cron_string_iterator

        return iso_z(next(cron_string_iterator(now.timestamp(), cron, "UTC")))
    except Exception:  # noqa: BLE001 - an unparseable cron fails the schedule itself; here it is "unknown"
        return None


def _table_retention(lake: DeltaLake, table: str, days: int, now: datetime) -> dict[str, Any]:
    cutoff = (now.astimezone(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")
    rows = lake.sql(table, lambda names: (
        f"SELECT COUNT(*) AS n, MIN({sql_ident('date')}) AS oldest, "
        f"SUM(CASE WHEN {sql_ident('date')} < {sql_literal(cutoff)} THEN 1 ELSE 0 END) AS due "
        f"FROM {sql_ident(table)}" if "date" in names else f"SELECT COUNT(*) AS n FROM {sql_ident(table)}"
    )).to_pylist()
    history = lake.history(table, row_counts=False)  # newest first; operations and times only
    last = {op: next((h["timestamp"] for h in history if str(h.get("operation", "")).upper().startswith(op)), None)
            for op in ("OPTIMIZE", "VACUUM", "DELETE")}
    row = rows[0] if rows else {}
    return {"table": table, "rows": int(row.get("n") or 0), "oldest_date": row.get("oldest"),
            "retention_days": days, "cutoff": cutoff, "rows_past_retention": int(row.get("due") or 0),
            "version": lake.version(table), "last_optimize": last["OPTIMIZE"], "last_vacuum": last["VACUUM"],
            "last_delete": last["DELETE"]}


def build_retention(ctx: ReportContext) -> Section:
    lake_config = ctx.config.lake
    goes_at = _next_maintenance(lake_config.cron, ctx.now)
    tables = []
    ctx.require_lake("retention")
    if ctx.lake is not None:
        try:
            for table in LAKE_TABLES:
                if ctx.lake.exists(table):
                    tables.append(_table_retention(ctx.lake, table, lake_config.retention_days_of(table), ctx.now))
        except LakeError as exc:
            raise ReportSourceError("retention", f"the lake cannot be read: {exc}") from None
    try:
        lock = ctx.store.immutability()
        letters = list(_all_dead_letters(ctx.catalog))
    except Exception as exc:  # noqa: BLE001 - any storage failure fails the section, named
        raise ReportSourceError("retention", f"{type(exc).__name__}: {exc}") from None
    oldest_letter = min((d.created_at for d in letters if d.created_at), default=None)
    expiry_days = lake_config.dead_letter_days
    due = sum(t["rows_past_retention"] for t in tables)
    summary = {
        "lake tables": len(tables),
        "rows past retention": due,
        "they are deleted at": goes_at if due else None,
        "oldest row": min((t["oldest_date"] for t in tables if t["oldest_date"]), default=None),
        "object store": lock["backend"],
        "Object Lock": lock["object_lock"],
        "raw zone": ("bucket default retention " + lock["default_retention"]) if lock["default_retention"]
        else "no retention lock; raw objects are never overwritten nor deleted by the vault",
        "ledger entries": f"{lock['retained_objects']}, {ledger_retention_days()} days",
        "versioning": lock["versioning"],
        "dead letters": len(letters),
        "oldest dead letter": oldest_letter,
        "dead letters expire after (days)": expiry_days,
    }
    notes = [f"Row retention runs in lake_maintenance ({lake_config.cron} UTC, next {goes_at or 'unknown'}); "
             f"time travel reaches back {lake_config.vacuum_retention_hours} hours "
             f"(vacuum {'dry run only' if lake_config.vacuum_dry_run else 'deletes'}).",
             "Raw objects are content-addressed and never overwritten: a changed byte is found by `vault verify` "
             "and the ledger whether or not the store locks them."]
    overdue = [t["table"] for t in tables if t["rows_past_retention"] and t["last_delete"] is None]
    if overdue:
        notes.append(f"Rows past retention in {', '.join(overdue)}, never deleted so far: is lake_maintenance "
                     "running (its schedule needs a dagster-daemon)?")
    table = Table("Lake tables", ["table", "rows", "oldest date", "retention days", "rows past retention",
                                  "version", "last optimize", "last vacuum", "last retention delete"],
                  [[t["table"], t["rows"], t["oldest_date"], t["retention_days"], t["rows_past_retention"],
                    t["version"], t["last_optimize"], t["last_vacuum"], t["last_delete"]] for t in tables])
    ctx.sources["retention"] = {"tables": [t["table"] for t in tables]}
    return Section("retention", TITLES["retention"], summary, [table], [], notes)


def _all_dead_letters(catalog):
    offset = 0
    while True:
        page = catalog.list_dead_letters(limit=1000, offset=offset)
        yield from page
        offset += len(page)
        if len(page) < 1000:
            return


# -- access logs -----------------------------------------------------------------------------------
def build_access_logs(ctx: ReportContext) -> Section:
    try:
        access = access_summary(ctx.catalog, ctx.start, ctx.end)
    except Exception as exc:  # noqa: BLE001
        raise ReportSourceError("access_logs", f"the catalog's access log cannot be read: {exc}") from None
    notes = ["The access log records key names, never keys, and paths without query strings."]
    failures = [[f["at"], f["principal"], f["status"], f["method"], f["path"], f["client"]]
                for f in access["failed_authentications"]]
    summary = {"requests": access["total"], "keys": len(access["by_principal"]),
               "failed authentications": access["failed_authentications_total"]}
    tables = [
        Table("Requests by key", ["key name", "requests", "refused (4xx/5xx)"],
              [[p["principal"], p["requests"], p["errors"]] for p in access["by_principal"]]),
        listing("Requests by endpoint", ["method", "endpoint", "requests"],
                 [[e["method"], e["endpoint"], e["requests"]] for e in access["by_endpoint"]], notes, "endpoints"),
        Table("Requests by status", ["status", "requests"], [[s["status"], s["requests"]] for s in access["by_status"]]),
        listing("Failed authentications (401, 403)", ["at", "key name", "status", "method", "path", "client"],
                 failures, notes, "failed authentications"),
    ]
    charts = [Chart("bar", "Requests by status", [str(s["status"]) for s in access["by_status"]],
                    {"requests": [s["requests"] for s in access["by_status"]]})] if access["by_status"] else []
    ctx.sources["access_logs"] = {"entries": access["total"]}
    return Section("access_logs", TITLES["access_logs"], summary, tables, charts, notes)


# -- data lineage ----------------------------------------------------------------------------------
def build_data_lineage(ctx: ReportContext) -> Section:
    try:
        if ctx.record_ids:
            ids, how = list(ctx.record_ids), "requested"
        else:
            ids = sample_records(ctx.catalog, ctx.start, ctx.end, ctx.lineage_sample, seed=int(ctx.start.timestamp()))
            how = "sampled"
        traced = trace_records(catalog=ctx.catalog, store=ctx.store, lake=ctx.lake, verifier=ctx.verifier, log_ids=ids)
    except Exception as exc:  # noqa: BLE001
        raise ReportSourceError("data_lineage", f"{type(exc).__name__}: {exc}") from None
    ctx.data_lineage = traced
    rows, problems = [], []
    for record in traced:
        steps = {s["step"]: s for s in record["steps"]}
        rows.append([record["log_id"], *(steps[name]["status"] if name in steps else None
                                         for name in ("provider", "raw_object", "catalog_entry", "delta_row",
                                                      "golden_copy", "ledger_entry"))])
        problems += [[record["log_id"], s["step"], s["reason"]] for s in record["steps"] if s["status"] != "ok"]
    summary = {"records traced": len(traced), "how chosen": how,
               "fully verified": sum(1 for r in traced if r["ok"]), "with a problem": sum(1 for r in traced if not r["ok"])}
    notes = [f"Each record's chain was re-proved at report time ({how}, seed = the period's start): raw bytes "
             "re-hashed, Delta row looked up, golden copy re-hashed, Merkle proof checked against the signed root."]
    if not traced:
        notes.append("No sealed records in this period to trace.")
    tables = [Table("Lineage per record", ["log id", "provider", "raw object", "catalog entry", "Delta row",
                                           "golden copy", "ledger entry"], rows),
              listing("Problems found", ["log id", "step", "reason"], problems, notes, "problems")]
    ctx.sources["data_lineage"] = {"records": len(traced), "chosen": how}
    return Section("data_lineage", TITLES["data_lineage"], summary, tables, [], notes)


# -- audit trail -----------------------------------------------------------------------------------
def _what(event: dict[str, Any]) -> str:
    if event.get("changes"):
        return json.dumps(event["changes"], sort_keys=True, default=str)[:2000]
    detail = event.get("detail")
    return detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True, default=str)[:2000]


def build_audit_trail(ctx: ReportContext) -> Section:
    try:
        events = audit_trail(ctx.catalog, ctx.start, ctx.end)
    except Exception as exc:  # noqa: BLE001
        raise ReportSourceError("audit_trail", f"{type(exc).__name__}: {exc}") from None
    ctx.audit_events = events
    notes: list[str] = []
    counts = Counter(e["kind"] for e in events)
    rows = [[e["at"], e["kind"], e.get("actor"), e.get("run_id"),
             None if not e.get("ledger") else f"{e['ledger']['provider']} #{e['ledger']['sequence']}",
             None if not e.get("ledger") else e["ledger"]["entry_hash"], _what(e)] for e in events]
    summary = {"events": len(events), **{kind.replace("_", " "): n for kind, n in sorted(counts.items())}}
    table = listing("Changes and decisions, oldest first", ["at", "kind", "actor", "run id", "ledger entry",
                                                             "entry hash", "what"], rows, notes, "events")
    charts = [Chart("bar", "Events by kind", sorted(counts), {"events": [counts[k] for k in sorted(counts)]})] \
        if counts else []
    if not events:
        notes.append("No configuration, key-ring, promotion, maintenance or report events in this period.")
    ctx.sources["audit_trail"] = {"events": len(events)}
    return Section("audit_trail", TITLES["audit_trail"], summary, [table], charts, notes)


# -- data quality ----------------------------------------------------------------------------------
def build_data_quality(ctx: ReportContext) -> Section:
    try:
        results = ctx.queries.data_quality(ctx.window, Snapshot())
    except AnalyticsError as exc:
        raise ReportSourceError("data_quality", f"{exc.code}: {exc.detail}") from None
    except Exception as exc:  # noqa: BLE001
        raise ReportSourceError("data_quality", f"{type(exc).__name__}: {exc}") from None
    per_suite: dict[str, dict[str, Any]] = defaultdict(lambda: {"partitions": 0, "rows": 0, "passed": 0, "under": 0})
    under = []
    for r in results:
        suite = per_suite[r["suite"] or "unknown"]
        suite["partitions"] += 1
        suite["rows"] += r["row_count"]
        suite["passed"] += r["passed"]
        if r["pass_rate"] is not None and r["pass_rate"] < PASS_RATE_TARGET:
            suite["under"] += 1
            under.append([r["partition"], r["suite"], r["row_count"], r["passed"], pct(r["pass_rate"]),
                          ", ".join(f"{e['type']}({e['column']}): {e['unexpected_count']}"
                                    for e in r["failing_expectations"])])
    suites = sorted(per_suite)
    rate = {s: (per_suite[s]["passed"] / per_suite[s]["rows"]) if per_suite[s]["rows"] else None for s in suites}
    rows = sum(v["rows"] for v in per_suite.values())
    overall = sum(v["passed"] for v in per_suite.values()) / rows if rows else None
    notes = [f"Target: {PASS_RATE_TARGET:.0%} of rows pass per suite and partition (the blocking checks' threshold)."]
    if not results:
        notes.append("No validation results in this period: nothing was checked, so nothing is claimed.")
    summary = {"suites": len(suites), "partitions validated": len(results), "rows validated": rows,
               "overall pass rate": pct(overall), "partitions under target": len(under),
               "meets target": None if overall is None else overall >= PASS_RATE_TARGET and not under}
    notes_out = notes
    tables = [
        Table("Pass rate per suite", ["suite", "partitions", "rows", "passed", "pass rate", "partitions under target",
                                      "meets target"],
              [[s, per_suite[s]["partitions"], per_suite[s]["rows"], per_suite[s]["passed"], pct(rate[s]),
                per_suite[s]["under"], None if rate[s] is None else rate[s] >= PASS_RATE_TARGET
                and not per_suite[s]["under"]] for s in suites]),
        listing("Partitions under target", ["partition", "suite", "rows", "passed", "pass rate",
                                             "failing expectations"], under, notes_out, "partitions"),
    ]
    charts = [Chart("bar", "Pass rate per suite (%)", suites,
                    {"pass rate %": [None if rate[s] is None else round(rate[s] * 100, 3) for s in suites]})] \
        if suites else []
    ctx.sources["data_quality"] = {"results": len(results)}
    return Section("data_quality", TITLES["data_quality"], summary, tables, charts, notes_out)


# -- integrity -------------------------------------------------------------------------------------
def _integrity_reports(ctx: ReportContext) -> list[dict[str, Any]]:
    """The hourly integrity diffs of the period's partitions, read back from the store."""
    low, high = ctx.window.first, ctx.window.stop
    out, offset = [], 0
    while low is not None:
        page = ctx.catalog.search_artifacts(kind="integrity_report", limit=1000, offset=offset)
        offset += len(page)
        for artifact in page:
            try:
                hour = datetime.strptime(artifact.partition.partition("|")[0], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
            except ValueError:
                continue
            if low <= hour < high:
                try:
                    document = json.loads(ctx.store.get(artifact.location))
                except Exception:  # noqa: BLE001 - a report that cannot be read is listed as such
                    document = {"partition": artifact.partition, "clean": None, "finding_counts": {"unreadable": 1}}
                out.append(document | {"partition": artifact.partition})
        if len(page) < 1000:
            break
    return sorted(out, key=lambda d: d["partition"])


def _chains(ctx: ReportContext) -> list[list[Any]]:
    rows = []
    for provider in sorted(ctx.catalog.ledger_providers()):
        stored = [json.loads(text) for _, text in ctx.catalog.ledger_entries(provider)]
        entries, findings = entries_from_dicts(stored, provider)
        try:
            checkpoint = stored_checkpoint(ctx.store, ctx.catalog, provider)
        except ValueError:  # LedgerError included
            checkpoint = None  # verify_chain reports a chain without a readable checkpoint
        findings += verify_chain(entries, checkpoint, ctx.verifier, provider=provider)
        in_period = sum(1 for e in entries if ctx.start <= utc_moment(e.created_at) < ctx.end)
        rows.append([provider, len(entries), in_period, len(findings),
                     "; ".join(sorted({f.type for f in findings})) or None])
    return rows


def build_integrity(ctx: ReportContext) -> Section:
    try:
        runs = verify_runs(ctx.catalog, ctx.store, ctx.start, ctx.end)
        diffs = _integrity_reports(ctx)
        chains = _chains(ctx)
    except Exception as exc:  # noqa: BLE001
        raise ReportSourceError("integrity", f"{type(exc).__name__}: {exc}") from None
    notes: list[str] = []
    findings = [[run.get("finished_at"), f.get("type"), f.get("provider"), f.get("partition"), f.get("detail")]
                for run in runs for f in run.get("findings", [])]
    failing = [d for d in diffs if d.get("clean") is False or d.get("clean") is None]
    summary = {
        "verify runs": len(runs),
        "clean verify runs": sum(1 for r in runs if r.get("clean") is True),
        "latest verify": None if not runs else ("clean" if runs[-1].get("clean") else "findings"),
        "verify findings": len(findings),
        "partitions diffed": len(diffs),
        "partitions with integrity findings": len(failing),
        "ledger chains re-verified now": len(chains),
        "chain findings now": sum(r[3] for r in chains),
    }
    if not runs:
        notes.append("No `vault verify` run finished in this period.")
    altered = [r for r in runs if r.get("altered") or r.get("missing")]
    if altered:
        notes.append(f"{len(altered)} stored verify result(s) are missing or no longer match their indexed checksum.")
    tables = [
        Table("vault verify runs", ["finished at", "clean", "findings", "summary"],
              [[r.get("finished_at"), r.get("clean"), len(r.get("findings", [])),
                "stored result missing or altered" if (r.get("altered") or r.get("missing")) else r.get("summary")]
               for r in runs]),
        listing("Verify findings", ["run finished at", "type", "provider", "partition", "detail"],
                 [[a, b, c, d, e if isinstance(e, str) or e is None else json.dumps(e, default=str)]
                  for a, b, c, d, e in findings], notes, "findings"),
        listing("Partitions whose integrity diff found problems", ["partition", "clean", "findings"],
                 [[d["partition"], d.get("clean"), json.dumps(d.get("finding_counts", {}), sort_keys=True)]
                  for d in failing], notes, "partitions"),
        Table("Ledger chains, re-verified at report time", ["chain", "entries", "entries in period", "findings",
                                                            "finding types"], chains),
    ]
    ctx.sources["integrity"] = {"verify_runs": len(runs), "integrity_reports": len(diffs),
                                "chains": [r[0] for r in chains]}
    return Section("integrity", TITLES["integrity"], summary, tables, [], notes)


# -- custom sections (reports.custom_sections in vault.yaml) -------------------------------------
def build_custom(ctx: ReportContext, name: str, spec) -> Section:
    q, window, facts = ctx.queries, ctx.window, ctx.snapshot(FACT_TABLE)
    labels, summary, series = [], {}, {}
    try:
        for metric in spec.metrics:
            label = metric.label or f"{metric.aggregation} of {metric.metric}" + (
                f" ({metric.provider})" if metric.provider else "")
            points = q.timeseries(window, facts, metric.metric, metric.aggregation, spec.interval, metric.provider)
            labels = labels or [p["timestamp"][:13 if spec.interval == "hour" else 10] for p in points]
            series[label] = [p["value"] for p in points]
            if metric.aggregation in ("count", "sum"):  # a period total is the sum of its buckets
                summary[f"{label}, whole period"] = sum(p["value"] or 0 for p in points)
    except AnalyticsError as exc:
        raise ReportSourceError(name, f"{exc.code}: {exc.detail}") from None
    # One row per bucket, one column per metric: long periods stay readable in every format.
    rows = [[bucket, *(values[i] for values in series.values())] for i, bucket in enumerate(labels)]
    table = Table(spec.title, ["bucket", *series], rows)
    charts = [Chart("line", spec.title, labels, series)] if labels else []
    notes = [spec.description] if spec.description else []
    return Section(name, spec.title, summary, [table], charts, notes)


BUILDERS: dict[str, Callable[[ReportContext], Section]] = {
    "usage": build_usage, "retention": build_retention, "access_logs": build_access_logs,
    "data_lineage": build_data_lineage, "audit_trail": build_audit_trail, "data_quality": build_data_quality,
    "integrity": build_integrity,
}
assert tuple(BUILDERS) == SECTION_NAMES


def build_sections(ctx: ReportContext, names: list[str]) -> list[Section]:
    custom = ctx.config.reports.custom_sections
    return [BUILDERS[name](ctx) if name in BUILDERS else build_custom(ctx, name, custom[name]) for name in names]


__all__ = ["BUILDERS", "PASS_RATE_TARGET", "ReportContext", "ReportSourceError", "build_sections"]
