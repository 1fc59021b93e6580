"""Hypothesis: random legal sequences round-trip through each store, and verify() rebuilds every stored claim."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from datetime import datetime, timedelta

from helpers import ACTORS, GOOD_DATA, T0, filing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from claimstate import ClaimService, Engine, TransitionRefused

ROLES = ["buyer", "supplier", "agent"] * 3 + ["system"]  # the clock ticks now and then
MINUTES = [1, 60, 600, 600, 24 * 60, 24 * 60, 3 * 24 * 60, 11 * 24 * 60]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    resolution=st.sampled_from(["full_refund", "partial_refund"]),
    steps=st.lists(st.tuples(st.sampled_from(ROLES), st.integers(0, 10_000), st.sampled_from(MINUTES)), max_size=30),
)
def test_random_legal_sequences_round_trip_through_the_store(
    fresh_targets: Callable[[], ContextManager[str]], resolution: str, steps: list[tuple[str, int, int]]
) -> None:
    """Each step fires an allowed trigger (or lets the clock tick); the stored claim always equals the
    engine's, the history always replays to it, and the store opened again says the same."""
    engine = Engine()
    refund = "10.00" if resolution == "partial_refund" else None
    with fresh_targets() as path:
        with ClaimService(path) as service:
            fired = service.file_claim(filing(resolution=resolution, refund_amount=refund), now=T0)
            claim, now = fired.claim, T0
            for role, pick, minutes in steps:
                now += timedelta(minutes=minutes)
                if role == "system":
                    records = service.tick(now)
                    assert len(records) <= 1
                else:
                    allowed = [a.trigger for a in engine.available(claim, ACTORS[role], now) if a.allowed]
                    if len(allowed) > 1 and pick % 8 != 7:  # withdrawing ends most walks early: rarely
                        allowed = [t for t in allowed if t != "withdraw"]
                    if not allowed:
                        continue
                    trigger = allowed[pick % len(allowed)]
                    kinds = _fire_or_refusal_kinds(service, claim.id, trigger, ACTORS[role], now)
                    assert kinds <= {"guard"}  # only a guard on the data (e.g. the offer amount) may refuse
                expected = _replayed(engine, service, claim.id)
                claim = service.get(claim.id)
                assert claim == expected
                assert claim.version == len(service.history(claim.id))
            assert service.verify() == []
            event(f"ends in {claim.state}")
        with ClaimService(path) as reopened:
            assert reopened.get(claim.id) == claim
            assert reopened.verify() == []


def _fire_or_refusal_kinds(service: ClaimService, claim_id: str, trigger: str, actor: str, now: datetime) -> set[str]:
    """Fire with good data; the kinds of reason if refused, else nothing."""
    try:
        service.fire(claim_id, trigger, actor, GOOD_DATA.get(trigger), now=now)
    except TransitionRefused as refused:
        return set(refused.kinds)
    return set()


def _replayed(engine: Engine, service: ClaimService, claim_id: str):
    """The claim rebuilt in memory from the stored history, step by step through the engine."""
    first, *rest = service.history(claim_id)
    claim = engine.file_claim(claim_id, first.actor, dict(first.data), first.at).claim
    for record in rest:
        claim = engine.fire(claim, record.trigger, record.actor, dict(record.data), record.at).claim
    return claim
