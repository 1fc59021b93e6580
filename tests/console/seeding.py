"""A database of known claims for the console's tests: counts, ages, a stuck and an overdue claim, and known
times spent in states, every one of them relative to one `NOW`.

What the console must show is spelled out in `EXPECTED`, written by hand from the plan below, not computed
by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from helpers import EVIDENCE, filing

from claimstate import ClaimService

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

# Each claim: (id, the steps as (trigger, role, data, when before NOW)), the filing first.
_OFFER = {"kind": "partial_refund", "amount": "10.00"}
PLAN: list[tuple[str, list[tuple[str, str, dict[str, Any] | None, timedelta]]]] = [
    # awaiting_evidence: 3 open, filed 1, 2 and 3 hours ago (their 7-day clocks run)
    *((f"c-ev-{n}", [("file_claim", "buyer", None, n * HOUR)]) for n in (1, 2, 3)),
    # in_mediation: one unchanged for 3 days (stuck past a day), one for 2 hours; they left awaiting_evidence
    # after 4 and 1 hours
    (
        "c-med-old",
        [
            ("file_claim", "buyer", None, 3 * DAY + 4 * HOUR),
            ("submit_evidence", "buyer", {"evidence": EVIDENCE}, 3 * DAY),
        ],
    ),
    (
        "c-med-new",
        [("file_claim", "buyer", None, 3 * HOUR), ("submit_evidence", "buyer", {"evidence": EVIDENCE}, 2 * HOUR)],
    ),
    # awaiting_supplier_response for 6 days: its 5-day deadline passed a day ago, not fired (overdue)
    (
        "c-late",
        [
            ("file_claim", "buyer", None, 6 * DAY + 5 * HOUR),
            ("submit_evidence", "buyer", {"evidence": EVIDENCE}, 6 * DAY + 3 * HOUR),
            ("request_supplier_response", "agent", {"question": "tracking?"}, 6 * DAY),
        ],
    ),
    # refunded_partial, closed: left awaiting_evidence after 2 hours, in_mediation after 1 day
    (
        "c-done",
        [
            ("file_claim", "buyer", None, 2 * DAY + 2 * HOUR),
            ("submit_evidence", "buyer", {"evidence": EVIDENCE}, 2 * DAY),
            ("decide_partial_refund", "agent", {"amount": "10.00", "rationale": "scratch"}, 1 * DAY),
        ],
    ),
    # an agreement waiting for the team's check (cancellation_pending, no deadline) for 2 hours
    (
        "c-agreed",
        [
            ("file_claim", "buyer", {"resolution": "partial_refund", "refund_amount": "12.00"}, 10 * HOUR),
            ("submit_evidence", "buyer", {"evidence": EVIDENCE}, 9 * HOUR),
            ("make_offer", "supplier", _OFFER, 5 * HOUR),
            ("accept_offer", "buyer", None, 4 * HOUR),
            ("cancel_claim", "buyer", None, 2 * HOUR),
        ],
    ),
]
ACTORS = {"buyer": "buyer:{buyer}", "supplier": "supplier:{supplier}", "agent": "agent:kim"}

# What the console shows for the 30 days before NOW, stuck past a day.
EXPECTED = {
    "open": {"awaiting_evidence": 3, "in_mediation": 2, "awaiting_supplier_response": 1, "cancellation_pending": 1},
    "closed": {"refunded_partial": 1},
    "stuck": {"in_mediation": 1},
    "overdue": {"awaiting_supplier_response": 1},
    # times a claim left the state, and the median and 90th percentile of the time it spent there, from entering
    # to leaving (steps that stay in the state do not end a stay), by nearest rank:
    # awaiting_evidence: left after 4 h, 1 h, 2 h, 2 h, 1 h -> sorted 1 1 2 2 4: median 2 h, p90 4 h
    # in_mediation: left after 3 h (c-late), 1 day (c-done), 7 h (c-agreed) -> 3 7 24: median 7 h, p90 1 day
    "left": {"awaiting_evidence": (5, 2 * HOUR, 4 * HOUR), "in_mediation": (3, 7 * HOUR, 1 * DAY),
             "cancellation_pending": None},
    # taken (arrows): file_claim 8, submit_evidence (to mediation) 5, decide_partial_refund 1, request_supplier 1,
    # make_offer 1, accept_offer 1, cancel_claim 1
    "arrows": {"file_claim": 8, "submit_evidence": 5, "request_supplier_response": 1, "decide_partial_refund": 1,
               "make_offer": 1, "accept_offer": 1, "cancel_claim": 1},
}  # fmt: skip


def seed(service: ClaimService) -> None:
    """File and walk every claim of PLAN, each step at its own time."""
    for number, (claim_id, steps) in enumerate(PLAN):
        parties = {"buyer": f"buyer{number}", "supplier": f"shop{number % 3}"}
        for trigger, role, data, before in steps:
            at = NOW - before
            actor = ACTORS[role].format(**parties)
            if trigger == "file_claim":
                filed = filing(order_id=f"o-{number}", buyer_id=parties["buyer"], supplier_id=parties["supplier"],
                               **(data or {}))  # fmt: skip
                service.file_claim(filed, actor=actor, claim_id=claim_id, now=at)
            else:
                service.fire(claim_id, trigger, actor, data, now=at)
