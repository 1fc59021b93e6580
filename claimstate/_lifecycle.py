"""The built-in buyer-claim lifecycle: the product specification, as data.

This module is the only place that names the claim's states, triggers, guards and data. Adding a state
or a guard means editing the tables below; the engine, store and renderers follow. The rules it states
are written out in plain words in the README's lifecycle section and in the generated
`diagrams/lifecycle.md`, which list every state and transition of this definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from claimstate._actor import AGENT, BUYER, ID_PATTERN, SUPPLIER, SYSTEM, Actor
from claimstate._claim import ACCEPTED, OPEN, REJECTED, SUPERSEDED, VOIDED, Claim, Evidence, Offer, ReturnShipment
from claimstate._definition import (
    CheckSettings,
    Context,
    DeadlineRule,
    Definition,
    Field,
    Limits,
    State,
    Transition,
    View,
    guard,
)
from claimstate._errors import InvalidInput
from claimstate._fields import checked_text, choice, currency, money, text
from claimstate._money import Money
from claimstate._schema import nullable, text_schema

EVIDENCE_KINDS = ("order", "shipping", "delivery", "correspondence", "photo", "other")
RESOLUTIONS = ("full_refund", "partial_refund")
"""What a buyer may ask for when filing under the built-in lifecycle (its `resolution` field's choices)."""

# --- data fields -------------------------------------------------------------------------------------


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
        checked_text(item["description"], where + ".description")
        if item.get("document") is not None:
            checked_text(item["document"], where + ".document")
    return tuple(value)


def _evidence_schema(limits: Limits, _decimals: int | None) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": list(EVIDENCE_KINDS)},
            "description": text_schema(limits.text, blank_ok=False),
            "document": nullable(text_schema(limits.text, blank_ok=True)),
        },
        "required": ["kind", "description"],
        "additionalProperties": False,
    }
    return {"type": "array", "items": item, "maxItems": limits.evidence_per_fire}


def _party_id(name: str, role: str, description: str) -> Field:
    def parse(value: object, _parsed: Mapping[str, Any], _claim: Claim | None) -> str:
        try:
            return str(Actor(role, checked_text(value, name)).id)
        except InvalidInput as error:
            raise InvalidInput(error.reason, field=name) from None

    def schema(_limits: Limits, _decimals: int | None) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{ID_PATTERN}$"}

    return Field(name=name, description=description, parse=parse, schema=schema)


def evidence_field(*, required: bool = True) -> Field:
    return Field(
        name="evidence",
        description="list of {kind, description, document?}; kind is " + ", ".join(EVIDENCE_KINDS),
        parse=_evidence_items,
        required=required,
        schema=_evidence_schema,
    )


# --- guards ------------------------------------------------------------------------------------------


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


def _deadline_passed(ctx: Context) -> str:
    deadline = ctx.current.deadline
    assert deadline is not None  # the guard refuses only when the claim has a deadline
    return (
        f"the {deadline.name} deadline passed at {deadline.due:%Y-%m-%d %H:%M} UTC: this step is closed,"
        f" and the next tick fires {deadline.trigger}"
    )


def _deadline_not_due(ctx: Context) -> str:
    deadline = ctx.current.deadline
    if deadline is None:
        return "the claim has no deadline running"
    return f"the {deadline.name} deadline is not due before {deadline.due:%Y-%m-%d %H:%M} UTC"


@guard("before_deadline", "before the deadline", "the deadline for this step has passed", explain=_deadline_passed)
def before_deadline(ctx: Context) -> bool:
    deadline = ctx.current.deadline
    return deadline is None or ctx.now < deadline.due


@guard("deadline_reached", "the deadline has come", "the deadline has not come yet", explain=_deadline_not_due)
def deadline_reached(ctx: Context) -> bool:
    deadline = ctx.current.deadline
    return deadline is not None and ctx.now >= deadline.due


@guard("no_evidence", "the buyer presented no evidence", "the buyer has presented evidence", defensive=True)
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
    "no_return_shipment",
    "no return shipment is recorded yet",
    "a return shipment is recorded already: the goods are on their way back",
)
def no_return_shipment(ctx: Context) -> bool:
    return ctx.current.shipment is None


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
    name="evidence_due",
    trigger="evidence_deadline",
    window=timedelta(days=7),
    description="the buyer must present evidence (FAQ: seven days)",
)
RESPONSE_DUE = DeadlineRule(
    name="response_due",
    trigger="response_deadline",
    window=timedelta(days=5),
    description="the party asked must respond",
)
RETURN_DUE = DeadlineRule(
    name="return_due",
    trigger="return_deadline",
    window=timedelta(days=10),
    description="the buyer must ship the return",
)
RECEIPT_DUE = DeadlineRule(
    name="receipt_due",
    trigger="receipt_deadline",
    window=timedelta(days=15),
    description="the supplier must confirm receiving the return",
)

