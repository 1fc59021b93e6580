"""The claim and the values it is made of: immutable, so a refused trigger cannot have touched one.

Each value converts to and from plain JSON-ready dicts with stable keys: the store keeps them as
JSON, the CLI prints them, and a refactor of these classes does not change what is on disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from claimstate._actor import Actor
from claimstate._money import Money
from claimstate._time import from_iso, to_iso

JSONDict = dict[str, Any]


def _money_or_none(value: object, currency: str) -> Money | None:
    return None if value is None else Money.parse(value, currency)


@attrs.frozen
class Evidence:
    """A document or statement a party presented: order, shipping, delivery, correspondence, photo, other."""

    by: str
    kind: str
    description: str
    at: datetime
    document: str | None = None

    def to_dict(self) -> JSONDict:
        return {
            "by": self.by,
            "kind": self.kind,
            "description": self.description,
            "document": self.document,
            "at": to_iso(self.at),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        return cls(d["by"], d["kind"], d["description"], from_iso(d["at"]), d.get("document"))


OPEN, ACCEPTED, REJECTED, VOIDED, SUPERSEDED = "open", "accepted", "rejected", "voided", "superseded"


@attrs.frozen
class Offer:
    """A refund offer one party made to the other; `status` is one of the five names above."""

    number: int
    by: str
    kind: str
    amount: Money
    at: datetime
    status: str = OPEN

    def to_dict(self) -> JSONDict:
        return {
            "number": self.number,
            "by": self.by,
            "kind": self.kind,
            "amount": str(self.amount),
            "status": self.status,
            "at": to_iso(self.at),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], currency: str) -> Offer:
        return cls(d["number"], d["by"], d["kind"], Money.parse(d["amount"], currency), from_iso(d["at"]), d["status"])


@attrs.frozen
class ReturnShipment:
    """The buyer's return of the goods: carrier and tracking number, shipped at the buyer's cost."""

    carrier: str
    tracking_number: str
    shipped_at: datetime
    shipping_cost: Money | None = None

    def to_dict(self) -> JSONDict:
        return {
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "shipping_cost": None if self.shipping_cost is None else str(self.shipping_cost),
            "shipped_at": to_iso(self.shipped_at),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], currency: str) -> ReturnShipment:
        return cls(
            d["carrier"],
            d["tracking_number"],
            from_iso(d["shipped_at"]),
            _money_or_none(d.get("shipping_cost"), currency),
        )


@attrs.frozen
class Deadline:
    """A due time and the trigger the clock fires then, set on entering a state that has one."""

    name: str
    trigger: str
    due: datetime


@attrs.frozen
class Claim:
    """A buyer's claim on one order, as of one `version` (which grows by one per applied transition)."""

    id: str
    order_id: str
    buyer_id: str
    supplier_id: str
    amount: Money
    reason: str
    resolution: str
    refund_amount: Money | None
    state: str
    version: int
    filed_at: datetime
    updated_at: datetime
    evidence: tuple[Evidence, ...] = ()
    offers: tuple[Offer, ...] = ()
    return_address: str | None = None
    shipment: ReturnShipment | None = None
    deadline: Deadline | None = None
    refund: Money | None = None

    @property
    def open_offer(self) -> Offer | None:
        """The offer awaiting an answer, if any (at most one is open at a time)."""
        return next((o for o in self.offers if o.status == OPEN), None)

    @property
    def agreement(self) -> Offer | None:
        """The offer both parties agreed on, if any."""
        return next((o for o in reversed(self.offers) if o.status == ACCEPTED), None)

    def party_id(self, role: str) -> str | None:
        """The id of this claim's buyer or supplier; None for roles that are not parties."""
        if role == "buyer":
            return self.buyer_id
        return self.supplier_id if role == "supplier" else None

    def is_party(self, actor: Actor) -> bool:
        return self.party_id(actor.role) == actor.id

    def to_dict(self) -> JSONDict:
        """Plain JSON-ready data with stable keys (amounts as decimal strings, times as ISO 8601)."""
        return {
            "id": self.id,
            "state": self.state,
            "version": self.version,
            "order_id": self.order_id,
            "buyer_id": self.buyer_id,
            "supplier_id": self.supplier_id,
            "amount": str(self.amount),
            "currency": self.amount.currency,
            "reason": self.reason,
            "resolution": self.resolution,
            "refund_amount": None if self.refund_amount is None else str(self.refund_amount),
            "filed_at": to_iso(self.filed_at),
            "updated_at": to_iso(self.updated_at),
            "deadline_name": None if self.deadline is None else self.deadline.name,
            "deadline_trigger": None if self.deadline is None else self.deadline.trigger,
            "deadline_at": None if self.deadline is None else to_iso(self.deadline.due),
            "evidence": [e.to_dict() for e in self.evidence],
            "offers": [o.to_dict() for o in self.offers],
            "agreement": None if self.agreement is None else self.agreement.number,
            "return_address": self.return_address,
            "shipment": None if self.shipment is None else self.shipment.to_dict(),
            "refund": None if self.refund is None else str(self.refund),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        """The inverse of `to_dict`."""
        currency = d["currency"]
        deadline = (
            None
            if d.get("deadline_at") is None
            else Deadline(d["deadline_name"], d["deadline_trigger"], from_iso(d["deadline_at"]))
        )
        return cls(
            id=d["id"],
            order_id=d["order_id"],
            buyer_id=d["buyer_id"],
            supplier_id=d["supplier_id"],
            amount=Money.parse(d["amount"], currency),
            reason=d["reason"],
            resolution=d["resolution"],
            refund_amount=_money_or_none(d.get("refund_amount"), currency),
            state=d["state"],
            version=d["version"],
            filed_at=from_iso(d["filed_at"]),
            updated_at=from_iso(d["updated_at"]),
            evidence=tuple(Evidence.from_dict(e) for e in d.get("evidence", ())),
            offers=tuple(Offer.from_dict(o, currency) for o in d.get("offers", ())),
            return_address=d.get("return_address"),
            shipment=None if d.get("shipment") is None else ReturnShipment.from_dict(d["shipment"], currency),
            deadline=deadline,
            refund=_money_or_none(d.get("refund"), currency),
        )


@attrs.frozen
class TransitionRecord:
    """One applied transition, as the append-only history keeps it."""

    claim_id: str
    seq: int
    trigger: str
    source: str | None
    dest: str
    actor: Actor
    data: Mapping[str, Any]
    at: datetime

    def to_dict(self) -> JSONDict:
        return {
            "claim_id": self.claim_id,
            "seq": self.seq,
            "trigger": self.trigger,
            "from_state": self.source,
            "to_state": self.dest,
            "actor": str(self.actor),
            "at": to_iso(self.at),
            "data": dict(self.data),
        }
