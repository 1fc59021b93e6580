"""The built-in buyer-claim lifecycle, as the product specification (LIFECYCLE.md) states it.

This module is the only place that names the claim's states, triggers, guards and data. Adding a
state or a guard means editing the tables below; the engine, store and renderers follow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import attrs

from claimstate._claim import ACCEPTED, OPEN, REJECTED, SUPERSEDED, VOIDED, Claim, Evidence, Offer, ReturnShipment
from claimstate._definition import Context, DeadlineRule, Definition, Field, Guard, State, Transition
from claimstate._errors import InvalidInput, RefusalKind
from claimstate._money import Money, parse_currency

EVIDENCE_KINDS = ("order", "shipping", "delivery", "correspondence", "photo", "other")
RESOLUTIONS = ("full_refund", "partial_refund")
_MAX_TEXT = 10_000

# --- data fields -------------------------------------------------------------------------------------


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"expected text, not {value!r}", field=name)
    if len(value) > _MAX_TEXT:
        raise InvalidInput(f"longer than {_MAX_TEXT} characters", field=name)
    return value


def text(name: str, description: str, *, required: bool = True, blank_ok: bool = False) -> Field:
    """A text field; unless `blank_ok`, it must say something (blank ones are judged by a guard instead)."""

    def parse(value: object, _parsed: Mapping[str, Any], _claim: Claim | None) -> str:
        result = _text(value, name)
        if not blank_ok and not result.strip():
            raise InvalidInput("must not be empty", field=name)
        return result

    return Field(name, description, parse, required)


def choice(name: str, description: str, options: tuple[str, ...]) -> Field:
    def parse(value: object, _parsed: Mapping[str, Any], _claim: Claim | None) -> str:
        if value not in options:
            raise InvalidInput(f"{value!r} is not one of {', '.join(options)}", field=name)
        return str(value)

    return Field(name, description, parse)


def money(name: str, description: str, *, required: bool = True) -> Field:
    """A decimal string in the claim's currency (while filing, the `currency` field's)."""

    def parse(value: object, parsed: Mapping[str, Any], claim: Claim | None) -> Money:
        currency = claim.amount.currency if claim is not None else parsed.get("currency", "")
        return Money.parse(value, currency, field=name)

    return Field(name, description, parse, required)


def _evidence_items(value: object, parsed: Mapping[str, Any], claim: Claim | None) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        raise InvalidInput("expected a list of {kind, description, document?} objects", field="evidence")
    for i, item in enumerate(value):
        where = f"evidence[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput("expected an object with kind and description", field=where)
        unknown = set(item) - {"kind", "description", "document"}
        if unknown:
            raise InvalidInput(f"unknown key(s) {', '.join(sorted(unknown))}", field=where)
        if item.get("kind") not in EVIDENCE_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(EVIDENCE_KINDS)}", field=where)
        if not isinstance(item.get("description"), str) or not item["description"].strip():
            raise InvalidInput("needs a description", field=where)
        if item.get("document") is not None:
            _text(item["document"], where + ".document")
    return tuple(value)


def evidence_field(*, required: bool = True) -> Field:
    return Field(
        "evidence",
        "list of {kind, description, document?}; kind is " + ", ".join(EVIDENCE_KINDS),
        _evidence_items,
        required,
    )


# --- guards ------------------------------------------------------------------------------------------


def guard(
    code: str, description: str, refusal: str, *, uses_data: bool = False, kind: RefusalKind = "guard"
) -> Callable[[Callable[[Context], bool]], Guard]:
    """Declare a guard from its predicate, with what it means in plain words."""

    def make(check: Callable[[Context], bool]) -> Guard:
        return Guard(code, description, refusal, check, uses_data, kind)

    return make


@guard("order_amount_positive", "the order amount is above zero", "the order amount must be above zero", uses_data=True)
def order_amount_positive(ctx: Context) -> bool:
    return bool(ctx.data["amount"].minor > 0)


@guard("buyer_is_not_supplier", "buyer and supplier differ", "the buyer and the supplier must differ", uses_data=True)
def buyer_is_not_supplier(ctx: Context) -> bool:
    return bool(ctx.data["buyer_id"] != ctx.data["supplier_id"])


@guard(
    "files_own_claim",
    "the buyer files in their own name",
    "a buyer can only file a claim in their own name",
    uses_data=True,
    kind="permission",
)
def files_own_claim(ctx: Context) -> bool:
    return bool(ctx.data["buyer_id"] == ctx.actor.id)


@guard(
    "requested_refund_valid",
    "a partial refund asks more than zero and less than the order amount",
    "a partial refund must ask more than zero and less than the order amount (and a full refund no amount)",
    uses_data=True,
)
def requested_refund_valid(ctx: Context) -> bool:
    asked: Money | None = ctx.data.get("refund_amount")
    if ctx.data["resolution"] == "full_refund":
        return asked is None
    return asked is not None and 0 < asked.minor < ctx.data["amount"].minor


@guard("no_open_claim_on_order", "no other claim on this order is open", "another claim on this order is still open")
def no_open_claim_on_order(ctx: Context) -> bool:
    return not ctx.order_has_open_claim


@guard("evidence_given", "at least one evidence item", "at least one evidence item is needed", uses_data=True)
def evidence_given(ctx: Context) -> bool:
    return bool(ctx.data.get("evidence"))


@guard("before_deadline", "before the deadline", "the deadline for this step has passed")
def before_deadline(ctx: Context) -> bool:
    deadline = ctx.current.deadline
    return deadline is None or ctx.now < deadline.due


@guard("deadline_reached", "the deadline has come", "the deadline has not come yet")
def deadline_reached(ctx: Context) -> bool:
    deadline = ctx.current.deadline
    return deadline is not None and ctx.now >= deadline.due


@guard("no_evidence", "the buyer presented no evidence", "the buyer has presented evidence")
def no_evidence(ctx: Context) -> bool:
    return not ctx.current.evidence


@guard("no_open_offer", "no other offer is open", "another offer is still open: accept or reject it first")
def no_open_offer(ctx: Context) -> bool:
    return ctx.current.open_offer is None


@guard(
    "offer_amount_valid",
    "a partial offer is above zero and below the order amount; a full offer is the order amount",
    "the offer amount does not fit its kind: partial must be above zero and below the order amount, full must equal it",
    uses_data=True,
)
def offer_amount_valid(ctx: Context) -> bool:
    amount: Money = ctx.data["amount"]
    order = ctx.current.amount
    if ctx.data["kind"] == "full_refund":
        return amount == order
    return 0 < amount.minor < order.minor


@guard("offer_open", "an offer is open", "no offer is open")
def offer_open(ctx: Context) -> bool:
    return ctx.current.open_offer is not None


@guard(
    "answers_other_party",
    "the party that did not make the open offer",
    "only the party that did not make the open offer may answer it",
    kind="permission",
)
def answers_other_party(ctx: Context) -> bool:
    offer = ctx.current.open_offer
    return offer is None or offer.by != ctx.actor.role


@guard("agreement_exists", "the parties agreed on an offer", "the parties have not agreed on an offer")
def agreement_exists(ctx: Context) -> bool:
    return ctx.current.agreement is not None


def _agreement_kind(ctx: Context) -> str | None:
    agreement = ctx.current.agreement
    return None if agreement is None else agreement.kind


@guard("agreement_is_partial", "the agreement is a partial refund", "the agreement is not a partial refund")
def agreement_is_partial(ctx: Context) -> bool:
    return _agreement_kind(ctx) == "partial_refund"


@guard("agreement_is_full", "the agreement is a full refund", "the agreement is not a full refund")
def agreement_is_full(ctx: Context) -> bool:
    return _agreement_kind(ctx) == "full_refund"


@guard("message_given", "a non-empty message", "the message is empty", uses_data=True)
def message_given(ctx: Context) -> bool:
    return bool(ctx.data["message"].strip())


@guard("buyer_asked_partial", "the buyer asked a partial refund", "the buyer did not ask a partial refund")
def buyer_asked_partial(ctx: Context) -> bool:
    return ctx.current.resolution == "partial_refund"


@guard("buyer_asked_full", "the buyer asked a full refund", "the buyer did not ask a full refund")
def buyer_asked_full(ctx: Context) -> bool:
    return ctx.current.resolution == "full_refund"


@guard(
    "decided_amount_in_range",
    "the amount is above zero and below the order amount",
    "a partial refund must be above zero and below the order amount",
    uses_data=True,
)
def decided_amount_in_range(ctx: Context) -> bool:
    return bool(0 < ctx.data["amount"].minor < ctx.current.amount.minor)


@guard(
    "return_address_confirmed",
    "the supplier confirmed the return address",
    "the supplier has not confirmed the return address yet",
)
def return_address_confirmed(ctx: Context) -> bool:
    return ctx.current.return_address is not None


@guard(
    "shipment_given",
    "carrier and tracking number given",
    "the carrier and the tracking number are both needed",
    uses_data=True,
)
def shipment_given(ctx: Context) -> bool:
    return bool(ctx.data["carrier"].strip() and ctx.data["tracking_number"].strip())


@guard(
    "return_shipment_recorded",
    "a return shipment with a tracking number is recorded",
    "no return shipment with a tracking number is recorded",
)
def return_shipment_recorded(ctx: Context) -> bool:
    shipment = ctx.current.shipment
    return shipment is not None and bool(shipment.tracking_number.strip())


@guard(
    "problem_described",
    "a description and evidence",
    "describe the problem and give at least one evidence item",
    uses_data=True,
)
def problem_described(ctx: Context) -> bool:
    return bool(ctx.data["description"].strip() and ctx.data["evidence"])


# --- effects: how a transition changes the claim's details --------------------------------------------


def file_new_claim(ctx: Context) -> Claim:
    d = ctx.data
    return Claim(
        id=ctx.claim_id,
        order_id=d["order_id"],
        buyer_id=d["buyer_id"],
        supplier_id=d["supplier_id"],
        amount=d["amount"],
        reason=d["reason"],
        resolution=d["resolution"],
        refund_amount=d.get("refund_amount"),
        state="",
        version=0,
        filed_at=ctx.now,
        updated_at=ctx.now,
    )


def add_evidence(ctx: Context) -> Claim:
    items = tuple(
        Evidence(ctx.actor.role, i["kind"], i["description"], ctx.now, i.get("document"))
        for i in ctx.data.get("evidence", ())
    )
    return attrs.evolve(ctx.current, evidence=ctx.current.evidence + items)


def add_offer(ctx: Context) -> Claim:
    claim = ctx.current
    offer = Offer(len(claim.offers) + 1, ctx.actor.role, ctx.data["kind"], ctx.data["amount"], ctx.now)
    return attrs.evolve(claim, offers=(*claim.offers, offer))


def _settle_open_offer(claim: Claim, status: str) -> Claim:
    """Close the open offer with `status`; accepting one supersedes any earlier agreement."""

    def settled(o: Offer) -> Offer:
        if o.status == OPEN:
            return attrs.evolve(o, status=status)
        if status == ACCEPTED and o.status == ACCEPTED:
            return attrs.evolve(o, status=SUPERSEDED)
        return o

    return attrs.evolve(claim, offers=tuple(settled(o) for o in claim.offers))


def accept_offer(ctx: Context) -> Claim:
    return _settle_open_offer(ctx.current, ACCEPTED)


def reject_offer(ctx: Context) -> Claim:
    return _settle_open_offer(ctx.current, REJECTED)


def void_agreement(ctx: Context) -> Claim:
    claim = ctx.current
    return attrs.evolve(
        claim, offers=tuple(attrs.evolve(o, status=VOIDED) if o == claim.agreement else o for o in claim.offers)
    )


def refund_agreement(ctx: Context) -> Claim:
    agreement = ctx.current.agreement
    return attrs.evolve(ctx.current, refund=None if agreement is None else agreement.amount)


def refund_requested(ctx: Context) -> Claim:
    return attrs.evolve(ctx.current, refund=ctx.current.refund_amount)


def refund_decided(ctx: Context) -> Claim:
    return attrs.evolve(ctx.current, refund=ctx.data["amount"])


def refund_order_amount(ctx: Context) -> Claim:
    return attrs.evolve(ctx.current, refund=ctx.current.amount)


def record_address(ctx: Context) -> Claim:
    return attrs.evolve(ctx.current, return_address=ctx.data["address"])


def record_shipment(ctx: Context) -> Claim:
    d = ctx.data
    shipment = ReturnShipment(d["carrier"], d["tracking_number"], ctx.now, d.get("shipping_cost"))
    return attrs.evolve(ctx.current, shipment=shipment)


# --- the lifecycle -----------------------------------------------------------------------------------

EVIDENCE_DUE = DeadlineRule(
    "evidence_due", "evidence_deadline", timedelta(days=7), "the buyer must present evidence (FAQ: seven days)"
)
RESPONSE_DUE = DeadlineRule("response_due", "response_deadline", timedelta(days=5), "the party asked must respond")
RETURN_DUE = DeadlineRule("return_due", "return_deadline", timedelta(days=10), "the buyer must ship the return")
RECEIPT_DUE = DeadlineRule(
    "receipt_due", "receipt_deadline", timedelta(days=15), "the supplier must confirm receiving the return"
)

STATES = (
    State(
        "awaiting_evidence",
        "filed; the buyer must present evidence (order, shipping, delivery, correspondence)",
        deadline=EVIDENCE_DUE,
    ),
    State("in_mediation", "the dispute team mediates; the parties exchange offers; the supplier may appeal"),
    State("awaiting_buyer_response", "the dispute team asked the buyer to respond now", deadline=RESPONSE_DUE),
    State("awaiting_supplier_response", "the dispute team asked the supplier to respond", deadline=RESPONSE_DUE),
    State("under_review", "the dispute team gathers all evidence and judges"),
    State("cancellation_pending", "the buyer cancelled the claim after an agreement; the team checks it"),
    State(
        "awaiting_return",
        "a full refund was agreed or decided: the buyer returns the goods at their own cost",
        deadline=RETURN_DUE,
    ),
    State("return_in_transit", "the buyer shipped the return with a carrier and tracking number", deadline=RECEIPT_DUE),
    State("refunded_full", "full refund paid; the goods are back with the supplier", final=True),
    State("refunded_partial", "partial refund paid; the buyer keeps the goods", final=True),
    State("payment_released", "payment released to the supplier", final=True),
    State("withdrawn", "the buyer withdrew the claim; payment released to the supplier", final=True),
)

BUYER, SUPPLIER, AGENT, SYSTEM = (frozenset({r}) for r in ("buyer", "supplier", "agent", "system"))
PARTIES = BUYER | SUPPLIER
MEDIATING = ("in_mediation", "under_review")

FILE_FIELDS = (
    text("order_id", "the order the claim is about"),
    text("buyer_id", "the buyer filing (must be the actor)"),
    text("supplier_id", "the supplier of the order"),
    Field("currency", "ISO 4217 code of the order", lambda v, _p, _c: parse_currency(v)),
    money("amount", "the order amount, a decimal string"),
    text("reason", "what went wrong, in the buyer's words"),
    choice("resolution", "what the buyer asks for", RESOLUTIONS),
    money("refund_amount", "the partial refund asked (partial_refund only)", required=False),
)
OFFER_FIELDS = (choice("kind", "partial_refund or full_refund", RESOLUTIONS), money("amount", "the refund offered"))
QUESTION = (text("question", "what the dispute team asks"),)
RATIONALE = (text("rationale", "why the team decided so"),)
RESPONSE = (text("message", "the answer", blank_ok=True), evidence_field(required=False))
SHIPMENT = (
    text("carrier", "the carrier", blank_ok=True),
    text("tracking_number", "the carrier's tracking number", blank_ok=True),
    money("shipping_cost", "what the buyer paid for shipping", required=False),
)


def _respond(source: str, actor: frozenset[str]) -> Transition:
    return Transition(
        "respond",
        (source,),
        "in_mediation",
        actor,
        "the party asked responds",
        (message_given, before_deadline),
        RESPONSE,
        add_evidence,
    )


def _submit_evidence(source: str, actors: frozenset[str]) -> Transition:
    return Transition(
        "submit_evidence",
        (source,),
        source if source != "awaiting_evidence" else "in_mediation",
        actors,
        "a party presents evidence",
        (evidence_given, before_deadline),
        (evidence_field(),),
        add_evidence,
    )


TRANSITIONS = (
    Transition(
        "file_claim",
        (),
        "awaiting_evidence",
        BUYER,
        "the buyer files a claim on an order",
        (files_own_claim, order_amount_positive, buyer_is_not_supplier, requested_refund_valid, no_open_claim_on_order),
        FILE_FIELDS,
        file_new_claim,
    ),
    _submit_evidence("awaiting_evidence", BUYER),
    _submit_evidence("in_mediation", PARTIES),
    _submit_evidence("under_review", PARTIES),
    Transition(
        "evidence_deadline",
        ("awaiting_evidence",),
        "payment_released",
        SYSTEM,
        "no evidence in time: the claim closes and payment goes to the supplier",
        (deadline_reached, no_evidence),
        on_deadline="evidence_due",
    ),
    Transition(
        "make_offer",
        ("in_mediation",),
        "in_mediation",
        PARTIES,
        "a party offers a refund",
        (no_open_offer, offer_amount_valid),
        OFFER_FIELDS,
        add_offer,
    ),
    Transition(
        "accept_offer",
        ("in_mediation",),
        "in_mediation",
        PARTIES,
        "the other party accepts the open offer",
        (offer_open, answers_other_party),
        effect=accept_offer,
    ),
    Transition(
        "reject_offer",
        ("in_mediation",),
        "in_mediation",
        PARTIES,
        "the other party rejects the open offer",
        (offer_open, answers_other_party),
        (text("note", "why", required=False, blank_ok=True),),
        reject_offer,
    ),
    Transition(
        "cancel_claim",
        ("in_mediation",),
        "cancellation_pending",
        BUYER,
        "both agreed: the buyer cancels the claim for the team to check",
        (agreement_exists,),
    ),
    Transition(
        "approve_cancellation",
        ("cancellation_pending",),
        "refunded_partial",
        AGENT,
        "the team approves the agreed partial refund",
        (agreement_is_partial,),
        effect=refund_agreement,
    ),
    Transition(
        "approve_cancellation",
        ("cancellation_pending",),
        "awaiting_return",
        AGENT,
        "the team approves the agreed full refund: the goods go back first",
        (agreement_is_full,),
    ),
    Transition(
        "reject_cancellation",
        ("cancellation_pending",),
        "in_mediation",
        AGENT,
        "the team finds the agreement does not hold",
        fields=(text("reason", "why"),),
        effect=void_agreement,
    ),
    Transition(
        "request_buyer_response",
        MEDIATING,
        "awaiting_buyer_response",
        AGENT,
        "the team asks the buyer to respond now",
        fields=QUESTION,
    ),
    Transition(
        "request_supplier_response",
        MEDIATING,
        "awaiting_supplier_response",
        AGENT,
        "the team asks the supplier to respond",
        fields=QUESTION,
    ),
    _respond("awaiting_buyer_response", BUYER),
    _respond("awaiting_supplier_response", SUPPLIER),
    Transition(
        "response_deadline",
        ("awaiting_buyer_response",),
        "payment_released",
        SYSTEM,
        "the buyer did not respond in time",
        (deadline_reached,),
        on_deadline="response_due",
    ),
    Transition(
        "response_deadline",
        ("awaiting_supplier_response",),
        "awaiting_return",
        SYSTEM,
        "the supplier did not respond in time: the full refund asked goes ahead",
        (deadline_reached, buyer_asked_full),
        on_deadline="response_due",
    ),
    Transition(
        "response_deadline",
        ("awaiting_supplier_response",),
        "refunded_partial",
        SYSTEM,
        "the supplier did not respond in time: the partial refund asked is paid",
        (deadline_reached, buyer_asked_partial),
        effect=refund_requested,
        on_deadline="response_due",
    ),
    Transition(
        "appeal",
        ("in_mediation",),
        "under_review",
        SUPPLIER,
        "the supplier appeals with evidence",
        (evidence_given,),
        (evidence_field(),),
        add_evidence,
    ),
    Transition(
        "escalate",
        ("in_mediation",),
        "under_review",
        BUYER,
        "the buyer asks the team to judge",
        fields=(text("note", "why", required=False, blank_ok=True),),
    ),
    Transition(
        "decide_full_refund",
        MEDIATING,
        "awaiting_return",
        AGENT,
        "the team decides a full refund",
        fields=RATIONALE,
    ),
    Transition(
        "decide_partial_refund",
        MEDIATING,
        "refunded_partial",
        AGENT,
        "the team decides a partial refund",
        (decided_amount_in_range,),
        (money("amount", "the refund decided"), *RATIONALE),
        refund_decided,
    ),
    Transition(
        "decide_for_supplier",
        MEDIATING,
        "payment_released",
        AGENT,
        "the team decides for the supplier",
        fields=RATIONALE,
    ),
    Transition(
        "confirm_return_address",
        ("awaiting_return",),
        "awaiting_return",
        SUPPLIER,
        "the supplier confirms where the goods go back",
        fields=(text("address", "the return address"),),
        effect=record_address,
    ),
    Transition(
        "ship_return",
        ("awaiting_return",),
        "return_in_transit",
        BUYER,
        "the buyer ships the goods back",
        (return_address_confirmed, shipment_given, before_deadline),
        SHIPMENT,
        record_shipment,
    ),
    Transition(
        "return_deadline",
        ("awaiting_return",),
        "payment_released",
        SYSTEM,
        "no return shipped in time: payment goes to the supplier",
        (deadline_reached,),
        on_deadline="return_due",
    ),
    Transition(
        "confirm_return_received",
        ("return_in_transit",),
        "refunded_full",
        SUPPLIER,
        "the supplier has the goods back: the full refund is paid",
        (return_shipment_recorded,),
        effect=refund_order_amount,
    ),
    Transition(
        "report_return_problem",
        ("return_in_transit",),
        "under_review",
        SUPPLIER,
        "the supplier reports a problem with the return",
        (problem_described,),
        (text("description", "what is wrong", blank_ok=True), evidence_field()),
        add_evidence,
    ),
    Transition(
        "receipt_deadline",
        ("return_in_transit",),
        "under_review",
        SYSTEM,
        "the supplier did not confirm receipt in time: the team reviews",
        (deadline_reached,),
        on_deadline="receipt_due",
    ),
    Transition(
        "withdraw",
        ("awaiting_evidence", "in_mediation", "awaiting_buyer_response", "awaiting_supplier_response"),
        "withdrawn",
        BUYER,
        "the buyer withdraws the claim",
        fields=(text("reason", "why", required=False, blank_ok=True),),
    ),
)

CLAIM_LIFECYCLE = Definition("buyer claim", STATES, TRANSITIONS)
