"""OpenTelemetry spans, when the optional `otel` extra is installed (`pip install
aftersales[otel]`): one span per inbound task, made a child of the producer's
`traceparent`, with `parse`, `decide`, `commit` and `publish` inside it. Without
OpenTelemetry every function here is a no-op (docs/observability.md).

Spans go where the process's tracer provider sends them: one installed by the deployment
(`opentelemetry-instrument celery -A worker worker`), or, with OTEL_TRACES_EXPORTER set to
`console` or `otlp`, one that `setup()` installs in each worker process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from worker.logging import get_logger

log = get_logger("aftersales.tracing")

try:
    from opentelemetry import trace as otel_trace
    from opentelemetry.propagate import extract
except ImportError:  # the extra is not installed
    otel_trace = None  # type: ignore[assignment]

TRACER = "aftersales"


_tracer: Any = None


def tracer() -> Any:
    """The tracer, once a tracer provider is installed; None before (and without the
    extra): spans nobody receives would still cost about 50 us a message."""
    global _tracer
    if _tracer is None and otel_trace is not None:
        provider = otel_trace.get_tracer_provider()
        if not isinstance(provider, otel_trace.ProxyTracerProvider):
            _tracer = provider.get_tracer(TRACER)
    return _tracer


def span(name: str) -> AbstractContextManager[Any]:
    active = tracer()
    return nullcontext() if active is None else active.start_as_current_span(name)


@contextmanager
def inbound(trace: Mapping[str, str], task_name: str) -> Iterator[None]:
    """Around one inbound task: a consumer span whose parent is the producer's context."""
    active = tracer()
    if active is None or otel_trace is None:
        yield
        return
    parent = extract(dict(trace))  # the global propagator: W3C trace context by default
    kind = otel_trace.SpanKind.CONSUMER
    with active.start_as_current_span(task_name, context=parent, kind=kind):
        yield


def setup() -> None:
    """In a worker process: a tracer provider for OTEL_TRACES_EXPORTER=console|otlp, unless
    the deployment installed one already."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if otel_trace is None or exporter_name not in ("console", "otlp"):
        return
    if not isinstance(otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider):
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        exporter: Any = ConsoleSpanExporter()
        if exporter_name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER set but the SDK or exporter is not installed")
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", TRACER)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    otel_trace.set_tracer_provider(provider)