STATES = (
    State(
        name="awaiting_evidence",
        title="Awaiting evidence",
        meaning="filed; the buyer must present evidence (order, shipping, delivery, correspondence)",
        deadline=EVIDENCE_DUE,
    ),
    State(
        name="in_mediation",
        title="In mediation",
        meaning="the dispute team mediates; the parties exchange offers; the supplier may appeal",
    ),
    State(
        name="awaiting_buyer_response",
        title="Buyer asked to respond",
        meaning="the dispute team asked the buyer to respond now",
        deadline=RESPONSE_DUE,
    ),
    State(
        name="awaiting_supplier_response",
        title="Supplier asked to respond",
        meaning="the dispute team asked the supplier to respond",
        deadline=RESPONSE_DUE,
    ),
    State(
        name="under_review",
        title="Under review by the team",
        meaning="the supplier appealed, the buyer escalated, or a return went wrong: the dispute team judges",
    ),
    State(
        name="cancellation_pending",
        title="Cancellation being checked",
        meaning="the buyer cancelled the claim after an agreement; the team checks it",
    ),
    State(
        name="awaiting_return",
        title="Awaiting the return",
        meaning="a full refund was agreed or decided: the buyer returns the goods at their own cost",
        deadline=RETURN_DUE,
    ),
    State(
        name="return_in_transit",
        title="Return on its way",
        meaning="the buyer shipped the return with a carrier and tracking number",
        deadline=RECEIPT_DUE,
    ),
    State(
        name="refunded_full",
        title="Refunded in full",
        meaning="full refund paid; the goods are back with the supplier",
        final=True,
        outcome="refund_with_return",
        note="only after a return shipment is recorded",
    ),
    State(
        name="refunded_partial",
        title="Refunded in part",
        meaning="partial refund paid; the buyer keeps the goods",
        final=True,
        outcome="refund_goods_kept",
    ),
    State(
        name="payment_released",
        title="Payment released to the supplier",
        meaning="payment released to the supplier",
        final=True,
        outcome="paid_to_supplier",
    ),
    State(
        name="withdrawn",
        title="Withdrawn by the buyer",
        meaning="the buyer withdrew the claim; payment released to the supplier",
        final=True,
        outcome="paid_to_supplier",
    ),
)

PARTIES = (BUYER, SUPPLIER)
MEDIATING = ("in_mediation", "under_review")

FILE_FIELDS = (
    text("order_id", "the order the claim is about"),
    _party_id("buyer_id", BUYER, "the buyer filing (must be the actor)"),
    _party_id("supplier_id", SUPPLIER, "the supplier of the order"),
    currency("currency", "ISO 4217 code of the order"),
    money("amount", "the order amount, a decimal string"),
    text("reason", "what went wrong, in the buyer's words"),
    choice("resolution", "what the buyer asks for", RESOLUTIONS),
    money("refund_amount", "the partial refund asked (partial_refund only)", required=False),
)
EVIDENCE = (evidence_field(),)
OFFER = (choice("kind", "partial_refund or full_refund", RESOLUTIONS), money("amount", "the refund offered"))
QUESTION = (text("question", "what the dispute team asks"),)
RATIONALE = (text("rationale", "why the team decided so"),)
RESPONSE = (text("message", "the answer", blank_ok=True), evidence_field(required=False))
SHIPMENT = (
    text("carrier", "the carrier", blank_ok=True),
    text("tracking_number", "the carrier's tracking number", blank_ok=True),
    money("shipping_cost", "what the buyer paid for shipping", required=False),
)
NOTE = (text("note", "why", required=False, blank_ok=True),)

