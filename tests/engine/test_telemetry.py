"""OpenTelemetry (the `otel` extra): the spans and metrics a service's calls give, read from the SDK's
in-memory exporters; and without the API installed, nothing imports it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import EVIDENCE, T0, filing, lose_a_race_once
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from claimstate import AsyncClaimService, ClaimService, Event, TransitionRefused, _telemetry


class Otel:
    """The spans finished and the metrics recorded since the test began."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if name is None or span.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of each point of `metric`."""
        data = self.reader.get_metrics_data()
        return [
            (dict(point.attributes or {}), point)
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]

    def counts(self, metric: str) -> dict[tuple[tuple[str, Any], ...], int]:
        return {tuple(sorted(attributes.items())): point.value for attributes, point in self.points(metric)}


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Providers of the test's own (the global ones can be set only once per process)."""
    found = Otel()
    _telemetry.use(found.tracer_provider, found.meter_provider)
    try:
        yield found
    finally:
        _telemetry.use()
        found.tracer_provider.shutdown()
        found.meter_provider.shutdown()


@pytest.fixture
def service() -> Iterator[ClaimService]:
    with ClaimService(":memory:", clock=lambda: T0 + timedelta(hours=1)) as opened:
        yield opened


def test_a_fire_is_one_span_with_the_transition(otel: Otel, service: ClaimService) -> None:
    claim_id = service.file_claim(filing(), now=T0).claim.id
    service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    assert [span.name for span in otel.spans()] == ["claimstate.file", "claimstate.fire"]
    filed, fired = otel.spans()
    assert dict(fired.attributes or {}) == {
        "claimstate.claim.id": claim_id,
        "claimstate.trigger": "submit_evidence",
        "claimstate.actor.role": "buyer",
        "claimstate.state.from": "awaiting_evidence",
        "claimstate.state.to": "in_mediation",
        "claimstate.retries": 0,
        "claimstate.replayed": False,
    }
    assert fired.status.status_code is StatusCode.UNSET
    assert (filed.attributes or {})["claimstate.claim.id"] == claim_id
    assert (filed.attributes or {})["claimstate.state.to"] == "awaiting_evidence"
    assert "claimstate.state.from" not in (filed.attributes or {})
    assert otel.counts("claimstate.fires") == {
        (("claimstate.outcome", "applied"), ("claimstate.trigger", "file_claim")): 1,
        (("claimstate.outcome", "applied"), ("claimstate.trigger", "submit_evidence")): 1,
    }
    assert sum(point.count for _, point in otel.points("claimstate.fire.duration")) == 2


def test_a_replay_is_counted_as_one(otel: Otel, service: ClaimService) -> None:
    claim_id = service.file_claim(filing(), now=T0).claim.id
    for _ in range(2):
        service.fire(claim_id, "withdraw", "buyer:alice", idempotency_key="k-1", now=T0)
    assert [(s.attributes or {})["claimstate.replayed"] for s in otel.spans("claimstate.fire")] == [False, True]
    counts = otel.counts("claimstate.fires")
    assert counts[("claimstate.outcome", "replayed"), ("claimstate.trigger", "withdraw")] == 1


def test_a_refusal_is_an_error_span_with_its_codes_and_counted_by_code(otel: Otel, service: ClaimService) -> None:
    claim_id = service.file_claim(filing(), now=T0).claim.id
    with pytest.raises(TransitionRefused) as refused:
        service.fire(claim_id, "decide_full_refund", "buyer:alice", {"rationale": "mine"}, now=T0)
    codes = tuple(reason.code for reason in refused.value.reasons)
    (span,) = otel.spans("claimstate.fire")
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "TransitionRefused"
    attributes = dict(span.attributes or {})
    assert attributes["claimstate.refusal.codes"] == codes
    assert attributes["error.type"] == "TransitionRefused"
    assert attributes["claimstate.state.from"] == "awaiting_evidence"
    assert attributes["claimstate.actor.role"] == "buyer"
    assert otel.counts("claimstate.refusals") == {
        (("claimstate.refusal.code", code), ("claimstate.trigger", "decide_full_refund")): 1 for code in codes
    }
    assert (
        otel.counts("claimstate.fires")[("claimstate.outcome", "refused"), ("claimstate.trigger", "decide_full_refund")]
        == 1
    )


