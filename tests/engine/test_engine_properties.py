"""Property tests of the in-memory Engine: random walks of triggers over a freshly filed claim.

Each example files a claim (full or partial refund asked, in a random currency and amount), then fires a
random sequence of steps. Most steps pick a trigger that `Engine.available` allows, with data the guards
accept, so walks get deep into the lifecycle; the rest fire any trigger as any actor (strangers such as
``buyer:mallory``, the wrong role, the deadline clock before or after the due time) with valid or broken
data (wrong amounts, empty evidence, unknown keys...), or are outright malformed. The clock only moves
forward, in timezone-aware UTC. After every step the lifecycle's invariants are checked against the
history of applied transitions.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from claimstate import (
    CLAIM_LIFECYCLE,
    Claim,
    Engine,
    InvalidInput,
    Money,
    TransitionRecord,
    TransitionRefused,
)

ENGINE = Engine()
FINAL_STATES = frozenset(s.name for s in CLAIM_LIFECYCLE.states if s.final)
DEADLINE_RULES = {s.name: s.deadline for s in CLAIM_LIFECYCLE.states}
DEADLINE_TRIGGERS = frozenset(rule.trigger for rule in DEADLINE_RULES.values() if rule is not None)
FILING = CLAIM_LIFECYCLE.creation.trigger
TRIGGERS = tuple(t for t in CLAIM_LIFECYCLE.triggers if t != FILING)
REFUSAL_KINDS = frozenset({"state", "permission", "guard"})

BUYER, SUPPLIER, AGENT, SYSTEM = "buyer:alice", "supplier:acme", "agent:kim", "system"
PLAYERS = (BUYER, SUPPLIER, AGENT, SYSTEM)
# Buyers and suppliers who are not this claim's parties (the last two: the parties in each other's role).
STRANGERS = ("buyer:mallory", "supplier:mallory", "buyer:acme", "supplier:alice")
ACTORS = (*PLAYERS, "agent:lee", *STRANGERS)
IMPOSTORS = {BUYER: ("buyer:mallory", "buyer:acme"), SUPPLIER: ("supplier:mallory", "supplier:alice")}
# Who may fire what, as the specification's parties table says (README, "The lifecycle").
MAY_FIRE = {
    "buyer": {
        "submit_evidence",
        "make_offer",
        "accept_offer",
        "reject_offer",
        "cancel_claim",
        "respond",
        "escalate",
        "ship_return",
        "withdraw",
    },
    "supplier": {
        "submit_evidence",
        "make_offer",
        "accept_offer",
        "reject_offer",
        "respond",
        "appeal",
        "confirm_return_address",
        "confirm_return_received",
        "report_return_problem",
    },
    "agent": {
        "request_buyer_response",
        "request_supplier_response",
        "approve_cancellation",
        "reject_cancellation",
        "decide_full_refund",
        "decide_partial_refund",
        "decide_for_supplier",
    },
    "system": {"evidence_deadline", "response_deadline", "return_deadline", "receipt_deadline"},
}
MALFORMED_ACTORS = ("robot:x", "buyer", "supplier:", "system:clock", "", "buyer:mal lory")
START = datetime(2026, 1, 1, tzinfo=UTC)

EVIDENCE_KINDS = ("order", "shipping", "delivery", "correspondence", "photo", "other")
AMOUNT_KEYS = frozenset({"amount", "refund_amount", "shipping_cost"})
UNKNOWN_KEYS = ("bogus", "Amount", "evidence ", "refund")
BAD_AMOUNTS: tuple[object, ...] = ("0", "-1.00", "abc", "", "1e3", "12.3456789", " ", 1.5, 7, ["1.00"])
BAD_EVIDENCE: tuple[object, ...] = (
    [],
    "receipt.pdf",
    ["order"],
    [{}],
    [{"kind": "invoice", "description": "the invoice"}],
    [{"kind": "order", "description": "   "}],
    [{"kind": "order", "description": "receipt", "colour": "red"}],
    [{"kind": "order", "description": "receipt", "document": 5}],
)
BAD_TEXT: tuple[object, ...] = ("", "   ", "\n\t", 7, ["text"], {"text": "x"}, "x" * 10_001)
BAD_KINDS: tuple[object, ...] = ("half_refund", "FULL_REFUND", "", 1)

# Texts that say something (drawn from a fixed few: generating characters would cost more than it finds).
TEXT = st.sampled_from(("receipt", "DHL", "1Z999AA10123456784", " padded ", "Ünïcode ✓ 返品", "x" * 10_000))
# Optional texts may be blank.
NOTE = st.sampled_from(("", "   ", "changed my mind"))
EVIDENCE = st.lists(
    st.fixed_dictionaries({"kind": st.sampled_from(EVIDENCE_KINDS), "description": TEXT}, optional={"document": TEXT}),
    min_size=1,
    max_size=3,
)

# --- strategies ----------------------------------------------------------------------------------------


def _amounts(currency: str, low: int, high: int) -> st.SearchStrategy[str]:
    """Decimal strings of `currency` between `low` and `high` minor units."""
    return st.integers(low, high).map(lambda minor: str(Money(minor, currency)))


@st.composite
def filings(draw: st.DrawFn) -> dict[str, Any]:
    """Valid file_claim data from alice against acme, asking a full or a partial refund."""
    currency = draw(st.sampled_from(["USD", "EUR", "JPY", "KWD"]), label="currency")
    order = draw(st.integers(2, 10**7), label="order minor units")
    resolution = draw(st.sampled_from(["full_refund", "partial_refund"]), label="resolution")
    data = {
        "order_id": "order-1",
        "buyer_id": "alice",
        "supplier_id": "acme",
        "currency": currency,
        "amount": str(Money(order, currency)),
        "reason": "the item never arrived",
        "resolution": resolution,
    }
    if resolution == "partial_refund":
        data["refund_amount"] = draw(_amounts(currency, 1, order - 1), label="refund asked")
    return data


def valid_data(trigger: str, claim: Claim) -> st.SearchStrategy[dict[str, Any]]:
    """Data for `trigger` that every data-judging guard of the lifecycle accepts on `claim`."""
    return _valid_data(trigger, claim.amount.currency, claim.amount.minor)


@functools.cache
def _valid_data(trigger: str, currency: str, order: int) -> st.SearchStrategy[dict[str, Any]]:
    partial = _amounts(currency, 1, order - 1)
    if trigger == "make_offer":
        return st.one_of(
            st.fixed_dictionaries({"kind": st.just("partial_refund"), "amount": partial}),
            st.just({"kind": "full_refund", "amount": str(Money(order, currency))}),
        )
    shapes: dict[str, tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]] = {
        "submit_evidence": ({"evidence": EVIDENCE}, {}),
        "appeal": ({"evidence": EVIDENCE}, {}),
        "reject_offer": ({}, {"note": NOTE}),
        "escalate": ({}, {"note": NOTE}),
        "withdraw": ({}, {"reason": NOTE}),
        "reject_cancellation": ({"reason": TEXT}, {}),
        "request_buyer_response": ({"question": TEXT}, {}),
        "request_supplier_response": ({"question": TEXT}, {}),
        "respond": ({"message": TEXT}, {"evidence": EVIDENCE}),
        "decide_full_refund": ({"rationale": TEXT}, {}),
        "decide_for_supplier": ({"rationale": TEXT}, {}),
        "decide_partial_refund": ({"amount": partial, "rationale": TEXT}, {}),
        "confirm_return_address": ({"address": TEXT}, {}),
        "ship_return": (
            {"carrier": TEXT, "tracking_number": TEXT},
            {"shipping_cost": _amounts(currency, 0, 2 * order)},
        ),
        "report_return_problem": ({"description": TEXT, "evidence": EVIDENCE}, {}),
    }
    required, optional = shapes.get(trigger, ({}, {}))
    return st.fixed_dictionaries(required, optional=optional)


@functools.cache
def _index(size: int) -> st.SearchStrategy[int]:
    """An index below `size`, built once per size: building strategies is what costs most here."""
    return st.integers(0, size - 1)


def _pick(data: st.DataObject, options: Sequence[Any], label: str) -> Any:
    """One of `options` (shrinking towards the first), labelled with the choice itself."""
    choice = options[data.draw(_index(len(options)), label=f"index of {label}")]
    note(f"{label}: {choice!r}")
    return choice


def invalid_data(data: st.DataObject, trigger: str, claim: Claim) -> object:
    """Valid data for `trigger` broken one way: an unknown key, a missing key, a bad value, or no mapping."""
    valid = data.draw(valid_data(trigger, claim), label="valid data to break")
    how = _pick(data, ("bad_value", "bad_value", "unknown_key", "drop_key", "not_a_mapping"), "broken by")
    if how == "not_a_mapping":
        return _pick(data, (["evidence"], "data", 42), "not a mapping")
    if how == "unknown_key" or not valid:
        return {**valid, _pick(data, UNKNOWN_KEYS, "unknown key"): "x"}
    amounts = sorted(AMOUNT_KEYS & set(valid))
    key = _pick(data, amounts + sorted(valid), "key")  # wrong amounts are the likeliest bugs: twice as often
    if how == "drop_key":
        return {k: v for k, v in valid.items() if k != key}
    if key in AMOUNT_KEYS:
        # The boundaries most of the time: nothing, the whole order amount, one minor unit more.
        edges = ("0", str(claim.amount), str(Money(claim.amount.minor + 1, claim.amount.currency)))
        bad = (*edges, *edges, *edges, *BAD_AMOUNTS)
    elif key == "evidence":
        bad = BAD_EVIDENCE
    elif key == "kind":
        bad = BAD_KINDS
    else:
        bad = BAD_TEXT
    return {**valid, key: _pick(data, bad, f"bad {key}")}


# --- checks --------------------------------------------------------------------------------------------


def _check_refusal(refused: TransitionRefused) -> None:
    """Invariant 6: a refusal says why, each reason of a known kind with a message."""
    assert refused.reasons, f"{refused!r} gives no reason"
    for reason in refused.reasons:
        assert reason.kind in REFUSAL_KINDS, reason
        assert reason.code, reason
        assert reason.message.strip(), reason


def _check_record(before: Claim, after: Claim, record: TransitionRecord, trigger: str, now: datetime) -> None:
    """Invariant 3 (and the deadline rule): one version per applied transition, recorded as applied."""
    assert after.version == before.version + 1
    assert record.seq == after.version
    assert record.source == before.state
    assert record.dest == after.state
    assert record.trigger == trigger
    assert record.claim_id == after.id == before.id
    assert record.at == now == after.updated_at
    rule = DEADLINE_RULES[after.state]
    if after.state == before.state:
        assert after.deadline == before.deadline, "a transition that stays put must keep the deadline"
    elif rule is None:
        assert after.deadline is None
    else:
        assert after.deadline is not None
        assert (after.deadline.name, after.deadline.trigger) == (rule.name, rule.trigger)
        assert after.deadline.due == now + ENGINE.policy.window(rule.name)


def _check_claim(claim: Claim, first: Claim, applied: list[TransitionRecord]) -> None:
    """The invariants that hold of the claim and its history after every step."""
    # The history is one unbroken chain, and the version counts it.
    assert claim.version == len(applied) == applied[-1].seq
    assert [r.seq for r in applied] == list(range(1, len(applied) + 1))
    for earlier, later in itertools.pairwise(applied):
        assert later.source == earlier.dest
    assert claim.state == applied[-1].dest
    # What the claim is about never changes.
    fixed = ("id", "order_id", "buyer_id", "supplier_id", "amount", "reason", "resolution", "refund_amount")
    assert all(getattr(claim, name) == getattr(first, name) for name in fixed)
    # Invariant 2: nothing is applied once a final state is reached.
    final_at = next((i for i, r in enumerate(applied) if r.dest in FINAL_STATES), None)
    assert final_at is None or final_at == len(applied) - 1, "a transition was applied after a final state"
    # Invariant 1: refunded_full only when a return shipment with a tracking number is recorded: the supplier
    # confirms receipt of it, or the team decides on it after a return problem or a missed confirmation.
    if claim.state == "refunded_full":
        last = applied[-1]
        assert (last.trigger, last.source) in {
            ("confirm_return_received", "return_in_transit"),
            ("decide_full_refund", "under_review"),
        }
        shipped = [i for i, r in enumerate(applied) if r.trigger == "ship_return"]
        assert shipped, "refunded_full without any ship_return"
        assert applied[shipped[-1]].dest == "return_in_transit"
        if last.trigger == "decide_full_refund":
            went_wrong = {r.trigger for r in applied[shipped[-1] + 1 :]}
            assert went_wrong & {"report_return_problem", "receipt_deadline"}, "decided without a return problem"
        else:
            assert all(r.source == "return_in_transit" for r in applied[shipped[-1] + 1 :])
        assert claim.shipment is not None and claim.shipment.tracking_number.strip()
        assert claim.refund == claim.amount
    # Invariant 4: no refund and no offer exceeds the order amount.
    if claim.refund is not None:
        assert claim.refund.currency == claim.amount.currency
        assert 0 < claim.refund.minor <= claim.amount.minor
    for offer in claim.offers:
        assert offer.amount.currency == claim.amount.currency
        assert 0 < offer.amount.minor <= claim.amount.minor
    if claim.state == "refunded_partial":
        assert claim.refund is not None and claim.refund.minor < claim.amount.minor
    if claim.state not in ("refunded_full", "refunded_partial"):
        assert claim.refund is None


def _fire(
    claim: Claim, trigger: str, actor: str, data: object, now: datetime, applied: list[TransitionRecord]
) -> tuple[Claim, BaseException | None]:
    """Fire one trigger and check the step itself; return the claim after it and the error, if refused."""
    snapshot, as_dict, passed = copy.copy(claim), claim.to_dict(), copy.deepcopy(data)
    try:
        fired = ENGINE.fire(claim, trigger, actor, data, now)  # type: ignore[arg-type]
    except (TransitionRefused, InvalidInput) as error:
        if isinstance(error, TransitionRefused):
            _check_refusal(error)
        # Invariant 5: a refusal leaves the claim exactly as it was.
        assert claim == snapshot
        assert claim.to_dict() == as_dict
        assert data == passed, "a refused fire changed the caller's data"
        return claim, error
    _check_record(claim, fired.claim, fired.record, trigger, now)
    assert claim == snapshot, "firing changed the input claim"
    applied.append(fired.record)
    return fired.claim, None


SECONDS_SMALL = st.integers(0, 86_400)
SECONDS_LARGE = st.integers(86_400, 20 * 86_400)
CLOCK_MOVES = ("stay", "small", "stay", "small", "small", "stay", "small", "small", "due", "large")
DUE_NUDGES = (-1, 0, 1, -60_000_000, 60_000_000)  # microseconds around the due time
# Mostly a step `available` allows; else any trigger by anyone, an allowed step with an amount at an edge
# or fired by an impostor in a party's role, the clock firing a deadline, or nonsense.
MODES = ("allowed",) * 8 + ("any",) * 3 + ("amount", "impostor", "clock", "malformed")
# The allowed steps whose amount the spec bounds by the order amount; "amount" steps try their edges.
EDGE_AMOUNT_TRIGGERS = frozenset({"make_offer", "decide_partial_refund"})
# Each walk has a bent that steers its allowed steps (three times in four) towards the steps it prefers,
# so walks get deep into the lifecycle rather than stopping at the first way out: "agree" prefers agreeing
# on an offer and cancelling, "return" prefers a full refund and the return of the goods, "detour" prefers
# the team's questions and reviews, "lost" a return that goes wrong and the team's decision on it,
# "patient" nothing; when none of its steps is on offer, a walk avoids the steps that close the claim at once.
RETURN_STEPS = frozenset({"confirm_return_address", "ship_return", "confirm_return_received"})
DETOURS = frozenset(
    {"escalate", "appeal", "request_buyer_response", "request_supplier_response", "respond", "report_return_problem"}
)
EARLY_EXITS = frozenset({"withdraw", "decide_for_supplier"})
# The party steps the specification guards with "before <the state's due time>".
BEFORE_DUE_STEPS = frozenset(
    {
        ("submit_evidence", "awaiting_evidence"),
        ("respond", "awaiting_buyer_response"),
        ("respond", "awaiting_supplier_response"),
        ("ship_return", "awaiting_return"),
    }
)
BENTS = {
    "agree": frozenset({"make_offer", "accept_offer", "cancel_claim", "approve_cancellation"}) | RETURN_STEPS,
    "return": frozenset({"decide_full_refund"}) | RETURN_STEPS,
    "detour": DETOURS,
    "lost": frozenset({"decide_full_refund", "confirm_return_address", "ship_return", "report_return_problem"}),
    "patient": frozenset(),
}
FOUR = st.integers(0, 3)  # three times in four: a draw < 3 (and shrinking goes there)


def _advance(data: st.DataObject, claim: Claim, now: datetime) -> datetime:
    """Move the simulated clock forward: not at all, a little, a lot, or to just before/at/after the due time."""
    how = _pick(data, CLOCK_MOVES, "clock")
    if how == "small":
        return now + timedelta(seconds=data.draw(SECONDS_SMALL, label="seconds later"))
    if how == "large":
        return now + timedelta(seconds=data.draw(SECONDS_LARGE, label="seconds later"))
    if how == "due" and claim.deadline is not None:
        nudge = _pick(data, DUE_NUDGES, "microseconds from the due time")
        return max(now, claim.deadline.due + timedelta(microseconds=nudge))
    return now


@functools.lru_cache(maxsize=4096)
def _allowed(claim: Claim, now: datetime) -> tuple[tuple[str, str], ...]:
    """Every (actor, trigger) that `available` allows now, among the claim's parties, the team and the clock.

    Cached: walks that share a beginning, and steps that change nothing, ask again about the same claim.
    """
    return tuple((actor, a.trigger) for actor in PLAYERS for a in ENGINE.available(claim, actor, now) if a.allowed)


def _steer(options: Sequence[tuple[str, str]], claim: Claim, bent: str) -> Sequence[tuple[str, str]]:
    """The options a walk of this bent prefers (all of them when it prefers none)."""
    # No walk prefers confirming the return address again, or offering again once the parties agreed.
    redundant = {"confirm_return_address"} if claim.return_address is not None else set()
    if claim.agreement is not None:
        redundant.add("make_offer")
    useful = [o for o in options if o[1] not in redundant]
    preferred = [o for o in useful if o[1] in BENTS[bent]]
    return preferred or [o for o in useful if o[1] not in EARLY_EXITS] or options


def _edge_amount(data: st.DataObject, trigger: str, claim: Claim) -> tuple[dict[str, Any], bool]:
    """Valid data for an amount-judging trigger with the amount moved to an edge; and whether the spec takes it."""
    payload = data.draw(valid_data(trigger, claim), label="data")
    order = claim.amount.minor
    minor = _pick(data, (0, 1, order - 1, order, order + 1), "amount at an edge (minor units)")
    payload = {**payload, "amount": str(Money(minor, claim.amount.currency))}
    if payload.get("kind") == "full_refund":
        return payload, minor == order
    return payload, 0 < minor < order


def _choose(
    data: st.DataObject, claim: Claim, now: datetime, mode: str, bent: str
) -> tuple[str, str, object, bool, bool, bool | None]:
    """Actor, trigger and data of one step; whether the data is valid, whether `available` allows the step,
    and (for an amount at an edge) whether the spec takes the amount."""
    options = _allowed(claim, now) if mode in ("allowed", "amount", "impostor") else ()
    if mode == "amount":
        options = tuple(o for o in options if o[1] in EDGE_AMOUNT_TRIGGERS)
    elif mode == "impostor":
        options = tuple(o for o in options if o[0] in IMPOSTORS)
    if options:
        if mode == "allowed" and data.draw(FOUR, label="steered") < 3:
            options = _steer(options, claim, bent)
        actor, trigger = _pick(data, options, "allowed (actor, trigger)")
        if mode == "amount":
            payload, amount_ok = _edge_amount(data, trigger, claim)
            return actor, trigger, payload, amount_ok, True, amount_ok
        if mode == "impostor":
            actor = _pick(data, IMPOSTORS[actor], "in the name of")
        valid = mode == "impostor" or data.draw(FOUR, label="valid data") < 3
    elif mode == "clock":
        # The clock fires the claim's own deadline trigger (or another one), whether due or not.
        own = () if claim.deadline is None else (claim.deadline.trigger,)
        actor, trigger, valid = SYSTEM, _pick(data, (*own, *sorted(DEADLINE_TRIGGERS)), "deadline trigger"), True
    else:
        trigger = _pick(data, TRIGGERS, "trigger")
        actor = _pick(data, ACTORS, "actor")
        valid = _pick(data, (True, False), "valid data")
    payload = data.draw(valid_data(trigger, claim), label="data") if valid else invalid_data(data, trigger, claim)
    allowed = next(a for a in ENGINE.available(claim, actor, now) if a.trigger == trigger).allowed
    return actor, trigger, payload, valid, allowed, None


def _step(data: st.DataObject, claim: Claim, now: datetime, applied: list[TransitionRecord], bent: str) -> Claim:
    """One random step; checks what the spec and `available` say its outcome must be."""
    was_final = claim.state in FINAL_STATES
    if was_final:
        assert not _allowed(claim, now), f"triggers allowed in final state {claim.state}"
    mode = _pick(data, MODES, "mode")

    if mode == "malformed":
        trigger = _pick(data, (*TRIGGERS, FILING, "frobnicate", ""), "trigger")
        actors = MALFORMED_ACTORS if trigger in TRIGGERS else (*ACTORS, *MALFORMED_ACTORS)
        actor = _pick(data, actors, "actor")
        after, error = _fire(claim, trigger, actor, {}, now, applied)
        assert isinstance(error, InvalidInput), f"{trigger} by {actor!r}: expected InvalidInput, got {error!r}"
        return after

    actor, trigger, payload, valid, allowed, amount_ok = _choose(data, claim, now, mode, bent)
    after, error = _fire(claim, trigger, actor, payload, now, applied)

    def where() -> str:
        return f"{trigger} by {actor} in {claim.state} at {now.isoformat()} with {payload!r}"

    if was_final:
        # Invariant 2: a final state refuses every trigger, for its state.
        assert isinstance(error, TransitionRefused), f"{where()}: final state gave {error!r}"
        assert error.kinds == {"state"}, error.reasons
    if valid:
        # `available` predicts the outcome of a fire whose data the guards accept.
        assert (error is None) == allowed, f"{where()}: available said allowed={allowed}, fire gave {error!r}"
        assert error is None or isinstance(error, TransitionRefused), f"{where()}: valid data refused: {error!r}"
    elif allowed and isinstance(error, TransitionRefused):
        # Allowed in its state and for its actor, a trigger can only be refused for its data.
        assert error.kinds == {"guard"}, f"{where()}: {error.reasons}"
    if error is None:
        # Only the roles the spec names fire a trigger, and a buyer or supplier only on their own claim.
        assert trigger in MAY_FIRE[actor.partition(":")[0]], f"{where()}: applied for the wrong role"
        assert actor not in STRANGERS, f"{where()}: applied for a stranger"
    if amount_ok is False:
        # An amount outside the spec's range (partial: above zero, below the order; full: the order) is refused.
        assert isinstance(error, TransitionRefused), f"{where()}: amount taken: {error!r}"
    if error is None and (trigger, claim.state) in BEFORE_DUE_STEPS:
        # The spec's "before <due>" steps are applied only before the claim's due time.
        assert claim.deadline is None or now < claim.deadline.due, f"{where()}: applied at or after {claim.deadline}"
    if actor == SYSTEM and trigger in DEADLINE_TRIGGERS and payload == {}:
        # The clock's trigger fires exactly when the claim's own deadline is due.
        due = claim.deadline
        expected = due is not None and due.trigger == trigger and now >= due.due
        assert (error is None) == expected, f"{where()}: deadline {due}, got {error!r}"
    return after


STEPS = st.integers(1, 40)
FILED_AT = st.integers(0, 10**8)


def _walk(data: st.DataObject) -> set[str]:
    """File a claim, run random steps checking every invariant after each; return the states visited.

    A final state is also returned with the trigger that reached it (``refunded_full by decide_full_refund``).
    """
    filing = data.draw(filings(), label="filing")
    now = START + timedelta(seconds=data.draw(FILED_AT, label="filed, seconds after START"))
    fired = ENGINE.file_claim("claim-1", BUYER, filing, now)
    claim = fired.claim
    assert (claim.state, claim.version, fired.record.seq, fired.record.source) == ("awaiting_evidence", 1, 1, None)
    applied = [fired.record]
    first, visited, steps_while_final = claim, {claim.state}, 0
    bent = _pick(data, tuple(BENTS), "bent")
    for _ in range(data.draw(STEPS, label="steps")):
        if claim.state in FINAL_STATES:
            steps_while_final += 1
            if steps_while_final > 3:
                break
        now = _advance(data, claim, now)
        claim = _step(data, claim, now, applied, bent)
        _check_claim(claim, first, applied)
        visited.add(claim.state)
        if claim.state in FINAL_STATES:
            visited.add(f"{claim.state} by {applied[-1].trigger}")
    return visited


# --- tests ---------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_trigger_sequences_keep_every_claim_invariant(data: st.DataObject) -> None:
    """Any sequence of triggers, actors, data and clock moves keeps the lifecycle's invariants.

    After every step: (1) refunded_full is entered only with a recorded return shipment: by
    confirm_return_received, or by decide_full_refund from under_review after a return problem;
    (2) a final state refuses every later trigger with TransitionRefused; (3) each applied transition adds
    exactly one to the version, its record's seq is the new version and its source the old state, and a
    refusal adds nothing; (4) refunds are above zero and no refund or offer exceeds the order amount;
    (5) a refused trigger leaves the claim equal to what it was; (6) every TransitionRefused gives reasons,
    each of kind state, permission or guard, with a message.
    Also: `available` predicts whether a fire with valid data applies; only the roles the specification names
    fire a trigger, and never a buyer or supplier of another claim; an amount outside the spec's range is
    refused; the clock's deadline trigger applies exactly from the due time on and the "before <due>" steps
    never after it; entering a state sets its deadline; malformed actors and unknown triggers raise
    InvalidInput.
    """
    for state in sorted(_walk(data)):
        event(f"reached {state}")


def test_random_walks_reach_every_refund_and_release_outcome() -> None:
    """The random walks reach refunded_full (both ways in), refunded_partial, payment_released, every other
    final state, return_in_transit and under_review, checking every invariant on the way.

    This guards the property test above against strategies that stop finding the deep states. Hypothesis's
    draws can shift with what ran before it in the process, so a seed is no guarantee: the walks run in
    rounds of 150 until every wanted state is seen, at most four rounds. About 2% of walks reach
    refunded_full by the team's decision on a lost return (15 of 729 in one measured run), the rarest
    wanted outcome, so a working strategy misses it in all 600 with a chance near 1e-5.
    """
    wanted = FINAL_STATES | {
        "return_in_transit",
        "under_review",
        "refunded_full by confirm_return_received",
        "refunded_full by decide_full_refund",
    }
    reached: set[str] = set()

    @settings(max_examples=150, deadline=None, database=None)
    @given(st.data())
    def walk(data: st.DataObject) -> None:
        reached.update(_walk(data))

    for _ in range(4):
        walk()
        if reached >= wanted:
            break
    assert reached >= wanted, sorted(wanted - reached)