TRANSITIONS = (
    Transition(
        trigger="file_claim", sources=(), dest="awaiting_evidence", actors=BUYER,
        description="the buyer files a claim on an order", label="buyer files a claim",
        guards=(files_own_claim, order_amount_positive, buyer_is_not_supplier, requested_refund_valid,
                no_open_claim_on_order),
        fields=FILE_FIELDS, effect=file_new_claim,
    ),
    Transition(
        trigger="submit_evidence", sources=("awaiting_evidence",), dest="in_mediation", actors=BUYER,
        description="the buyer presents evidence", label="buyer sends evidence",
        guards=(evidence_given, before_deadline), fields=EVIDENCE, effect=add_evidence,
    ),
    Transition(
        trigger="submit_evidence", sources=("in_mediation",), dest="in_mediation", actors=PARTIES,
        description="a party presents more evidence", label="either party adds evidence",
        guards=(evidence_given, before_deadline), fields=EVIDENCE, effect=add_evidence,
    ),
    Transition(
        trigger="submit_evidence", sources=("under_review",), dest="under_review", actors=PARTIES,
        description="a party presents more evidence", label="either party adds evidence",
        guards=(evidence_given, before_deadline), fields=EVIDENCE, effect=add_evidence,
    ),
    Transition(
        trigger="evidence_deadline", sources=("awaiting_evidence",), dest="payment_released", actors=SYSTEM,
        description="no evidence in time: the claim closes and payment goes to the supplier",
        label="no evidence in time",
        guards=(deadline_reached, no_evidence), on_deadline="evidence_due",
    ),
    Transition(
        trigger="make_offer", sources=("in_mediation",), dest="in_mediation", actors=PARTIES,
        description="a party offers a refund", label="either party offers a refund",
        guards=(no_open_offer, offer_amount_valid), fields=OFFER, effect=add_offer,
    ),
    Transition(
        trigger="accept_offer", sources=("in_mediation",), dest="in_mediation", actors=PARTIES,
        description="the other party accepts the open offer", label="the other party accepts",
        guards=(offer_open, answers_other_party), effect=accept_offer,
    ),
    Transition(
        trigger="reject_offer", sources=("in_mediation",), dest="in_mediation", actors=PARTIES,
        description="the other party rejects the open offer", label="the other party rejects",
        guards=(offer_open, answers_other_party), fields=NOTE, effect=reject_offer,
    ),
    Transition(
        trigger="cancel_claim", sources=("in_mediation",), dest="cancellation_pending", actors=BUYER,
        description="both agreed: the buyer cancels the claim for the team to check",
        label="buyer cancels after an agreement",
        guards=(agreement_exists,),
    ),
    Transition(
        trigger="approve_cancellation", sources=("cancellation_pending",), dest="refunded_partial", actors=AGENT,
        description="the team approves the agreed partial refund", label="team approves: partial refund",
        guards=(agreement_is_partial,), effect=refund_agreement,
    ),
    Transition(
        trigger="approve_cancellation", sources=("cancellation_pending",), dest="awaiting_return", actors=AGENT,
        description="the team approves the agreed full refund: the goods go back first",
        label="team approves: goods go back",
        guards=(agreement_is_full,),
    ),
    Transition(
        trigger="reject_cancellation", sources=("cancellation_pending",), dest="in_mediation", actors=AGENT,
        description="the team finds the agreement does not hold", label="team rejects the cancellation",
        fields=(text("reason", "why"),), effect=void_agreement,
    ),
    Transition(
        trigger="request_buyer_response", sources=MEDIATING, dest="awaiting_buyer_response", actors=AGENT,
        description="the team asks the buyer to respond now", label="team asks the buyer",
        fields=QUESTION,
    ),
    Transition(
        trigger="request_supplier_response", sources=MEDIATING, dest="awaiting_supplier_response", actors=AGENT,
        description="the team asks the supplier to respond", label="team asks the supplier",
        fields=QUESTION,
    ),
    Transition(
        trigger="respond", sources=("awaiting_buyer_response",), dest="in_mediation", actors=BUYER,
        description="the buyer responds", label="buyer responds",
        guards=(message_given, before_deadline), fields=RESPONSE, effect=add_evidence,
    ),
    Transition(
        trigger="respond", sources=("awaiting_supplier_response",), dest="in_mediation", actors=SUPPLIER,
        description="the supplier responds", label="supplier responds",
        guards=(message_given, before_deadline), fields=RESPONSE, effect=add_evidence,
    ),
    Transition(
        trigger="response_deadline", sources=("awaiting_buyer_response",), dest="payment_released", actors=SYSTEM,
        description="the buyer did not respond in time", label="buyer did not respond in time",
        guards=(deadline_reached,), on_deadline="response_due",
    ),
    Transition(
        trigger="response_deadline", sources=("awaiting_supplier_response",), dest="awaiting_return", actors=SYSTEM,
        description="the supplier did not respond in time: the full refund asked goes ahead",
        label="supplier silent: full refund goes ahead",
        guards=(deadline_reached, buyer_asked_full), on_deadline="response_due",
    ),
    Transition(
        trigger="response_deadline", sources=("awaiting_supplier_response",), dest="refunded_partial", actors=SYSTEM,
        description="the supplier did not respond in time: the partial refund asked is paid",
        label="supplier silent: partial refund paid",
        guards=(deadline_reached, buyer_asked_partial), effect=refund_requested, on_deadline="response_due",
    ),
    Transition(
        trigger="appeal", sources=("in_mediation",), dest="under_review", actors=SUPPLIER,
        description="the supplier appeals with evidence", label="supplier appeals",
        guards=(evidence_given,), fields=EVIDENCE, effect=add_evidence,
    ),
    Transition(
        trigger="escalate", sources=("in_mediation",), dest="under_review", actors=BUYER,
        description="the buyer asks the team to judge", label="buyer escalates",
        fields=NOTE,
    ),
    Transition(
        trigger="decide_full_refund", sources=MEDIATING, dest="awaiting_return", actors=AGENT,
        description="the team decides a full refund: the goods go back first", label="team decides a full refund",
        guards=(no_return_shipment,), fields=RATIONALE,
    ),
    Transition(
        trigger="decide_full_refund", sources=("under_review",), dest="refunded_full", actors=AGENT,
        description="the team decides a full refund on the return already shipped (lost, damaged, or never confirmed)",
        label="team refunds on the shipped return",
        guards=(return_shipment_recorded,), fields=RATIONALE, effect=refund_order_amount,
    ),
    Transition(
        trigger="decide_partial_refund", sources=MEDIATING, dest="refunded_partial", actors=AGENT,
        description="the team decides a partial refund", label="team decides a partial refund",
        guards=(decided_amount_in_range,), fields=(money("amount", "the refund decided"), *RATIONALE),
        effect=refund_decided,
    ),
    Transition(
        trigger="decide_for_supplier", sources=MEDIATING, dest="payment_released", actors=AGENT,
        description="the team decides for the supplier", label="team decides for the supplier",
        fields=RATIONALE,
    ),
    Transition(
        trigger="confirm_return_address", sources=("awaiting_return",), dest="awaiting_return", actors=SUPPLIER,
        description="the supplier confirms where the goods go back", label="supplier confirms the return address",
        fields=(text("address", "the return address"),), effect=record_address,
    ),
    Transition(
        trigger="ship_return", sources=("awaiting_return",), dest="return_in_transit", actors=BUYER,
        description="the buyer ships the goods back", label="buyer ships the return",
        guards=(return_address_confirmed, shipment_given, before_deadline), fields=SHIPMENT, effect=record_shipment,
    ),
    Transition(
        trigger="return_deadline", sources=("awaiting_return",), dest="payment_released", actors=SYSTEM,
        description="no return shipped in time: payment goes to the supplier", label="no return shipped in time",
        guards=(deadline_reached,), on_deadline="return_due",
    ),
    Transition(
        trigger="confirm_return_received", sources=("return_in_transit",), dest="refunded_full", actors=SUPPLIER,
        description="the supplier has the goods back: the full refund is paid", label="supplier confirms receipt",
        guards=(return_shipment_recorded,), effect=refund_order_amount,
    ),
    Transition(
        trigger="report_return_problem", sources=("return_in_transit",), dest="under_review", actors=SUPPLIER,
        description="the supplier reports a problem with the return", label="supplier reports a return problem",
        guards=(problem_described,), fields=(text("description", "what is wrong", blank_ok=True), *EVIDENCE),
        effect=add_evidence,
    ),
    Transition(
        trigger="receipt_deadline", sources=("return_in_transit",), dest="under_review", actors=SYSTEM,
        description="the supplier did not confirm receipt in time: the team reviews",
        label="receipt not confirmed in time",
        guards=(deadline_reached,), on_deadline="receipt_due",
    ),
    Transition(
        trigger="withdraw",
        sources=("awaiting_evidence", "in_mediation", "awaiting_buyer_response", "awaiting_supplier_response"),
        dest="withdrawn", actors=BUYER,
        description="the buyer withdraws the claim", label="buyer withdraws",
        fields=(text("reason", "why", required=False, blank_ok=True),),
    ),
)  # fmt: skip