def test_a_tick_is_a_span_with_one_child_per_deadline_and_its_lag(otel: Otel, service: ClaimService) -> None:
    claim_id = service.file_claim(filing(), now=T0).claim.id
    due = service.get(claim_id).deadline
    assert due is not None
    late = due.due + timedelta(minutes=5)
    (fired,) = service.tick(late)
    (tick,) = otel.spans("claimstate.tick")
    (deadline,) = otel.spans("claimstate.deadline")
    assert deadline.parent is not None and deadline.parent.span_id == tick.context.span_id
    assert (tick.attributes or {})["claimstate.deadlines.fired"] == 1
    assert dict(deadline.attributes or {}) == {
        "claimstate.claim.id": claim_id,
        "claimstate.trigger": fired.trigger,
        "claimstate.actor.role": "system",
        "claimstate.retries": 0,
        "claimstate.fired": True,
        "claimstate.state.from": "awaiting_evidence",
        "claimstate.state.to": fired.dest,
        "claimstate.tick.lag": 300.0,
    }
    ((attributes, lag),) = otel.points("claimstate.tick.lag")
    assert attributes == {"claimstate.trigger": fired.trigger} and (lag.count, lag.sum) == (1, 300.0)
    assert (
        otel.counts("claimstate.fires")[("claimstate.outcome", "applied"), ("claimstate.trigger", fired.trigger)] == 1
    )


