"""PII scanning benchmark: MB/s of audit JSON scanned and masked on one core, plus detection quality.

Records come from the built-in simulator (all three kinds: CloudTrail-like audit events, LLM
generation events, CI test results), framed and decoded exactly as the pipeline does. The
throughput is bytes of record JSON divided by the time ``PiiScanner.scan`` (or ``mask``)
spends on the decoded records, single-threaded, each timed run starting from a new scanner
(empty memo), as promotion would for a partition. "cold" also switches the value memo off:
the worst case, where no string value ever repeats (keys stay memoised: a provider's records
share one schema). "+decode" adds msgspec decoding of the record bytes. The quality table is the labelled test corpus
(``vault_pipeline_tests/core/pii_corpus.py``).

    python benchmarks/pii.py                    # 20k records per kind
    python benchmarks/pii.py --records 100000
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for vault_pipeline_tests (the corpus)

from vault_pipeline.core.framing import decode_record  # noqa: E402
from vault_pipeline.core.pii import MaskPolicy, PiiScanner, mask  # noqa: E402
from vault_pipeline.core.windows import HourWindow  # noqa: E402
from vault_pipeline.providers.config import parse_config  # noqa: E402
from vault_pipeline.providers.simulator import SimulatorProvider  # noqa: E402

KINDS = ("audit_event", "generation_event", "test_result")


def simulator_records(kind: str, count: int) -> list[bytes]:
    config = parse_config({"providers": {"bench": {"type": "simulator", "kind": kind, "records_per_hour": count,
                                                    "seed": 11, "lookback_hours": 0, "invalid_fraction": 0.0}}})
    provider = SimulatorProvider(config.provider("bench"))
    records: list[bytes] = []
    for page in provider.fetch_pages(HourWindow.for_hour_key("2026-01-01-00:00")):
        records.extend(page.framed.slices(page.body))
    return records


def best_of(runs: int, fn) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def measure_kind(kind: str, count: int, runs: int) -> dict:
    raw = simulator_records(kind, count)
    size = sum(len(r) for r in raw)
    values = [decode_record(r) for r in raw]
    findings = sum(len(PiiScanner().scan(v)) for v in values)

    def scan_warm():
        scanner = PiiScanner()
        for v in values:
            scanner.scan(v)

    def scan_cold():
        scanner = PiiScanner(memo=False)
        for v in values:
            scanner.scan(v)

    def decode_and_scan():
        scanner = PiiScanner()
        for r in raw:
            scanner.scan(decode_record(r))

    def mask_with(make_policy):
        def run():
            scanner, policy = PiiScanner(), make_policy()
            for v in values:
                mask(v, policy, scanner)
        return run

    redact = MaskPolicy.redact
    pseudonym = lambda: MaskPolicy.pseudonym(b"benchmark-key-0123456789abcdef")  # noqa: E731

    mb = size / 1e6
    return {
        "kind": kind, "records": len(raw), "MB": mb, "findings": findings,
        "scan": mb / best_of(runs, scan_warm), "scan cold": mb / best_of(runs, scan_cold),
        "scan+decode": mb / best_of(runs, decode_and_scan),
        "mask redact": mb / best_of(runs, mask_with(redact)), "mask pseudonym": mb / best_of(runs, mask_with(pseudonym)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per kind")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (best is reported)")
    parser.add_argument("--kind", choices=KINDS, action="append", help="limit to these kinds")
    args = parser.parse_args(argv)

    print(f"PII scan throughput, single core: Python {platform.python_version()} on {platform.machine()}, "
          f"{args.records} simulator records per kind, MB/s of record JSON (best of {args.runs})")
    columns = ["scan", "scan cold", "scan+decode", "mask redact", "mask pseudonym"]
    print(f"{'kind':<18} {'records':>8} {'MB':>7} {'findings':>9} " + " ".join(f"{c:>14}" for c in columns))
    results = [measure_kind(kind, args.records, args.runs) for kind in (args.kind or KINDS)]
    for r in results:
        print(f"{r['kind']:<18} {r['records']:>8} {r['MB']:>7.1f} {r['findings']:>9} " + " ".join(f"{r[c]:>14.1f}" for c in columns))
    total = sum(r["MB"] for r in results)
    overall = {c: total / sum(r["MB"] / r[c] for r in results) for c in columns}
    print(f"{'all kinds':<18} {sum(r['records'] for r in results):>8} {total:>7.1f} {sum(r['findings'] for r in results):>9} "
          + " ".join(f"{overall[c]:>14.1f}" for c in columns))
    target = overall["scan"]
    print(f"\ntarget >= 50 MB/s scanned per core: {'met' if target >= 50 else 'NOT met'} ({target:.1f} MB/s)\n")

    from vault_pipeline_tests.core.pii_corpus import format_quality, measure

    rows, _ = measure()
    print("Detection quality on the labelled corpus (exact spans):")
    print(format_quality(rows))


if __name__ == "__main__":
    main()