# The detail pictures drawn beside the overview: every arrow of one phase, none merged or folded.
VIEWS = (
    View(
        name="offers",
        title="Offers and agreement",
        triggers=("make_offer", "accept_offer", "reject_offer", "cancel_claim", "approve_cancellation",
                  "reject_cancellation"),
    ),
    View(
        name="return",
        title="Return and refund",
        triggers=("decide_full_refund", "approve_cancellation", "confirm_return_address", "ship_return",
                  "confirm_return_received", "report_return_problem", "decide_partial_refund", "decide_for_supplier"),
    ),
    View(
        name="deadlines",
        title="Deadlines: what the clock does",
        triggers=("evidence_deadline", "response_deadline", "return_deadline", "receipt_deadline"),
    ),
    View(
        name="mediation",
        title="Evidence, questions and appeals",
        triggers=("file_claim", "submit_evidence", "request_buyer_response", "request_supplier_response", "respond",
                  "appeal", "escalate"),
    ),
)  # fmt: skip

# What `claimstate check` fires and proves of this lifecycle, in its own names (see CheckSettings): the moves
# that are the parties' own, which the team never makes (the FAQ: the team mediates and decides), and
# the sample data for each trigger.
_PARTY_MOVES = frozenset({
    "file_claim", "submit_evidence", "make_offer", "accept_offer", "reject_offer", "cancel_claim", "respond",
    "appeal", "escalate", "confirm_return_address", "ship_return", "confirm_return_received",
    "report_return_problem", "withdraw",
})  # fmt: skip

