"""``vault alerts``: the alert outbox as an operator sees it, and what to do about what is stuck.

``vault alerts`` lists the newest alerts with their delivery: target (its vault.yaml name),
status (pending, delivered, failed), attempts and the last error, ``--json`` for scripts.
``vault alerts retry [ID...]`` makes failed deliveries (or the named ones) due again, attempts
counted afresh, and delivers them now; ``vault alerts test`` sends a test alert to every
target (or ``--target``), which is how to check a new webhook or Slack channel. Exit 0 when
everything asked for was delivered (or only listed), 1 when a delivery failed, 2 on a usage or
configuration error. No URL or token is ever printed: targets are shown by name.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime

from vault_pipeline.core.alerts import DELIVERY_STATUSES, EVENT_KINDS, TEST, AlertEvent

LIST_HINT = "notifications: in vault.yaml names where alerts go, see docs/alerts.md"


def add_alerts_parser(commands) -> None:
    alerts = commands.add_parser(
        "alerts", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="list the alerts raised and their delivery; retry failed ones; send a test alert",
        description="List the newest alerts in the outbox with their delivery status (pending, delivered, failed), "
                    "attempts and last error. Targets are shown by their vault.yaml name, never by URL or token.")
    _list_options(alerts)
    actions = alerts.add_subparsers(dest="alerts_command")
    _list_options(actions.add_parser("list", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     help="list alerts (the default)"))
    retry = actions.add_parser("retry", help="make failed deliveries (or the named ones) due again and deliver now")
    retry.add_argument("ids", nargs="*", metavar="DELIVERY_ID", help="deliveries to retry (default: every failed one)")
    retry.add_argument("--json", action="store_true", help="print the outcome as JSON")
    test = actions.add_parser("test", help="send a test alert to every target (or --target) now")
    test.add_argument("--target", action="append", help="only this target (its name in vault.yaml; repeatable)")
    test.add_argument("--json", action="store_true", help="print the outcome as JSON")


def _list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", choices=DELIVERY_STATUSES, help="only alerts with this delivery status")
    parser.add_argument("--kind", choices=EVENT_KINDS, help="only alerts of this kind")
    parser.add_argument("--limit", type=int, default=20, help="at most this many alerts, newest first")
    parser.add_argument("--json", action="store_true", help="print the alerts as JSON")


def run_alerts(args: argparse.Namespace) -> int:
    from vault_pipeline.alerts.outbox import AlertOutbox
    from vault_pipeline.defs.resources import vault_resource

    vault = vault_resource()
    config = vault.vault_config()  # a ConfigError is reported by the vault command (exit 2)
    outbox = AlertOutbox(vault.catalog(), config)
    command = args.alerts_command or "list"
    if command == "list":
        if args.limit < 1:
            print("vault: error: --limit must be at least 1", file=sys.stderr)
            return 2
        return _list(outbox, args)
    if command == "retry":
        queued = outbox.retry(list(args.ids) if args.ids else None)
        if args.ids and queued < len(set(args.ids)):
            known = {d.delivery_id for d in (outbox.catalog.get_alert(i) for i in args.ids) if d}
            unknown = sorted(set(args.ids) - known)
            if unknown:
                print(f"vault alerts retry: no such alert {', '.join(unknown)} (see vault alerts)", file=sys.stderr)
                return 2
        return _deliver(outbox, args, f"{queued} deliveries queued again")
    # test
    names = args.target or outbox.targets
    unknown = sorted(set(names) - set(outbox.targets))
    if unknown or not names:
        configured = ", ".join(outbox.targets) or "none"
        print(f"vault: error: {'unknown target(s) ' + ', '.join(unknown) if unknown else 'no targets'}; "
              f"configured: {configured}; {LIST_HINT}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event = AlertEvent(kind=TEST, severity="info", title="vault alerts test",
                       text=f"A test alert from vault_pipeline, sent {stamp[:19]}Z to check this target.",
                       dedup_key=f"{TEST}:{stamp}", created_at=stamp, fields={"targets": ", ".join(names)})
    only = AlertOutbox(outbox.catalog, config.model_copy(update={"notifications": [
        t for t in config.notifications if t.target_name in names]}))
    added = only.raise_event(event)
    return _deliver(only, args, f"test alert {event.event_id} queued for {added} target(s)", event.event_id)


def _list(outbox, args) -> int:
    catalog = outbox.catalog
    deliveries = catalog.list_alerts(status=args.status, kind=args.kind, limit=args.limit)
    total = catalog.count_alerts(status=args.status, kind=args.kind)
    counts = {status: catalog.count_alerts(status=status) for status in DELIVERY_STATUSES}
    if args.json:
        print(json.dumps({"data": [asdict(d) for d in deliveries],
                          "meta": {"total_count": total, "has_more": total > len(deliveries), "by_status": counts,
                                   "targets": outbox.targets}}, indent=1))
        return 0
    if not deliveries:
        where = f" ({args.status or ''}{' ' if args.status and args.kind else ''}{args.kind or ''})" \
            if args.status or args.kind else ""
        targets = f"targets: {', '.join(outbox.targets)}" if outbox.targets else f"no targets yet: {LIST_HINT}"
        print(f"no alerts{where} in the outbox; {targets}")
        return 0
    print(f"{'DELIVERY':<35} {'STATUS':<9} {'TRIES':>5}  {'RAISED':<17} {'KIND':<11} {'TARGET':<24} TITLE")
    for d in deliveries:
        print(f"{d.delivery_id:<35} {d.status:<9} {d.attempts:>5}  {d.created_at[:16]:<17} {d.kind:<11} "
              f"{d.target:<24} {d.title}")
        if d.status != "delivered" and d.last_error:
            due = f"; next attempt {d.next_attempt_at[:19]}Z" if d.status == "pending" else "; gave up (vault alerts retry)"
            print(f"{'':<35} last error: {d.last_error}{due}")
    shown = f"{len(deliveries)} of {total}" if total > len(deliveries) else str(total)
    print(f"{shown} alerts: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def _deliver(outbox, args, headline: str, event_id: str | None = None) -> int:
    report = outbox.deliver_due(limit=500, budget_s=60.0)
    catalog = outbox.catalog
    touched = [catalog.get_alert(i) for i in (*report.delivered, *report.retrying, *report.failed)]
    if event_id is not None:  # a test: only its own deliveries count
        touched = [d for d in catalog.list_alerts(kind=TEST, limit=100) if d.event_id == event_id]
    undelivered = [d for d in touched if d is not None and d.status != "delivered"]
    if args.json:
        print(json.dumps({"summary": headline, "skipped": report.skipped,
                          "deliveries": [{k: v for k, v in asdict(d).items() if k != "event"} for d in touched if d]},
                         indent=1))
    else:
        print(f"{headline}; {report.summary()}")
        for d in touched:
            if d is not None:
                outcome = "delivered" if d.status == "delivered" else f"{d.status}: {d.last_error}"
                print(f"  {d.delivery_id} {d.target}: {outcome}")
    return 1 if undelivered or report.skipped else 0
