"""What claimstate tells an operator: its loggers, and spans and metrics when OpenTelemetry's API is installed.

Loggers (no handler but a NullHandler on ``claimstate``: the application configures logging):
``claimstate.service`` (a refused transition, DEBUG), ``claimstate.store`` (a write run again after a lost
race, INFO; retries exhausted and storage faults, WARNING) and ``claimstate.events`` (the consume loop's
failures, in `_feed.consumer`). The
``transitions`` library logs two INFO lines per transition; its logger is set to WARNING as claimstate is
imported, unless the application set a level on it first (see docs/guides/observability.md).

OpenTelemetry (the ``claimstate[otel]`` extra, ``opentelemetry-api`` alone) is imported on the first traced
call, never before and never at all when it is not installed: then every hook below is one check of a
module-level flag. Spans and instruments come from the global providers the application set (claimstate
configures none); `use` gives others (the tests' in-memory ones) and forgets the cached instruments.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

from claimstate._errors import TransitionRefused

if TYPE_CHECKING:
    from claimstate._claim import TransitionRecord
    from claimstate._engine import Fired
    from claimstate._feed import Event

logging.getLogger("claimstate").addHandler(logging.NullHandler())  # none of Python's last-resort stderr lines
service_log = logging.getLogger("claimstate.service")
store_log = logging.getLogger("claimstate.store")

_transitions_log = logging.getLogger("transitions")
if _transitions_log.level == logging.NOTSET:  # the application's own setting, made before, wins
    _transitions_log.setLevel(logging.WARNING)  # its per-transition INFO lines would flood a service's logs

F = TypeVar("F", bound=Callable[..., Any])
NAME = "claimstate"  # the tracer's and the meter's name (the instrumentation scope)


class _Otel:
    """The tracer and the instruments, made once OpenTelemetry's API is imported."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        from opentelemetry import metrics, trace  # noqa: PLC0415  (optional: only when installed, on first use)
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

        version = _version()
        self.trace = trace
        self.status, self.error = Status, StatusCode.ERROR
        self.tracer = trace.get_tracer(NAME, version, tracer_provider=tracer_provider)
        meter = metrics.get_meter(NAME, version, meter_provider=meter_provider)
        self.metrics_state = sys.modules.get("opentelemetry.metrics._internal")  # where the global provider is
        self.given = tracer_provider is not None or meter_provider is not None
        self.fires = meter.create_counter(
            "claimstate.fires", unit="{fire}", description="Triggers fired (filings and deadlines too), by outcome"
        )
        self.refusals = meter.create_counter(
            "claimstate.refusals", unit="{refusal}", description="Reasons transitions were refused, by code"
        )
        self.retries = meter.create_counter(
            "claimstate.retries", unit="{retry}", description="Writes run again after losing a race to another writer"
        )
        self.duration = meter.create_histogram(
            "claimstate.fire.duration", unit="s", description="How long a file, fire or deadline call took"
        )
        self.tick_lag = meter.create_histogram(
            "claimstate.tick.lag", unit="s", description="How late a deadline fired: the tick's time less its due time"
        )
        self.consumer_lag = meter.create_histogram(
            "claimstate.consumer.lag",
            unit="s",
            description="How long an event waited in the feed before it was delivered to a consumer",
        )

    def listening(self) -> bool:
        """Whether a provider may keep what is recorded: one was given, or the application set a global one.
        With the API installed and no provider set, a span and its measurements would go nowhere, and a call
        skips them (they cost a fire several microseconds). A provider set later is listened to from its
        next call on (the tracer and instruments made before forward to it). The API's own getters read the
        environment on each call while none is set, so its globals are read directly; were they renamed, a
        call would always trace, as before."""
        if self.given:
            return True
        self.given = (
            getattr(self.trace, "_TRACER_PROVIDER", self) is not None
            or getattr(self.metrics_state, "_METER_PROVIDER", self) is not None
        )
        return self.given

    def call(self, name: str, attributes: dict[str, Any], run: Callable[[], Any], done: _Done) -> Any:
        """`run()` inside a span `name`, recording the call's outcome with `done(span, result_or_error)`."""
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                result = run()
            except BaseException as error:
                outcome = self.failed(span, error)
                done(span, None, error, outcome, time.perf_counter() - started)
                raise
            done(span, result, None, "applied", time.perf_counter() - started)
            return result

    def failed(self, span: Any, error: BaseException) -> str:
        """Mark `span` failed by `error` (status ERROR with the error's class); the outcome it counts as."""
        kind = type(error).__name__
        span.set_attribute("error.type", kind)
        span.set_status(self.status(self.error, kind))
        if isinstance(error, TransitionRefused):
            codes = [reason.code for reason in error.reasons]
            span.set_attribute("claimstate.refusal.codes", codes)
            if error.state is not None:
                span.set_attribute("claimstate.state.from", error.state)
            for code in codes:
                self.refusals.add(1, {"claimstate.trigger": error.trigger, "claimstate.refusal.code": code})
            return "refused"
        span.record_exception(error)
        return "failed"


