"""Who fires a trigger: a role and, for people, an id, parsed from ``role:id`` strings."""

from __future__ import annotations

import functools
import re

import attrs

from claimstate._errors import InvalidInput

BUYER, SUPPLIER, AGENT, SYSTEM = "buyer", "supplier", "agent", "system"
DECIDERS = frozenset({SYSTEM, AGENT})  # the clock and the team: their steps can always end a claim
PEOPLE_ROLES = (BUYER, SUPPLIER, AGENT)
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}"  # a person's id, whole (also in the JSON Schemas)
_ID = re.compile(ID_PATTERN)


@attrs.frozen
class Actor:
    """A party to a claim (``buyer:<id>``, ``supplier:<id>``), a dispute agent, or the deadline clock."""

    role: str
    id: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.role == SYSTEM:
            if self.id is not None:
                raise InvalidInput("the system actor has no id: write 'system'", field="actor")
        elif self.role not in PEOPLE_ROLES:
            raise InvalidInput(
                f"unknown role {self.role!r}; expected one of buyer, supplier, agent, system",
                field="actor",
            )
        elif self.id is None or not _ID.fullmatch(self.id):
            raise InvalidInput(
                f"{self.role} needs an id of letters, digits and . _ @ + - (like {self.role}:alice)",
                field="actor",
            )

    @classmethod
    def parse(cls, text: object) -> Actor:
        """Parse ``buyer:alice``, ``supplier:acme``, ``agent:kim`` or ``system``."""
        if isinstance(text, Actor):
            return text
        if not isinstance(text, str):
            raise InvalidInput(f"expected an actor like 'buyer:alice', not {text!r}", field="actor")
        return _parsed(text)

    def __str__(self) -> str:
        return self.role if self.id is None else f"{self.role}:{self.id}"


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Actor:
    """An actor parsed once per text: the same few actors fire again and again, and an Actor is immutable.
    (A refused text raises, and lru_cache keeps no entry for it.)"""
    role, sep, ident = text.partition(":")
    return Actor(role, ident if sep else None)
