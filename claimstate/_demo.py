"""The main job's demo: real claims walked through the lifecycle's main paths, step by step.

Each scenario is a list of (trigger, actor, data, minutes later) steps; the demo files and fires them
through a ClaimService on a SQLite file, lets the clock (`tick`) fire the deadlines, and returns every
claim's history, so a new user sees the machine decide and can open the database it wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from claimstate._claim import Claim, TransitionRecord
from claimstate._service import ClaimService
from claimstate._time import to_iso

DEMO_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_PHOTO = [{"kind": "photo", "description": "the screen arrived cracked"}]
_DAY = 24 * 60

TICK = "(the clock ticks)"  # a step that runs ClaimService.tick instead of firing a trigger
Step = tuple[str, str, dict[str, Any] | None, int]
SCENARIOS: dict[str, tuple[dict[str, Any], list[Step]]] = {
    "evidence timeout: no evidence in seven days, payment released": (
        {"resolution": "full_refund"},
        [(TICK, "system", None, 7 * _DAY)],
    ),
    "partial refund by agreement: the buyer keeps the goods": (
        {"resolution": "partial_refund", "refund_amount": "15.00"},
        [
            ("submit_evidence", "buyer", {"evidence": _PHOTO}, 60),
            ("make_offer", "supplier", {"kind": "partial_refund", "amount": "10.00"}, 120),
            ("reject_offer", "buyer", {"note": "too little for a cracked screen"}, 60),
            ("make_offer", "supplier", {"kind": "partial_refund", "amount": "14.00"}, 60),
            ("accept_offer", "buyer", None, 30),
            ("cancel_claim", "buyer", None, 5),
            ("approve_cancellation", "agent", None, _DAY),
        ],
    ),
    "full refund with return: goods back, money back": (
        {"resolution": "full_refund"},
        [
            ("submit_evidence", "buyer", {"evidence": _PHOTO}, 60),
            ("request_supplier_response", "agent", {"question": "Was the parcel insured?"}, _DAY),
            ("respond", "supplier", {"message": "No insurance; we accept a return."}, 120),
            ("decide_full_refund", "agent", {"rationale": "damage shown on photos"}, 60),
            ("confirm_return_address", "supplier", {"address": "12 Harbour Rd, Shenzhen"}, 180),
            ("ship_return", "buyer", {"carrier": "DHL", "tracking_number": "JD014600", "shipping_cost": "8.50"}, _DAY),
            ("confirm_return_received", "supplier", None, 6 * _DAY),
        ],
    ),
    "return lost on the way: the team refunds in full on the recorded shipment": (
        {"resolution": "full_refund"},
        [
            ("submit_evidence", "buyer", {"evidence": _PHOTO}, 60),
            ("decide_full_refund", "agent", {"rationale": "damage shown on photos"}, _DAY),
            ("confirm_return_address", "supplier", {"address": "12 Harbour Rd, Shenzhen"}, 120),
            ("ship_return", "buyer", {"carrier": "DHL", "tracking_number": "JD014777"}, _DAY),
            (TICK, "system", None, 15 * _DAY),
            ("decide_full_refund", "agent", {"rationale": "the carrier confirms the parcel was lost"}, _DAY),
        ],
    ),
    "supplier appeal and decision: the team judges for the supplier": (
        {"resolution": "full_refund"},
        [
            ("submit_evidence", "buyer", {"evidence": _PHOTO}, 60),
            (
                "appeal",
                "supplier",
                {"evidence": [{"kind": "delivery", "description": "signed for intact at the door"}]},
                _DAY,
            ),
            ("submit_evidence", "buyer", {"evidence": [{"kind": "correspondence", "description": "chat log"}]}, 60),
            ("decide_for_supplier", "agent", {"rationale": "courier photo shows the screen intact"}, 2 * _DAY),
        ],
    ),
}
DEMO_TITLES = tuple(SCENARIOS)
"""The titles of the demo's claims, in the order `walk_demo` walks them (one claim each)."""

_ACTORS = {"buyer": "buyer:{buyer}", "supplier": "supplier:{supplier}", "agent": "agent:kim", "system": "system"}


def _parties(number: int) -> dict[str, str]:
    """The buyer and the supplier of the demo's claim `number` (from 1)."""
    return {"buyer": f"buyer{number}", "supplier": "acme-electronics"}


def _order(number: int) -> str:
    return f"order-{1000 + number}"


def is_demo(claim: Claim) -> bool:
    """Whether `claim` looks like one the demo files (its order and parties), so that running the demo
    again in its folder is no reason to refuse it."""
    return any(
        (claim.order_id, claim.buyer_id, claim.supplier_id) == (_order(n), *_parties(n).values())
        for n in range(1, len(SCENARIOS) + 1)
    )


def walk(
    service: ClaimService, *, start: datetime | None = None
) -> Iterator[tuple[str, Claim, list[TransitionRecord]]]:
    """Walk the demo's claims through the lifecycle's main paths on `service`, from `start` (by default 5
    January 2026, 09:00 UTC); yield each one's title, final claim and history, as `claimstate demo` prints."""
    start = start or DEMO_START
    for number, (title, (filing, steps)) in enumerate(SCENARIOS.items(), start=1):
        parties = _parties(number)
        now = start + timedelta(hours=number)
        data = {
            "order_id": _order(number),
            "buyer_id": parties["buyer"],
            "supplier_id": parties["supplier"],
            "currency": "USD",
            "amount": "49.90",
            "reason": "the screen arrived cracked",
            **filing,
        }
        claim_id = service.file_claim(data, now=now).claim.id
        for trigger, role, step_data, minutes in steps:
            now += timedelta(minutes=minutes)
            if trigger == TICK:
                service.tick(now)
            else:
                service.fire(claim_id, trigger, _ACTORS[role].format(**parties), step_data, now=now)
        yield title, service.get(claim_id), service.history(claim_id)


def format_history(history: list[TransitionRecord]) -> list[str]:
    """One aligned line per transition: seq, time, trigger, from -> to, actor."""
    rows = [
        (
            str(r.seq),
            to_iso(r.at)[:16].replace("T", " "),
            r.trigger,
            f"{r.source or '-'} -> {r.dest}",
            str(r.actor),
        )
        for r in history
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