_Done = Callable[[Any, Any, "BaseException | None", str, float], None]

_otel: _Otel | None = None
_loaded = False  # whether `_otel` was decided (made, or None: the API is not installed)
_loading = threading.Lock()


def _load() -> _Otel | None:
    global _otel, _loaded  # noqa: PLW0603  (the module's one switch, decided once)
    with _loading:
        if not _loaded:
            try:
                _otel = _Otel()
            except ImportError:
                _otel = None
            _loaded = True
    return _otel


def _listening() -> _Otel | None:
    """The tracer and instruments, if OpenTelemetry's API is installed and a provider listens."""
    otel = _otel if _loaded else _load()
    return otel if otel is not None and otel.listening() else None


def use(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Trace and measure through these providers from now on (None: the global ones), or, with neither given,
    decide again on the next call (the cached tracer and instruments forgotten): for tests."""
    global _otel, _loaded
    with _loading:
        if tracer_provider is None and meter_provider is None:
            _otel, _loaded = None, False
        else:
            _otel, _loaded = _Otel(tracer_provider, meter_provider), True


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415  (~30 ms: only with the API)

    try:
        return version("claimstate")
    except PackageNotFoundError:  # pragma: no cover  (run from a source tree not installed)
        return "0"


# --- the service's calls --------------------------------------------------------------------------------


def _role(actor: object) -> str | None:
    """The role of an actor as given to a call (an `Actor` or ``role:id`` text), without checking it."""
    role = getattr(actor, "role", None)
    if isinstance(role, str):
        return role
    return actor.partition(":")[0] if isinstance(actor, str) else None


def _log_refused(refused: TransitionRefused, claim_id: object, trigger: object, actor: object) -> None:
    if service_log.isEnabledFor(logging.DEBUG):
        codes = [reason.code for reason in refused.reasons]
        claim_id = refused.claim_id or claim_id
        role = _role(actor)
        service_log.debug(
            "refused %s on claim %s for %s (%s): %s",
            refused.trigger or trigger,
            claim_id,
            role,
            ", ".join(codes),
            refused,
            extra={
                "claim_id": claim_id,
                "trigger": refused.trigger or trigger,
                "actor_role": role,
                "refusal_codes": codes,
            },
        )


def _fired(otel: _Otel, trigger: str | None) -> _Done:
    """What a file or fire span records once the call ended: the transition, or why it did not happen."""

    def done(span: Any, fired: Fired | None, error: BaseException | None, outcome: str, took: float) -> None:
        name = trigger
        if fired is not None:
            record = fired.record
            name = record.trigger
            outcome = "replayed" if fired.replayed else outcome
            span.set_attributes(
                {
                    "claimstate.claim.id": record.claim_id,
                    "claimstate.trigger": record.trigger,
                    "claimstate.state.to": record.dest,
                    "claimstate.actor.role": record.actor.role,
                    "claimstate.replayed": fired.replayed,
                }
            )
            if record.source is not None:
                span.set_attribute("claimstate.state.from", record.source)
        elif isinstance(error, TransitionRefused):
            name = error.trigger
        metric = {"claimstate.trigger": name or "", "claimstate.outcome": outcome}
        otel.fires.add(1, metric)
        otel.duration.record(took, metric)

    return done


def _traced_transition(
    span: str, called: Callable[[Any, Sequence[Any], Mapping[str, Any]], Sequence[object]]
) -> Callable[[F], F]:
    """A file or a fire in a `span` span, and its refusal logged at DEBUG; `called` reads the claim id,
    trigger and actor of a call from the service and its arguments."""

    def wrap(method: F) -> F:
        @wraps(method)
        def traced(self: Any, /, *args: Any, **kwargs: Any) -> Any:
            claim_id, trigger, actor = called(self, args, kwargs)
            otel = _listening()
            try:
                if otel is None:
                    return method(self, *args, **kwargs)
                attributes = {
                    "claimstate.trigger": str(trigger),
                    "claimstate.actor.role": str(_role(actor)),
                    "claimstate.retries": 0,
                }
                if claim_id is not None:
                    attributes["claimstate.claim.id"] = str(claim_id)
                return otel.call(span, attributes, _bound(method, self, args, kwargs), _fired(otel, str(trigger)))
            except TransitionRefused as refused:
                _log_refused(refused, claim_id, trigger, actor)
                raise

        return cast(F, traced)

    return wrap


traced_fire = _traced_transition(  # claim id, trigger and actor are `fire`'s first parameters
    "claimstate.fire", lambda _service, args, kwargs: _leading(args, kwargs, ("claim_id", "trigger", "actor"))
)
traced_file = _traced_transition(  # the definition's filing trigger, by the actor given or the data's buyer
    "claimstate.file",
    lambda service, args, kwargs: (kwargs.get("claim_id"), service.definition.creation.trigger, _filer(args, kwargs)),
)


def _filer(args: Sequence[Any], kwargs: Mapping[str, Any]) -> object:
    """Who files: the actor given, else the buyer of the data (`file_claim`'s first parameter)."""
    if kwargs.get("actor") is not None:
        return kwargs["actor"]
    data = args[0] if args else kwargs.get("data")
    return "buyer" if isinstance(data, Mapping) else None


def traced_tick(method: F) -> F:
    """`ClaimService.tick` in a ``claimstate.tick`` span counting the deadlines it fired (each deadline has a
    ``claimstate.deadline`` span of its own inside it, see `traced_deadline`)."""

    @wraps(method)
    def tick(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        otel = _listening()
        if otel is None:
            return method(self, *args, **kwargs)

        def done(span: Any, fired: list[Any] | None, _error: BaseException | None, _outcome: str, _took: float) -> None:
            if fired is not None:
                span.set_attribute("claimstate.deadlines.fired", len(fired))

        return otel.call("claimstate.tick", {}, _bound(method, self, args, kwargs), done)

    return cast(F, tick)


def traced_deadline(
    fire: Callable[[str, str, datetime], TransitionRecord | None], claim_id: str, trigger: str, at: datetime, due: str
) -> TransitionRecord | None:
    """`fire(claim_id, trigger, at)`: a tick firing a deadline due at `due` (ISO text), in a
    ``claimstate.deadline`` span, its lateness (`at` less `due`) recorded as the tick lag once it fired."""
    otel = _listening()
    if otel is None:
        return fire(claim_id, trigger, at)

    def done(
        span: Any, record: TransitionRecord | None, error: BaseException | None, outcome: str, took: float
    ) -> None:
        span.set_attribute("claimstate.fired", record is not None)
        metric = {"claimstate.trigger": trigger, "claimstate.outcome": outcome}
        if record is None:
            if error is not None:
                otel.fires.add(1, metric)
            return
        lag = (at - datetime.fromisoformat(due)).total_seconds()
        span.set_attributes({"claimstate.state.to": record.dest, "claimstate.tick.lag": lag})
        if record.source is not None:
            span.set_attribute("claimstate.state.from", record.source)
        otel.fires.add(1, metric)
        otel.duration.record(took, metric)
        otel.tick_lag.record(lag, {"claimstate.trigger": trigger})

    attributes = {
        "claimstate.claim.id": claim_id,
        "claimstate.trigger": trigger,
        "claimstate.actor.role": "system",
        "claimstate.retries": 0,
    }
    return cast(
        "TransitionRecord | None",
        otel.call("claimstate.deadline", attributes, lambda: fire(claim_id, trigger, at), done),
    )


def _bound(
    method: Callable[..., Any], this: object, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Callable[[], Any]:
    return lambda: method(this, *args, **kwargs)


def _leading(args: Sequence[Any], kwargs: Mapping[str, Any], names: tuple[str, ...]) -> list[Any]:
    """The values of a call's first parameters `names`, given by position or by name."""
    return [args[i] if i < len(args) else kwargs.get(name) for i, name in enumerate(names)]


# --- the store's retries ----------------------------------------------------------------------------------


def retrying(claim_id: str | None, attempt: int, reason: str | None) -> None:
    """A write lost race number `attempt` and runs again: logged at INFO, counted, and the current span's
    retry count set."""
    store_log.info(
        "write to claim %s lost a race (%s); running it again (retry %d)",
        claim_id,
        reason,
        attempt,
        extra={"claim_id": claim_id, "reason": reason, "retry": attempt},
    )
    otel = _listening()
    if otel is not None:
        otel.retries.add(1)
        otel.trace.get_current_span().set_attribute("claimstate.retries", attempt)


def gave_up(claim_id: str | None, attempts: int, reason: str | None, *, batch: bool) -> None:
    """A write lost its last race (or one inside a batch, which cannot run again alone): WARNING."""
    how = "inside a batch, which cannot run it again alone" if batch else f"{attempts} times; giving up"
    store_log.warning(
        "write to claim %s lost a race (%s) %s",
        claim_id,
        reason,
        how,
        extra={"claim_id": claim_id, "reason": reason, "retry": attempts},
    )


def storage_fault(claim_id: str | None, error: Exception) -> None:
    store_log.warning("write to claim %s failed: %s", claim_id, error, extra={"claim_id": claim_id})


# --- the feed -----------------------------------------------------------------------------------------------


def delivered(consumer: str, events: Sequence[Event], now: datetime) -> None:
    """Record each event's wait in the feed: `now` less the time it entered the feed (its `entered_at` where
    events carry one, else its `at`)."""
    otel = _listening()
    if otel is None or not events:
        return
    metric = {"claimstate.consumer": consumer}
    for event in events:
        entered = event.entered_at or event.at
        otel.consumer_lag.record((now - entered).total_seconds(), metric)


def handling(consumer: str, handler: Callable[[Event], object]) -> Callable[[Event], object]:
    """`handler`, each call in a ``claimstate.consume`` span (the handler's own spans its children); `handler`
    itself when OpenTelemetry's API is not installed."""
    otel = _listening()
    if otel is None:
        return handler

    def handle(event: Event) -> object:
        attributes = {
            "claimstate.consumer": consumer,
            "claimstate.claim.id": event.claim_id,
            "claimstate.event.seq": event.seq,
            "claimstate.trigger": event.trigger,
            "claimstate.state.to": event.to_state,
            "claimstate.lane": event.lane,
        }
        if event.from_state is not None:
            attributes["claimstate.state.from"] = event.from_state
        return otel.call("claimstate.consume", attributes, lambda: handler(event), _nothing)

    return handle


def _nothing(*_: object) -> None:
    return None