_PROOF = [{"kind": "photo", "description": "the screen is cracked"}]
_FILING = {"order_id": "o-1", "buyer_id": "alice", "supplier_id": "acme", "currency": "USD", "amount": "25.00",
           "reason": "arrived broken"}  # fmt: skip
# Representative data for each trigger, for `claimstate check` to fire (money as {below}, {order} or
# {above} the order amount): valid data and the edge cases the guards judge.
_EXAMPLES: dict[str, tuple[dict[str, object], ...]] = {
    "file_claim": ({**_FILING, "resolution": "full_refund"},
                   {**_FILING, "resolution": "partial_refund", "refund_amount": "10.00"},
                   {**_FILING, "resolution": "partial_refund", "refund_amount": "25.00"},
                   {**_FILING, "resolution": "full_refund", "amount": "0.00"},
                   {**_FILING, "resolution": "full_refund", "supplier_id": "alice"}),
    "submit_evidence": ({"evidence": _PROOF}, {"evidence": []}),
    "make_offer": ({"kind": "partial_refund", "amount": "{below}"}, {"kind": "full_refund", "amount": "{order}"},
                   {"kind": "partial_refund", "amount": "{above}"}),
    "reject_offer": ({"note": "too low"},),
    "reject_cancellation": ({"reason": "the amounts do not match"},),
    "request_buyer_response": ({"question": "can you send a photo?"},),
    "request_supplier_response": ({"question": "what is the tracking number?"},),
    "respond": ({"message": "here it is", "evidence": _PROOF}, {"message": ""}),
    "appeal": ({"evidence": [{"kind": "shipping", "description": "delivered intact, signed"}]},),
    "escalate": ({"note": "no answer"},),
    "decide_full_refund": ({"rationale": "damaged in transit"},),
    "decide_partial_refund": ({"amount": "{below}", "rationale": "cosmetic"}, {"amount": "{order}", "rationale": "x"},
                              {"amount": "{above}", "rationale": "x"}),
    "decide_for_supplier": ({"rationale": "as described"},),
    "confirm_return_address": ({"address": "1 Dock Rd, Shenzhen"},),
    "ship_return": ({"carrier": "DHL", "tracking_number": "JD0001"}, {"carrier": "DHL", "tracking_number": " "}),
    "report_return_problem": ({"description": "box empty", "evidence": _PROOF}, {"description": " ", "evidence": []}),
    "withdraw": ({"reason": "sorted it out"},),
}  # fmt: skip

CLAIM_LIFECYCLE = Definition(
    "buyer claim",
    STATES,
    TRANSITIONS,
    VIEWS,
    check_settings=CheckSettings(
        examples=_EXAMPLES, full_refund="refunded_full", partial_refund="refunded_partial", party_moves=_PARTY_MOVES
    ),
)
