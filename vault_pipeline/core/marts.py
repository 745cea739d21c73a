"""The analytics marts as pure functions: fact rows of one hour x provider in, mart rows out.

No Dagster and no I/O: Arrow tables in, Arrow tables out, so the arithmetic is tested against an
independent pandas/numpy computation and the same code runs in the asset and the benchmark.

- ``provider_metrics``: seed 002's ProviderMetrics per LLM provider (``llm_provider``) of a
  generation-event hour: total / successful / failed requests, avg and p50 / p95 / p99 latency,
  total tokens and cost. Percentiles are **exact**: numpy's default ``linear`` method over the
  non-null latencies of the group (the same definition as SQL ``percentile_cont``), not
  DataFusion's t-digest ``approx_percentile_cont``.
- ``technique_effectiveness``: per technique x LLM provider. Generation events contribute each
  entry of ``techniques_applied`` (uses, successes, success rate, avg latency); jailbreak tests
  contribute ``test_type`` as the technique and ``target_provider`` as the LLM provider, with the
  attack success rate (mean ``asr_rate``) and their iterations / successful mutations.
- ``provider_dimension``: seed 002's dim_providers from vault.yaml and the observed rows.

Conventions (docs/architecture.md, "Marts"): a request is successful when ``success`` is true;
``failed = total - successful`` (a null ``success`` is not a success). Latency statistics skip
null latencies and are null for a group without any. Tokens are ``total_tokens``, falling back to
``tokens_used`` where it is null; null tokens and costs count as 0. A null ``llm_provider`` is a
group of its own (provider_id null). A technique listed twice in one request is one use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PERCENTILES = (("p50_latency_ms", 0.50), ("p95_latency_ms", 0.95), ("p99_latency_ms", 0.99))
TS = pa.timestamp("us", tz="UTC")

PROVIDER_METRICS_SCHEMA = pa.schema([
    ("date", pa.string()),
    ("hour", pa.string()),
    ("hour_partition", TS),
    ("provider", pa.string()),  # the vault provider whose records these are
    ("provider_id", pa.string()),  # the LLM provider (ProviderMetrics.provider_id)
    ("total_requests", pa.int64()),
    ("successful_requests", pa.int64()),
    ("failed_requests", pa.int64()),
    ("avg_latency_ms", pa.float64()),
    ("p50_latency_ms", pa.float64()),
    ("p95_latency_ms", pa.float64()),
    ("p99_latency_ms", pa.float64()),
    ("total_tokens", pa.int64()),
    ("total_cost_usd", pa.float64()),
])

TECHNIQUE_SCHEMA = pa.schema([
    ("date", pa.string()),
    ("hour", pa.string()),
    ("hour_partition", TS),
    ("provider", pa.string()),
    ("source", pa.string()),  # generation_event | jailbreak_test
    ("technique", pa.string()),
    ("llm_provider", pa.string()),
    ("uses", pa.int64()),
    ("successes", pa.int64()),
    ("success_rate", pa.float64()),
    ("avg_latency_ms", pa.float64()),
    ("attack_success_rate", pa.float64()),
    ("iterations", pa.int64()),
    ("successful_mutations", pa.int64()),
])

DIM_PROVIDERS_SCHEMA = pa.schema([
    ("provider_id", pa.string()),
    ("source", pa.string()),  # vault (a provider of vault.yaml) | llm (an LLM vendor seen in the rows)
    ("provider_name", pa.string()),
    ("kind", pa.string()),
    ("base_url", pa.string()),
    ("models", pa.list_(pa.string())),
    ("enabled", pa.bool_()),
    ("created_at", TS),
    ("updated_at", TS),
])

#: Columns each mart reads from its fact table (those the table has; the others count as null).
GENERATION_COLUMNS = ("llm_provider", "model", "latency_ms", "success", "total_tokens", "tokens_used", "cost_usd",
                      "techniques_applied")
JAILBREAK_COLUMNS = ("test_type", "target_provider", "target_model", "iterations", "successful_mutations", "asr_rate")
_TYPES = {"llm_provider": pa.string(), "model": pa.string(), "latency_ms": pa.float64(), "success": pa.bool_(),
          "total_tokens": pa.int64(), "tokens_used": pa.int64(), "cost_usd": pa.float64(),
          "techniques_applied": pa.list_(pa.string()), "test_type": pa.string(), "target_provider": pa.string(),
          "target_model": pa.string(), "iterations": pa.int64(), "successful_mutations": pa.int64(),
          "asr_rate": pa.float64()}


def hour_start(date: str, hour: str) -> datetime:
    return datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)


def _column(rows: pa.Table, name: str) -> pa.Array:
    """``name`` as one array of its mart type; all nulls when the table lacks it (an older schema)."""
    if name not in rows.column_names:
        return pa.nulls(rows.num_rows, _TYPES[name])
    column = rows.column(name)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column.cast(_TYPES[name])


def _groups(*keys: pa.Array) -> tuple[np.ndarray, list[tuple]]:
    """(group code per row, key tuple per code), codes numbered in sorted key order (nulls last)."""
    n = len(keys[0]) if keys else 0
    if n == 0:
        return np.zeros(0, np.int64), []
    composite = np.zeros(n, np.int64)
    dictionaries = []
    for key in keys:
        encoded = pc.dictionary_encode(key, null_encoding="encode")
        dictionary = encoded.dictionary
        order = pc.array_sort_indices(dictionary, order="ascending", null_placement="at_end").to_numpy()
        rank = np.empty(len(dictionary), np.int64)
        rank[order] = np.arange(len(dictionary))
        composite = composite * len(dictionary) + rank[encoded.indices.to_numpy(zero_copy_only=False)]
        dictionaries.append(dictionary.take(pa.array(order)).to_pylist())
    distinct, codes = np.unique(composite, return_inverse=True)
    tuples = []
    for value in distinct.tolist():
        parts = []
        for dictionary in reversed(dictionaries):
            value, r = divmod(value, len(dictionary))
            parts.append(dictionary[r])
        tuples.append(tuple(reversed(parts)))
    return codes.astype(np.int64), tuples


def _int_sums(codes: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    out = np.zeros(groups, np.int64)
    np.add.at(out, codes, values)
    return out


def _float_column(values: np.ndarray, present: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), mask=~present)


def exact_percentiles(codes: np.ndarray, values: np.ndarray, groups: int,
                      quantiles: Iterable[float]) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """(count of values per group, {q: exact percentile per group}); NaN where a group has none.

    ``values`` hold no NaN. One lexsort by (group, value), then linear interpolation between the
    order statistics at ``q * (n - 1)``, exactly what ``np.percentile(v, 100 * q)`` returns."""
    counts = np.bincount(codes, minlength=groups)
    ordered = values[np.lexsort((values, codes))]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if groups else np.zeros(0, np.int64)
    result = {}
    for q in quantiles:
        position = q * np.maximum(counts - 1, 0)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, np.maximum(counts - 1, 0))
        fraction = position - low
        out = np.full(groups, np.nan)
        has = counts > 0
        lo_v = ordered[(starts + low)[has]]
        hi_v = ordered[(starts + high)[has]]
        t = fraction[has]
        diff = hi_v - lo_v
        # numpy's own lerp: from the lower order statistic below t = 0.5, from the upper above.
        out[has] = np.where(t >= 0.5, hi_v - diff * (1 - t), lo_v + diff * t)
        result[q] = out
    return counts, result


def provider_metrics(rows: pa.Table, *, date: str, hour: str, provider: str) -> pa.Table:
    """ProviderMetrics per LLM provider of one hour of ``provider``'s generation events."""
    n = rows.num_rows
    if n == 0:
        return PROVIDER_METRICS_SCHEMA.empty_table()
    codes, keys = _groups(_column(rows, "llm_provider"))
    groups = len(keys)
    total = np.bincount(codes, minlength=groups).astype(np.int64)
    success = _column(rows, "success").fill_null(False).to_numpy(zero_copy_only=False)
    successful = np.bincount(codes, weights=success, minlength=groups).astype(np.int64)
    latency = _column(rows, "latency_ms").to_numpy(zero_copy_only=False).astype(np.float64)
    valid = ~np.isnan(latency)
    latency_counts, percentiles = exact_percentiles(codes[valid], latency[valid], groups, [q for _, q in PERCENTILES])
    sums = np.bincount(codes[valid], weights=latency[valid], minlength=groups)
    has_latency = latency_counts > 0
    average = np.divide(sums, latency_counts, out=np.full(groups, np.nan), where=has_latency)
    tokens = pc.coalesce(_column(rows, "total_tokens"), _column(rows, "tokens_used"), pa.scalar(0, pa.int64()))
    cost = _column(rows, "cost_usd").fill_null(0.0).to_numpy(zero_copy_only=False)
    start = hour_start(date, hour)
    columns = {
        "date": pa.array([date] * groups, pa.string()),
        "hour": pa.array([hour] * groups, pa.string()),
        "hour_partition": pa.array([start] * groups, TS),
        "provider": pa.array([provider] * groups, pa.string()),
        "provider_id": pa.array([k[0] for k in keys], pa.string()),
        "total_requests": pa.array(total),
        "successful_requests": pa.array(successful),
        "failed_requests": pa.array(total - successful),
        "avg_latency_ms": _float_column(average, has_latency),
        **{name: _float_column(percentiles[q], has_latency) for name, q in PERCENTILES},
        "total_tokens": pa.array(_int_sums(codes, tokens.to_numpy(zero_copy_only=False), groups)),
        "total_cost_usd": pa.array(np.bincount(codes, weights=cost, minlength=groups)),
    }
    return pa.table(columns, schema=PROVIDER_METRICS_SCHEMA)


