"""Idempotent requests: a request's fingerprint, and the first result of one repeated under its key."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from typing import Any

from claimstate._actor import Actor
from claimstate._engine import Fired
from claimstate._errors import InvalidInput
from claimstate._inputs import plain_data
from claimstate._service.core import Core
from claimstate._service.definitions import engine_of
from claimstate._service.history import damaged, record
from claimstate._verify import replay

_REQUEST = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # a request's fingerprint; fixed: keys are stored


def digest(trigger: str, actor: Actor, data: Mapping[str, Any]) -> str:
    """A fingerprint of a request, to tell a retry from a different request under the same key.

    An item given as null counts as not given, as it does for the engine.
    """
    given = {k: v for k, v in data.items() if v is not None}
    try:
        text = _REQUEST.encode([trigger, str(actor), given])
    except (TypeError, ValueError, RecursionError):
        plain_data(given, "data", max_text=sys.maxsize)  # names what is wrong
        raise InvalidInput("the data must be plain JSON values", field="data") from None
    return hashlib.sha256(text.encode()).hexdigest()


def retried(core: Core, claim_id: str | None, key: str | None, request: str | None) -> Fired | None:
    """The first result of a request repeated under its idempotency key (`replayed` True); None when the key
    is new.

    The same key for a different request is refused. `claim_id` None: the key of a filing.
    """
    earlier = None if key is None else core.store.claims.keyed(claim_id, key)
    if earlier is None:
        return None
    first_id, seq, first_digest = earlier
    if first_digest != request:
        reused = InvalidInput(
            f"idempotency key {key!r} was already used for a different request", field="idempotency_key"
        )
        reused.status = 422  # the key is well-formed; the request does not match the one it was first used for
        raise reused
    rows = core.store.claims.history(first_id)[:seq]
    with damaged(core, first_id):
        *_, last = replay(engine_of(core), first_id, rows)
        return Fired(last.claim, record(rows[-1]), replayed=True)
