"""Failure clusters: the failures of many tests and builds grouped by what went wrong.

Each failing run (``failed`` or ``error``) has a *failure message*: its ``error_type``, its
``error_message`` and the first ``text_lines`` lines of its ``error_text``, joined by spaces. The
parts that vary between occurrences of the same problem are masked first, over the whole column
at once (Arrow's RE2 regexes): timestamps, UUIDs, URLs, IP addresses with ports, quoted strings,
and file paths become ``<TS>``, ``<UUID>``, ``<URL>``, ``<IP>``, ``<STR>`` and ``<PATH>``, and
numbers, decimal or hex (one placeholder, as an id is printed with or without letters), ``<NUM>``.
The distinct masked messages, in the order they first failed, are then grouped by Drain (He et
al., ICWS 2017; the ``drain3`` implementation), which also turns the remaining tokens that differ
inside a group into ``<*>``. A cluster is one final template:
its count, first and last seen, the tests affected, and every occurrence as ``{test, build}``.

``grouping_accuracy`` is the log-parsing benchmarks' GA (Zhu et al., ICSE-SEIP 2019): the share
of messages whose predicted group holds exactly the messages of their ground-truth group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from drain3.drain import Drain

from ._columns import FAILING, TS, as_timestamps, codes, group_starts, runs

DEFAULT_SIM_THRESHOLD = 0.8  # masks leave few variable tokens: what still differs is mostly wording
DEFAULT_TEXT_LINES = 3
MAX_MESSAGE_CHARS = 2000

# Order matters: wider shapes first, so a timestamp is not masked as three numbers and a path
# inside quotes is one <STR>. RE2 has no look-behind, so a leading context char is kept by \1.
MASKS: tuple[tuple[str, str], ...] = (
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<TS>"),
    (r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<TS>"),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<UUID>"),
    (r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+", "<URL>"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b", "<IP>"),
    (r"\"[^\"\n]*\"", "<STR>"),
    (r"(^|[\s(\[{=:,])'[^'\n]*'", r"\1<STR>"),  # not the apostrophe of "can't"
    (r"(^|[\s(\[{=:,\"])(?:[A-Za-z]:)?(?:\.{1,2})?(?:[/\\][\w.@+-]+){2,}[/\\]?", r"\1<PATH>"),
    (r"(^|[\s(\[{=:,\"])[\w.@+-]+(?:/[\w.@+-]+)+/?", r"\1<PATH>"),
    (r"\b0[xX][0-9a-fA-F]+\b", "<NUM>"),
    (r"[-+]?\b[0-9a-fA-F]{8,}\b", "<NUM>"),
    (r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", "<NUM>"),
    (r"\s+", " "),
)

CLUSTER_SCHEMA = pa.schema([
    ("cluster_id", pa.string()),
    ("template", pa.string()),
    ("count", pa.int64()),
    ("first_seen", TS),
    ("last_seen", TS),
    ("first_build", pa.int64()),
    ("last_build", pa.int64()),
    ("tests_affected", pa.int64()),
    ("tests", pa.list_(pa.string())),
    ("occurrences", pa.list_(pa.struct([("test", pa.string()), ("build", pa.int64())]))),
])


def failure_messages(results: pa.Table, *, text_lines: int = DEFAULT_TEXT_LINES) -> pa.ChunkedArray:
    """The failure message of every row: type, message and the first lines of the text."""
    def column(name):
        if name in results.column_names:
            return pc.cast(results[name], pa.string())
        return pa.chunked_array([pa.nulls(results.num_rows, pa.string())])

    first_lines = pc.list_slice(pc.split_pattern(pc.fill_null(column("error_text"), ""), "\n",
                                                 max_splits=text_lines), 0, text_lines)
    text = pc.binary_join(first_lines, " ")
    joined = pc.binary_join_element_wise(column("error_type"), column("error_message"), text, " ",
                                         null_handling="replace", null_replacement="")
    return pc.utf8_slice_codeunits(joined, 0, MAX_MESSAGE_CHARS)


def mask(messages) -> pa.ChunkedArray | pa.Array:
    """``messages`` with their variable parts replaced by the ``MASKS`` placeholders."""
    for pattern, replacement in MASKS:
        messages = pc.replace_substring_regex(messages, pattern, replacement)
    return pc.utf8_trim_whitespace(messages)


def group_messages(messages: Sequence[str] | pa.Array | pa.ChunkedArray, *,
                   sim_threshold: float = DEFAULT_SIM_THRESHOLD,
                   masked: bool = False) -> tuple[np.ndarray, list[str]]:
    """Group ``messages`` (in their given order): a group index per message, and each group's
    template. Messages equal after masking are one group before Drain sees them, so Drain runs
    once per distinct masked message, not once per failure.
    """
    values = messages if masked else mask(pa.array(messages, pa.string())
                                          if not isinstance(messages, (pa.Array, pa.ChunkedArray))
                                          else messages)
    distinct_code, distinct = codes(pc.fill_null(values, ""))  # dictionary order = first seen
    drain = Drain(depth=4, sim_th=sim_threshold, param_str="<*>")
    cluster_of_distinct = np.array([drain.add_log_message(text)[0].cluster_id
                                    for text in distinct.to_pylist()], np.int64)
    templates_by_id = {c.cluster_id: c.get_template() for c in drain.clusters}
    # Drain can end with two clusters of one template: they are one cluster to a reader.
    names = sorted({templates_by_id[int(i)] for i in cluster_of_distinct}) if len(distinct) else []
    index = {name: i for i, name in enumerate(names)}
    group_of_distinct = np.array([index[templates_by_id[int(i)]] for i in cluster_of_distinct],
                                 np.int64)
    return group_of_distinct[distinct_code] if len(distinct) else np.zeros(0, np.int64), names


def grouping_accuracy(predicted: Sequence, truth: Sequence) -> float:
    """GA: the share of messages whose predicted group is exactly their ground-truth group."""
    predicted = np.unique(np.asarray(predicted, dtype=object).astype(str), return_inverse=True)[1]
    truth = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)[1]
    if len(truth) == 0:
        return 1.0
    # A predicted group is right when it maps onto one truth group and that truth group onto it.
    pairs = np.unique(np.stack([predicted, truth]), axis=1)
    truth_per_pred = np.bincount(pairs[0], minlength=predicted.max() + 1)
    pred_per_truth = np.bincount(pairs[1], minlength=truth.max() + 1)
    correct = (truth_per_pred[predicted] == 1) & (pred_per_truth[truth] == 1)
    return float(correct.mean())


def failure_clusters(results: pa.Table, *, sim_threshold: float = DEFAULT_SIM_THRESHOLD,
                     text_lines: int = DEFAULT_TEXT_LINES) -> pa.Table:
    """Clusters of the failing runs of ``results`` (rows of ``CLUSTER_SCHEMA``), largest first.

    Occurrences are in run order (build, timestamp, arrival); ``cluster_id`` is derived from the
    template, so the same problem keeps its id across refreshes.
    """
    failing = pc.is_in(results["status"], pa.array(list(FAILING)))
    r = runs(results, keep=failing)
    if len(r.key) == 0:
        return CLUSTER_SCHEMA.empty_table()
    # Drain sees the messages in the order they happened, as a streaming miner would.
    chrono = np.lexsort((r.row, r.ts, r.build))
    rows = r.row[chrono]
    messages = failure_messages(results.take(pa.array(rows)), text_lines=text_lines)
    group, templates = group_messages(messages, sim_threshold=sim_threshold)
    key, build, ts = r.key[chrono], r.build[chrono], r.ts[chrono]

    order = np.lexsort((np.arange(len(group)), group))  # stable: run order inside a cluster
    g, k, b, t = group[order], key[order], build[order], ts[order]
    starts = group_starts(g)
    size = np.diff(np.r_[starts, len(g)])
    occurrences = pa.StructArray.from_arrays(
        [r.tests.take(pa.array(k)), pa.array(b, pa.int64())], names=["test", "build"])

    # Distinct tests per cluster, in the order they first failed there.
    pair = g * (r.n_tests + 1) + k
    _, first = np.unique(pair, return_index=True)
    first = np.sort(first)
    tests_per = np.bincount(g[first], minlength=len(starts))
    tests = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(tests_per)], pa.int32()),
                                     r.tests.take(pa.array(k[first])))

    group_ids = g[starts]
    template_col = pa.array([templates[i] for i in group_ids], pa.string())
    table = pa.table({
        "cluster_id": pa.array([hashlib.sha256(templates[i].encode()).hexdigest()[:16]
                                for i in group_ids], pa.string()),
        "template": template_col,
        "count": size.astype(np.int64),
        "first_seen": as_timestamps(np.minimum.reduceat(t, starts)),
        "last_seen": as_timestamps(np.maximum.reduceat(t, starts)),
        "first_build": np.minimum.reduceat(b, starts).astype(np.int64),
        "last_build": np.maximum.reduceat(b, starts).astype(np.int64),
        "tests_affected": tests_per.astype(np.int64),
        "tests": tests,
        "occurrences": pa.ListArray.from_arrays(
            pa.array(np.r_[0, np.cumsum(size)], pa.int32()), occurrences),
    }, schema=CLUSTER_SCHEMA)
    return table.sort_by([("count", "descending"), ("template", "ascending")])