def technique_effectiveness(rows: pa.Table, *, kind: str, date: str, hour: str, provider: str) -> pa.Table:
    """Technique x LLM provider rows of one hour: from ``techniques_applied`` of generation
    events, or from jailbreak tests (``test_type`` as the technique); other kinds give none."""
    if rows.num_rows == 0 or kind not in ("generation_event", "jailbreak_test"):
        return TECHNIQUE_SCHEMA.empty_table()
    if kind == "generation_event":
        techniques = _column(rows, "techniques_applied")
        parents = pc.list_parent_indices(techniques)
        exploded = pa.table({"__row": parents, "technique": pc.list_flatten(techniques)})
        exploded = exploded.filter(pc.is_valid(exploded.column("technique")))
        exploded = exploded.group_by(["__row", "technique"], use_threads=False).aggregate([])  # one use per request
        if exploded.num_rows == 0:
            return TECHNIQUE_SCHEMA.empty_table()
        at = exploded.column("__row").combine_chunks()
        technique = exploded.column("technique").combine_chunks()
        llm = _column(rows, "llm_provider").take(at)
        success = _column(rows, "success").take(at).fill_null(False).to_numpy(zero_copy_only=False)
        latency = _column(rows, "latency_ms").take(at).to_numpy(zero_copy_only=False).astype(np.float64)
        asr = iterations = mutations = None
    else:
        technique, llm = _column(rows, "test_type"), _column(rows, "target_provider")
        mutations_arr = _column(rows, "successful_mutations")
        success = pc.fill_null(pc.greater(mutations_arr, 0), False).to_numpy(zero_copy_only=False)
        latency = None
        asr = _column(rows, "asr_rate").to_numpy(zero_copy_only=False).astype(np.float64)
        iterations = _column(rows, "iterations").fill_null(0).to_numpy(zero_copy_only=False)
        mutations = mutations_arr.fill_null(0).to_numpy(zero_copy_only=False)
    codes, keys = _groups(technique, llm)
    groups = len(keys)
    uses = np.bincount(codes, minlength=groups).astype(np.int64)
    successes = np.bincount(codes, weights=success, minlength=groups).astype(np.int64)

    def mean(values: np.ndarray | None) -> pa.Array:
        if values is None:
            return pa.nulls(groups, pa.float64())
        valid = ~np.isnan(values)
        count = np.bincount(codes[valid], minlength=groups)
        total = np.bincount(codes[valid], weights=values[valid], minlength=groups)
        return _float_column(np.divide(total, count, out=np.full(groups, np.nan), where=count > 0), count > 0)

    def int_sum(values: np.ndarray | None) -> pa.Array:
        return pa.nulls(groups, pa.int64()) if values is None else pa.array(_int_sums(codes, values, groups))

    start = hour_start(date, hour)
    columns = {
        "date": pa.array([date] * groups, pa.string()),
        "hour": pa.array([hour] * groups, pa.string()),
        "hour_partition": pa.array([start] * groups, TS),
        "provider": pa.array([provider] * groups, pa.string()),
        "source": pa.array([kind] * groups, pa.string()),
        "technique": pa.array([k[0] for k in keys], pa.string()),
        "llm_provider": pa.array([k[1] for k in keys], pa.string()),
        "uses": pa.array(uses),
        "successes": pa.array(successes),
        "success_rate": pa.array(successes / uses, pa.float64()),
        "avg_latency_ms": mean(latency),
        "attack_success_rate": mean(asr),
        "iterations": int_sum(iterations),
        "successful_mutations": int_sum(mutations),
    }
    return pa.table(columns, schema=TECHNIQUE_SCHEMA)


