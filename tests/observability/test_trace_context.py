"""W3C trace context from the producer to every event it causes: the header's rule at its
edges, the service, OpenTelemetry spans, and a real worker."""

from __future__ import annotations

import pytest

from schemas.events import CloudEvent
from schemas.trace import trace_context, trace_id
from tests.service.fakes import FakeStore
from tests.service.test_service import make_service
from tests.support.factories import T0, cancel_requested, hours, order_placed, paid

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
LONGEST = "x" * 512


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": PARENT}, {"traceparent": PARENT}),
        ({"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"},
         {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}),
        ({"traceparent": PARENT, "tracestate": LONGEST},
         {"traceparent": PARENT, "tracestate": LONGEST}),
        ({"traceparent": PARENT, "tracestate": LONGEST + "x"}, {"traceparent": PARENT}),  # dropped
        ({"traceparent": PARENT, "tracestate": ""}, {"traceparent": PARENT}),
        ({"traceparent": PARENT.upper()}, {}),  # lower-case hex only
        ({"traceparent": "ff" + PARENT[2:]}, {}),  # version ff is invalid
        ({"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}, {}),  # all-zero trace id
        ({"traceparent": f"00-{TRACE}-{'0' * 16}-01"}, {}),  # all-zero parent id
        ({"traceparent": PARENT[:-1]}, {}),  # one character short
        ({"traceparent": PARENT + "0"}, {}),  # one character long
        ({"traceparent": PARENT + "\n"}, {}),  # a final newline (a regex's `$` lets it by)
        ({"traceparent": 42}, {}),
        ({"traceparent": None, "tracestate": "a=b"}, {}),  # a state without a parent
        ({}, {}),
    ],
)  # fmt: skip
def test_trace_context_table(headers, expected):
    assert trace_context(headers) == expected


def test_every_event_of_a_message_carries_its_trace_and_others_none():
    """Given an order paid an hour ago, when the buyer's cancel arrives with a traceparent,
    then both its events carry it; the events of a message without one carry none."""
    store = FakeStore()
    service = make_service(now=T0 + hours(1.5), store=store)
    placed = order_placed(at=T0)
    service.handle_message(placed)
    service.handle_message(paid(placed.order_id, T0 + hours(1)))

    outcome = service.handle_message(
        cancel_requested(placed.order_id, T0 + hours(1.2)), trace={"traceparent": PARENT}
    )

    assert set(outcome.events) == {"order.cancelled", "refund.initiated"}
    bodies = [body for _, body in service.publisher.published if body["kind"] == "event"]
    assert [b["event"]["traceparent"] for b in bodies] == [PARENT, PARENT]
    assert all(CloudEvent.model_validate(b["event"]).traceparent == PARENT for b in bodies)

    other = order_placed(at=T0)
    service.handle_message(other)
    service.handle_message(paid(other.order_id, T0 + hours(1)))
    service.handle_message(cancel_requested(other.order_id, T0 + hours(1.2)))
    untraced = [
        b["event"]
        for _, b in service.publisher.published
        if b["event"]["subject"] == other.order_id
    ]
    assert untraced and all("traceparent" not in event for event in untraced)


def test_spans_parse_decide_commit_publish_are_children_of_the_producers_trace():
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from worker.observability import tracing
    from worker.observability.record import Recorder

    exporter = InMemorySpanExporter()
    provider = otel_trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        otel_trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = make_service(now=T0 + hours(1.5))
    service.observer = Recorder()
    placed = order_placed(at=T0)
    service.handle_message(placed)
    exporter.clear()

    with tracing.inbound({"traceparent": PARENT}, "aftersales.order_event"):
        with tracing.span("parse"):
            message = paid(placed.order_id, T0 + hours(1))
        service.handle_message(message, trace={"traceparent": PARENT})

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"aftersales.order_event", "parse", "decide", "commit", "publish"}
    assert {format(span.context.trace_id, "032x") for span in spans.values()} == {TRACE}
    root = spans["aftersales.order_event"]
    assert format(root.parent.span_id, "016x") == PARENT.split("-")[2]
    assert all(
        spans[name].parent.span_id == root.context.span_id
        for name in ("parse", "decide", "commit", "publish")
    )


@pytest.mark.integration
def test_one_trace_id_in_the_same_on_every_event_out(start_worker, wire_client, event_listener):
    from tests.support.messages import ORDER_EVENT, ago, message, new_id, placed

    start_worker(concurrency=1)  # in order: the cancel is applied, not parked behind the payment
    order = new_id("o")
    wire_client.send(ORDER_EVENT, placed(order, ago(minutes=30), payment_method="prepaid"))
    wire_client.send(ORDER_EVENT, message("order.paid", order, ago(minutes=20)))
    cancel = message("buyer.cancel_requested", order, ago(minutes=10), reason="changed my mind")

    wire_client.send(
        "aftersales.buyer_action", cancel, headers={"traceparent": PARENT, "tracestate": "a=b"}
    )

    events = event_listener.wait_for(lambda e: e["subject"] == order, count=2)
    assert sorted(e["type"] for e in events) == ["order.cancelled", "refund.initiated"]
    assert {trace_id(e["traceparent"]) for e in events} == {TRACE}
    assert {e["tracestate"] for e in events} == {"a=b"}
