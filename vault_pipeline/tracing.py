"""OpenTelemetry tracing for the vault's "agent execution" (indexing) and other stages.

One tracer provider per process, set up lazily where the process first needs it (Dagster's
multiprocess executor starts steps in fresh processes, so set-up cannot happen once at
import in the parent). Spans go to ``$VAULT_HOME/traces.jsonl`` by default,
``VAULT_OTEL_EXPORTER=console`` prints them, ``none`` records nothing. Tests add their own
in-memory processor with ``add_span_processor``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter, SpanExportResult

_lock = threading.Lock()
_provider: TracerProvider | None = None


class JsonLinesExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for span in spans:
                handle.write(json.dumps({
                    "name": span.name,
                    "trace_id": f"{span.context.trace_id:032x}",
                    "span_id": f"{span.context.span_id:016x}",
                    "start_ns": span.start_time,
                    "end_ns": span.end_time,
                    "status": span.status.status_code.name,
                    "attributes": dict(span.attributes or {}),
                }) + "\n")
        return SpanExportResult.SUCCESS


def _provider_for_process() -> TracerProvider:
    global _provider
    with _lock:
        if _provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": "vault_pipeline"}))
            exporter = os.environ.get("VAULT_OTEL_EXPORTER", "file")
            if exporter == "console":
                provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            elif exporter == "file":
                home = Path(os.environ.get("VAULT_HOME", ".vault"))
                provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(home / "traces.jsonl")))
            _provider = provider
        return _provider


def tracer(name: str = "vault_pipeline") -> trace.Tracer:
    # Our own provider rather than the global one: the global can be set only once per
    # process, and tests need to observe spans regardless of what else set it.
    return _provider_for_process().get_tracer(name)


def add_span_processor(processor: SpanProcessor) -> None:
    _provider_for_process().add_span_processor(processor)