# -- dim_providers -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfiguredProvider:
    provider_id: str
    kind: str
    base_url: str | None
    enabled: bool = True


def strip_credentials(url: str | None) -> str | None:
    """``url`` without user:password@, query string or fragment (where API tokens ride)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def models_seen(rows: pa.Table, key: str, model: str) -> dict[str | None, set[str]]:
    """{value of ``key``: models of its rows} (null models skipped)."""
    if rows.num_rows == 0:
        return {}
    pairs = pa.table({"k": _column(rows, key), "m": _column(rows, model)}).group_by(["k", "m"], use_threads=False).aggregate([])
    seen: dict[str | None, set[str]] = {}
    for k, m in zip(pairs.column("k").to_pylist(), pairs.column("m").to_pylist(), strict=True):
        models = seen.setdefault(k, set())
        if m is not None:
            models.add(m)
    return seen


def provider_dimension(existing: pa.Table | None, configured: Iterable[ConfiguredProvider],
                       vault_models: Mapping[str, set[str]], llm_models: Mapping[str | None, set[str]],
                       now: datetime) -> pa.Table:
    """dim_providers after one observation: every configured provider (and one that left
    vault.yaml, now disabled), every LLM provider ever seen; ``models`` accumulate; ``created_at``
    stays from the first time a row was seen and ``updated_at`` moves only when the row changes."""
    rows: dict[tuple[str, str], dict] = {}
    if existing is not None and existing.num_rows:
        for row in existing.select(DIM_PROVIDERS_SCHEMA.names).to_pylist():
            rows[(row["source"], row["provider_id"])] = row
    wanted: dict[tuple[str, str], dict] = {}
    listed = {p.provider_id: p for p in configured}
    for key, row in rows.items():  # what stays as it was unless observed again
        wanted[key] = {**row, "models": list(row["models"] or [])}
        if key[0] == "vault" and key[1] not in listed:
            wanted[key]["enabled"] = False
    for p in listed.values():
        old = wanted.get(("vault", p.provider_id), {"models": []})
        wanted[("vault", p.provider_id)] = {
            **old, "provider_id": p.provider_id, "source": "vault", "provider_name": p.provider_id, "kind": p.kind,
            "base_url": strip_credentials(p.base_url), "enabled": bool(p.enabled),
            "models": sorted(set(old["models"]) | vault_models.get(p.provider_id, set())),
        }
    for llm, models in llm_models.items():
        if llm is None:
            continue
        old = wanted.get(("llm", llm), {"models": []})
        wanted[("llm", llm)] = {**old, "provider_id": llm, "source": "llm", "provider_name": llm, "kind": None,
                                "base_url": old.get("base_url"), "enabled": True,
                                "models": sorted(set(old["models"]) | models)}
    out = []
    fields = [n for n in DIM_PROVIDERS_SCHEMA.names if n not in ("created_at", "updated_at")]
    for key in sorted(wanted):
        row = wanted[key]
        before = rows.get(key)
        if before is None:
            row["created_at"] = row["updated_at"] = now
        elif any(_norm(before[f]) != _norm(row[f]) for f in fields):
            row["updated_at"] = now
        out.append({name: row.get(name) for name in DIM_PROVIDERS_SCHEMA.names})
    return pa.Table.from_pylist(out, schema=DIM_PROVIDERS_SCHEMA)


def _norm(value: object) -> object:
    return sorted(value) if isinstance(value, list) else value
