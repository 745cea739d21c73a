"""Schema evolution of a fact table: new nullable columns are merged in, int64 widens to float64."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from vault_pipeline.storage.lake import DeltaLake, LakeError

OLD = pa.schema([("log_id", pa.string()), ("latency_ms", pa.int64()), ("model", pa.string()),
                 ("date", pa.string()), ("hour", pa.string())])
NEW = pa.schema([("log_id", pa.string()), ("latency_ms", pa.float64()), ("model", pa.string()),
                 ("date", pa.string()), ("hour", pa.string()), ("techniques_applied", pa.list_(pa.string())),
                 ("tokens_used", pa.int64())])


@pytest.fixture
def lake(tmp_path: Path) -> DeltaLake:
    return DeltaLake(str(tmp_path / "lake"))


def _old(ids, hour="05") -> pa.Table:
    return pa.Table.from_pydict({"log_id": [f"k{i}" for i in ids], "latency_ms": [100 + i for i in ids],
                                 "model": ["m"] * len(ids), "date": ["2026-01-01"] * len(ids), "hour": [hour] * len(ids)},
                                schema=OLD)


def _new(ids, hour="06") -> pa.Table:
    return pa.Table.from_pydict({"log_id": [f"k{i}" for i in ids], "latency_ms": [0.5 + i for i in ids],
                                 "model": ["n"] * len(ids), "date": ["2026-01-01"] * len(ids), "hour": [hour] * len(ids),
                                 "techniques_applied": [["role_play", f"t{i}"] for i in ids],
                                 "tokens_used": list(ids)}, schema=NEW)


def _load(lake: DeltaLake, rows: pa.Table, hour: str):
    return lake.merge_batches("facts", rows.to_batches(), NEW, partitions=[("2026-01-01", hour)])


def test_an_old_table_gains_the_new_columns_and_widens_latency(lake):
    lake.merge("facts", _old(range(3)))
    stats = _load(lake, _new(range(10, 14)), "06")
    assert stats.inserted == 4
    table = lake.read("facts", order_by=["log_id"])
    assert table.schema.field("latency_ms").type == pa.float64()
    assert table.schema.field("techniques_applied").type.value_type == pa.string()
    rows = {r["log_id"]: r for r in table.to_pylist()}
    assert [rows[f"k{i}"]["latency_ms"] for i in range(3)] == [100.0, 101.0, 102.0]
    assert all(rows[f"k{i}"]["techniques_applied"] is None and rows[f"k{i}"]["tokens_used"] is None for i in range(3))
    assert rows["k11"]["latency_ms"] == 11.5 and rows["k11"]["techniques_applied"] == ["role_play", "t11"]
    assert rows["k11"]["tokens_used"] == 11
    # idempotent afterwards: the same load adds nothing and no version
    version = lake.version("facts")
    assert _load(lake, _new(range(10, 14)), "06").inserted == 0
    assert lake.version("facts") == version
    # the older hour can still be re-loaded (its keys are found, nothing duplicates)
    assert _load(lake, _new(range(3), hour="05"), "05").inserted == 0
    assert lake.count("facts") == 7


def test_only_new_columns_is_a_metadata_change_not_a_rewrite(lake):
    old_float = pa.schema([f if f.name != "latency_ms" else pa.field("latency_ms", pa.float64()) for f in OLD])
    lake.merge("facts", _old(range(3)).cast(old_float))
    version = lake.version("facts")
    _load(lake, _new(range(3)), "06")
    assert lake.version("facts") == version + 2  # add columns, then the append
    assert lake.read("facts", columns=["tokens_used"]).column(0).null_count == 3


def test_the_old_columns_survive_a_widening_of_an_empty_table(lake):
    lake._create("facts", OLD)
    _load(lake, _new(range(2)), "06")
    table = lake.read("facts")
    assert table.schema.field("latency_ms").type == pa.float64() and table.num_rows == 2


def test_merge_of_rows_still_refuses_columns_the_table_lacks_unless_asked(lake):
    lake.merge("facts", _old(range(3)))
    with pytest.raises(LakeError, match="unexpected columns"):
        lake.merge("facts", _new(range(5, 7), hour="05").cast(NEW))
    assert lake.merge("facts", _new(range(5, 7)), evolve=True).inserted == 2


def test_a_narrowing_or_other_type_change_is_still_an_error(lake):
    lake.merge("facts", _new(range(3)), evolve=True)
    wrong = pa.schema([f if f.name != "tokens_used" else pa.field("tokens_used", pa.string()) for f in NEW])
    rows = _new(range(5, 7)).cast(pa.schema([f if f.name != "tokens_used" else pa.field("tokens_used", pa.string()) for f in NEW]))
    rows = rows.set_column(rows.schema.get_field_index("tokens_used"), "tokens_used", pa.array(["many", "x"]))
    with pytest.raises(LakeError, match="facts"):
        lake.merge_batches("facts", rows.to_batches(), wrong, partitions=[("2026-01-01", "06")])