def test_a_retry_is_counted_and_set_on_the_span(
    otel: Otel, service: ClaimService, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_id = service.file_claim(filing(), now=T0).claim.id
    lose_a_race_once(monkeypatch, service)
    service.fire(claim_id, "withdraw", "buyer:alice", now=T0)
    (span,) = otel.spans("claimstate.fire")
    assert (span.attributes or {})["claimstate.retries"] == 1
    assert otel.counts("claimstate.retries") == {(): 1}


def test_each_event_consumed_is_a_span_around_the_handler_and_its_lag_recorded(
    otel: Otel, service: ClaimService
) -> None:
    claim_id = service.file_claim(filing(), now=T0).claim.id
    service.fire(claim_id, "withdraw", "buyer:alice", now=T0)
    stop, seen = threading.Event(), list[tuple[Event, int]]()

    def handler(event: Event) -> None:
        seen.append((event, trace.get_current_span().get_span_context().span_id))
        if len(seen) == 2:
            stop.set()

    assert service.consume("payments", handler, stop=stop, poll=0.01) == 2
    spans = otel.spans("claimstate.consume")
    assert [span.context.span_id for span in spans] == [span_id for _, span_id in seen]
    assert [(s.attributes or {})["claimstate.trigger"] for s in spans] == ["file_claim", "withdraw"]
    assert dict(spans[1].attributes or {}) == {
        "claimstate.consumer": "payments",
        "claimstate.claim.id": claim_id,
        "claimstate.event.seq": 2,
        "claimstate.trigger": "withdraw",
        "claimstate.state.from": "awaiting_evidence",
        "claimstate.state.to": "withdrawn",
        "claimstate.lane": seen[1][0].lane,
    }
    # the clock says T0 + 1 h at delivery; an event entered the feed at its `entered_at` (else its `at`)
    expected = [(T0 + timedelta(hours=1) - (e.entered_at or e.at)).total_seconds() for e, _ in seen]
    ((attributes, lag),) = otel.points("claimstate.consumer.lag")
    assert attributes == {"claimstate.consumer": "payments"}
    assert (lag.count, lag.sum) == (2, sum(expected))


def test_a_failing_handler_s_span_is_an_error(otel: Otel, service: ClaimService) -> None:
    service.file_claim(filing(), now=T0)
    stop = threading.Event()

    def handler(event: Event) -> None:
        stop.set()
        raise ValueError("no")

    service.consume("payments", handler, stop=stop, poll=0.01)
    (span,) = otel.spans("claimstate.consume")
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "ValueError"
    assert [event.name for event in span.events] == ["exception"]


def test_an_async_call_s_span_is_a_child_of_the_caller_s(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("test")

    async def main() -> None:
        async with AsyncClaimService(":memory:", threads=2) as service:
            with tracer.start_as_current_span("request"):
                await service.file_claim(filing(), now=T0)

    asyncio.run(main())
    (request,) = otel.spans("request")
    (filed,) = otel.spans("claimstate.file")
    assert filed.parent is not None and filed.parent.span_id == request.context.span_id


WORK = """
import sys, threading
from datetime import datetime, timedelta, UTC
import claimstate
from claimstate import ClaimService, TransitionRefused
assert "opentelemetry" not in sys.modules, "import claimstate imported it"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
with ClaimService(":memory:") as service:
    claim = service.file_claim({"order_id": "o-1", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD",
                                "amount": "25.00", "reason": "broken", "resolution": "full_refund"}, now=T0).claim
    try:
        service.fire(claim.id, "decide_full_refund", "buyer:alice", {"rationale": "x"}, now=T0)
    except TransitionRefused:
        pass
    assert service.tick(T0 + timedelta(days=30))
    stop = threading.Event()
    service.consume("c", lambda event: stop.set(), stop=stop, poll=0.01)
"""
BLOCKER = """
import importlib.abc, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
"""


@pytest.mark.slow
def test_without_the_api_installed_nothing_imports_it() -> None:
    """A child where `opentelemetry` cannot be imported (as if the extra were not installed) files, fires,
    is refused, ticks and consumes: nothing tries to import it but claimstate's one lazy attempt."""
    check = "\nassert 'opentelemetry' not in sys.modules\nprint('clean')"
    run = subprocess.run([sys.executable, "-c", BLOCKER + WORK + check], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "clean"


@pytest.mark.slow
def test_with_the_api_installed_importing_claimstate_does_not_import_it() -> None:
    """Only the first traced call imports it (and spans then go through the global providers: none set,
    the API's own no-op ones)."""
    code = WORK + "\nassert 'opentelemetry.trace' in sys.modules\nprint('traced')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "traced"


@pytest.mark.slow
def test_the_global_providers_are_used_when_the_application_sets_them() -> None:
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from claimstate import ClaimService
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
with ClaimService(":memory:") as service:  # the provider set after claimstate's first use of the API
    service.tick()
    trace.set_tracer_provider(provider)
    service.file_claim({"order_id": "o-1", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD",
                        "amount": "25.00", "reason": "broken", "resolution": "full_refund"})
print([(span.name, span.instrumentation_scope.name) for span in exporter.get_finished_spans()])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[('claimstate.file', 'claimstate')]"


@pytest.mark.slow
def test_with_the_api_installed_and_no_provider_set_a_call_makes_no_span() -> None:
    """No span is started while nothing could keep it (each costs a fire microseconds); the first call after
    the application sets a meter provider is measured."""
    code = """
from opentelemetry import trace
from opentelemetry.metrics import set_meter_provider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from claimstate import ClaimService, _telemetry
started = []
with ClaimService(":memory:") as service:
    otel = _telemetry._listening() or _telemetry._otel
    real = otel.tracer.start_as_current_span
    otel.tracer.start_as_current_span = lambda *a, **k: started.append(a[0]) or real(*a, **k)
    filing = {"order_id": "o-1", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD",
              "amount": "25.00", "reason": "broken", "resolution": "full_refund"}
    claim = service.file_claim(filing).claim
    print(started, otel.listening())
    reader = InMemoryMetricReader()
    set_meter_provider(MeterProvider(metric_readers=[reader]))
    service.fire(claim.id, "withdraw", "buyer:alice")
    fires = [m for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics for m in s.metrics
             if m.name == "claimstate.fires"]
    print(started, otel.listening(), len(fires))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[] False", "['claimstate.fire'] True 1"]
