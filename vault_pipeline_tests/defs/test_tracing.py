"""Indexing ("agent execution") is traced: one OpenTelemetry span per record batch."""

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vault_pipeline import tracing
from vault_pipeline_tests.fixtures.vault import materialization_metadata


def test_every_index_batch_is_a_span_with_provider_partition_and_counts(vault, monkeypatch):
    exporter = InMemorySpanExporter()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr("vault_pipeline.defs.ingestion.indexing.BATCH", 100)
    vault.write_providers({"traced": {"type": "simulator", "kind": "test_result", "records_per_hour": 250,
                                      "seed": 2, "lookback_hours": 0}})
    result = vault.run("2026-02-01-10:00", "traced")
    assert result.success
    landed = materialization_metadata(result, "raw_landing")["records"]
    spans = [s for s in exporter.get_finished_spans()
             if s.name == "vault.index_batch" and s.attributes["vault.provider"] == "traced"]
    assert len(spans) == -(-landed // 100)
    assert {s.attributes["vault.partition"] for s in spans} == {"2026-02-01-10:00|traced"}
    assert sum(s.attributes["vault.records"] for s in spans) == landed
    assert sum(s.attributes["vault.inserted"] for s in spans) == landed


def test_spans_are_written_to_vault_home_by_default(tmp_path, monkeypatch):
    path = tmp_path / "traces.jsonl"
    exporter = tracing.JsonLinesExporter(path)
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.tracer().start_as_current_span("vault.example") as span:
        span.set_attribute("vault.records", 3)
    lines = [line for line in path.read_text().splitlines() if '"vault.example"' in line]
    assert lines and '"vault.records": 3' in lines[0]
