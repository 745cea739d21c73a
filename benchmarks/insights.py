"""Benchmark of the insight detectors: quality on labelled histories, and speed at 1M results.

Quality (figures from ``vault_pipeline_tests/fixtures/insights_history.py``, seeded): a generated
CI history of 500 tests x 200 builds with known flaky tests (5 %, flake rates 2-30 %), real
breakages, 10 duration regressions (1.3x-3x) and failures from 30 message families.

- flaky: precision over everything reported; recall over the flaky tests of rate >= 5 %
  (and, for information, over all of them);
- regressions: precision and recall, a hit being a reported test whose ``build`` is within 2
  builds of the true first slow build;
- failure clusters: grouping accuracy (GA) over the history's failures, family = truth;
- LogHub: GA of the same grouping on LogHub's 2k-line samples (``*_2k.log_structured.csv``,
  ``Content`` vs ``EventTemplate``; logpai/loghub, Zhu et al., ISSRE 2023) found in ``--loghub``.

Speed: a history of 5000 tests x 200 builds (about 1M results), all three detectors (and the
suite trends) timed one after the other in this process, with the process's peak RSS.

    .venv/bin/python benchmarks/insights.py [--loghub DIR] [--seed N] [--skip-speed]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault_pipeline.core import insights
from vault_pipeline_tests.fixtures.insights_history import history

LOGHUB_DEFAULT = Path(__file__).parent / "data" / "loghub_2k"


def pairs(table):
    return set(zip(table["suite"].to_pylist(), table["test"].to_pylist()))


def quality(seed: int) -> None:
    h = history(500, 200, seed)
    t = h.results
    print(f"labelled history (insights_history.history(500, 200, seed={seed})): {t.num_rows} results, "
          f"{len(h.flaky)} flaky, {len(h.broken)} broken, {len(h.regressions)} regressions")

    found = pairs(insights.flaky_tests(t))
    target = {k for k, rate in h.flaky.items() if rate >= 0.05}
    precision = len(found & set(h.flaky)) / max(len(found), 1)
    print(f"flaky: reported {len(found)}, precision {precision:.3f}, "
          f"recall (rate >= 5 %) {len(found & target) / len(target):.3f} ({len(found & target)}/{len(target)}), "
          f"recall (all) {len(found & set(h.flaky)) / len(h.flaky):.3f}, "
          f"broken tests reported {len(found & h.broken)}")
    missed = sorted(round(h.flaky[k], 3) for k in set(h.flaky) - found)
    print(f"  missed flake rates: {missed}")

    reg = insights.duration_regressions(t)
    hits = [(k, b) for k, b in zip(zip(reg["suite"].to_pylist(), reg["test"].to_pylist()),
                                   reg["build"].to_pylist())
            if k in h.regressions and abs(b - h.regressions[k][0]) <= 2]
    offsets = [b - h.regressions[k][0] for k, b in hits]
    print(f"regressions: reported {reg.num_rows}, precision {len(hits) / max(reg.num_rows, 1):.3f}, "
          f"recall {len(hits) / len(h.regressions):.3f} (within 2 builds; offsets {offsets})")
    missed = sorted(round(r, 2) for k, (_, r) in h.regressions.items() if k not in dict(hits))
    print(f"  missed ratios: {missed}")
    trends = insights.suite_trends(t)
    print(f"suite trends: {trends.select(['suite', 'build', 'ratio', 'direction']).to_pylist()}")

    failing = t.filter(pc.is_valid(t["family"]))
    group, templates = insights.group_messages(insights.failure_messages(failing))
    ga = insights.grouping_accuracy(group, failing["family"].to_pylist())
    print(f"failure clusters (own corpus, {failing.num_rows} failures, "
          f"{len(set(failing['family'].to_pylist()))} families): {len(templates)} clusters, GA {ga:.3f}")


def loghub(folder: Path) -> None:
    files = sorted(folder.glob("*_2k.log_structured.csv")) if folder.is_dir() else []
    if not files:
        print(f"LogHub: no *_2k.log_structured.csv in {folder} (pass --loghub DIR)")
        return
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        truth = [r["EventTemplate"] for r in rows]
        group, templates = insights.group_messages([r["Content"] for r in rows])
        ga = insights.grouping_accuracy(group, truth)
        # For comparison: the same masks with drain3's own default similarity threshold.
        loose, _ = insights.group_messages([r["Content"] for r in rows], sim_threshold=0.4)
        print(f"LogHub {path.name.split('_2k')[0]:<12} {len(rows)} lines, {len(set(truth))} templates, "
              f"{len(templates)} clusters, GA {ga:.3f} (at sim 0.4: {insights.grouping_accuracy(loose, truth):.3f})")


def speed(seed: int) -> None:
    t0 = time.perf_counter()
    t = history(5000, 200, seed).results.drop_columns(["family"])
    print(f"speed: {t.num_rows} results generated in {time.perf_counter() - t0:.1f} s "
          f"({os.cpu_count()} cores visible)")
    total = 0.0
    for name, detector in (("flaky_tests", insights.flaky_tests),
                           ("failure_clusters", insights.failure_clusters),
                           ("duration_regressions", insights.duration_regressions),
                           ("suite_trends", insights.suite_trends)):
        t0 = time.perf_counter()
        out = detector(t)
        took = time.perf_counter() - t0
        total += took
        print(f"  {name:<22} {took:6.2f} s  -> {out.num_rows} rows")
    print(f"  all detectors         {total:6.2f} s  ({t.num_rows / total:,.0f} results/s); "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (whole process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loghub", type=Path, default=LOGHUB_DEFAULT)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    quality(args.seed)
    loghub(args.loghub)
    if not args.skip_speed:
        speed(args.seed)


if __name__ == "__main__":
    main()
