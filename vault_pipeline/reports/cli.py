"""``vault report``: a compliance report from the command line, the same as the API's.

Generates synchronously on the deployment's storage (``VAULT_ENV``), prints the report's id,
version, digest, ledger entry and every stored form, and with ``--out DIR`` writes the forms
there too (named ``{report_id}.{format}``). Exit 0 when stored, 2 for a request to fix (the
message names the option), 1 when a data source failed (nothing was stored).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from vault_pipeline.core.report_model import FORMATS
from vault_pipeline.core.windows import parse_timestamp

_OPTION = {"period": "--start/--end", "period.start": "--start", "period.end": "--end", "sections": "--section",
           "formats": "--format", "record_ids": "--record-id", "preset": "--preset"}


def add_report_parser(commands) -> None:
    report = commands.add_parser(
        "report", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="generate a compliance report (usage, retention, access logs, lineage, audit trail, quality, integrity)",
        description="Generate a compliance report for a period from the vault's own records, store it "
                    "(content-addressed, versioned, its digest signed into the ledger) and print where it is. "
                    "Times are ISO-8601 with a zone, e.g. 2026-11-01T00:00:00Z.")
    report.add_argument("--start", help="the period's start, inclusive")
    report.add_argument("--end", help="the period's end, exclusive")
    report.add_argument("--preset", choices=("daily", "weekly", "monthly"),
                        help="the last complete day, ISO week or month instead of --start/--end")
    report.add_argument("--section", action="append", help="only this section (repeatable; default: reports.sections)")
    report.add_argument("--format", action="append", choices=FORMATS,
                        help="a form to store (repeatable; default: reports.formats)")
    report.add_argument("--record-id", action="append", help="trace this record in data_lineage (repeatable)")
    report.add_argument("--out", type=Path, help="also write the forms to this directory")
    report.add_argument("--json", action="store_true", help="print the stored report's index entry as JSON")


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    moment = parse_timestamp(text)
    if moment is None:
        raise ValueError(f"{option} {text!r} is not an ISO-8601 time with a zone, e.g. 2026-11-01T00:00:00Z")
    return moment


def run_report(args: argparse.Namespace) -> int:
    from vault_pipeline.defs.resources import vault_resource
    from vault_pipeline.reports.sections import ReportSourceError
    from vault_pipeline.reports.service import ReportRequestError, ReportService

    try:
        start, end = _moment(args.start, "--start"), _moment(args.end, "--end")
    except ValueError as exc:
        print(f"vault: error: {exc}", file=sys.stderr)
        return 2
    vault = vault_resource()
    service = ReportService(catalog=vault.catalog(), store=vault.object_store(), lake=vault.lake(),
                            signer=vault.ledger_signer(), config=vault.vault_config)
    try:
        request = service.check(start=start, end=end, preset=args.preset, sections=args.section, formats=args.format,
                                record_ids=args.record_id, requested_by="cli:vault report")
        stored = service.generate(request)
    except ReportRequestError as exc:
        print(f"vault: error: {_OPTION.get(exc.parameter, exc.parameter)}: {exc.msg}", file=sys.stderr)
        return 2
    except ReportSourceError as exc:
        print(f"vault: report failed, nothing was stored: {exc}", file=sys.stderr)
        return 1
    finally:
        service.close()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for fmt, form in stored["forms"].items():
            (args.out / f"{stored['report_id']}.{fmt}").write_bytes(service.store.get(form["key"]))
    if args.json:
        print(json.dumps(stored, indent=2, sort_keys=True))
        return 0
    print(f"report {stored['report_id']} version {stored['version']} of {stored['period_start']} .. "
          f"{stored['period_end']}")
    print(f"  digest  {stored['digest']}")
    print(f"  ledger  {stored['ledger']['provider']} #{stored['ledger']['sequence']} {stored['ledger']['entry_hash']}")
    for fmt, form in sorted(stored["forms"].items()):
        where = args.out / f"{stored['report_id']}.{fmt}" if args.out is not None else service.store.uri(form["key"])
        print(f"  {fmt:5s}   {form['checksum']}  {where}")
    return 0
