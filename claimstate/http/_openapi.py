"""The OpenAPI 3.1 document of the HTTP API, generated from the definition: a route per trigger with its data's
JSON Schema, who may fire it, the refusals it can answer with, and an example.

It imports no web framework: `claimstate model --openapi` writes it without the `http` extra.
"""

from __future__ import annotations

import re
from typing import Any

from claimstate._check.examples import with_amounts
from claimstate._definition import Definition, Policy
from claimstate._engine import REFUSAL_CODES
from claimstate._errors import PROBLEM_TYPES, InvalidInput
from claimstate._feed import LANES
from claimstate._inputs import MAX_ID
from claimstate._money import Money
from claimstate._schema import WHITESPACE, text_schema

PROBLEM = "application/problem+json"
DIAGRAM_TYPES = {"html": "text/html", "svg": "image/svg+xml", "mermaid": "text/plain", "dot": "text/plain",
                 "md": "text/markdown"}  # fmt: skip
MAX_LIMIT = 500  # claims or events in one answer
MAX_WAIT = 30  # seconds a poll of /events may wait for one
MAX_WORKER = 50  # characters: the feed's worker is "http/<actor>/<worker>", within MAX_ID for the longest actor
ETAG = re.compile(r'"([1-9][0-9]{0,17})"')  # a claim's version as its ETag, which If-Match names (or "*")
CURSOR = re.compile(rf"({'|'.join(map(str, range(LANES)))})\.[0-9]{{1,18}}")  # an event's cursor: lane.place


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


_CONTROL = r"\u0000-\u001f\u007f-\u009f"  # Unicode's control characters (Cc)
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}
_ID = _ref("Id")

_RESPONSES = {
    400: "The request is malformed: its body, a header or a parameter (`field` names it)",
    401: "No bearer token, or one that names no one",
    403: "The caller may not do this: it is not theirs, or the lifecycle does not let their role (`reasons`)",
    404: "No such claim, trigger or route",
    409: "The claim's state does not take this trigger, or other writers kept winning the race (retry)",
    412: "The claim is no longer at the version `If-Match` named: read it again, then decide",
    413: "The body is larger than the server takes",
    415: "The body is not JSON (`Content-Type: application/json`)",
    422: "A rule of the lifecycle refuses it now (`reasons`), or the idempotency key was used for another request",
    503: "The database is busy or cannot be used (`retryable` says whether to try again)",
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _RESPONSES[s], "content": {PROBLEM: {"schema": _ref("Problem")}}} for s in statuses}


def _header(description: str, schema: dict[str, Any] | None = None, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema or _TEXT}


_ETAG = _header('The claim\'s version, quoted: `"3"`. Send it back as `If-Match` to fire only on that version.',
                {"type": "string", "pattern": f"^{ETAG.pattern}$"}, required=True)  # fmt: skip
_LOCATION = _header("The claim's URL", required=True)
_REPLAYED = _header("`true` when the answer is the first result of a request repeated under its `Idempotency-Key`",
                    {"type": "string", "enum": ["true"]})  # fmt: skip
_IDEMPOTENCY = {
    "name": "Idempotency-Key", "in": "header", "required": False, "schema": _ID,
    "description": "Repeating a request under the same key returns its first result and applies nothing again;"
                   " the same key with another request is refused (422). Plain, or quoted (`\"abc\"`) as the IETF"
                   " draft writes it.",
}  # fmt: skip
_CLAIM_ID = {"name": "claim_id", "in": "path", "required": True, "schema": _ref("ClaimId")}


def openapi(definition: Definition, policy: Policy | None = None, *, title: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `create_app`'s API for `definition` (under `policy`'s limits)."""
    policy = policy or definition.policy()
    schemas = definition.json_schema(policy)
    creation = definition.creation.trigger
    paths: dict[str, Any] = {
        "/claims": {"post": _filing(definition), "get": _listing(definition, policy)},
        "/claims/{claim_id}": {"get": _reading()},
        "/claims/{claim_id}/diagram": {"get": _diagram()},
    }
    for trigger in definition.triggers:
        if trigger != creation:
            data = schemas["$defs"][trigger]
            paths[f"/claims/{{claim_id}}/{trigger}"] = {"post": _firing(definition, trigger, data)}
    paths["/events"] = {"get": _events()}
    paths["/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document", "security": [],
                                      "responses": {"200": {"description": "The OpenAPI document",
                                                            "content": {"application/json": {"schema": {
                                                                "type": "object"}}}}}}}  # fmt: skip
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Whether the server answers", "security": [],
                                 "responses": {"200": {"description": "It does", "content": {"application/json": {
                                     "schema": _ref("Health")}}}}}}  # fmt: skip
    components = {**_components(definition), **_ids(), **{f"data.{t}": s for t, s in schemas["$defs"].items()}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title or f"claimstate: {definition.name}",
            "version": definition.fingerprint(policy),
            "description": (
                f"Buyer claims under the {definition.name} lifecycle: file one, fire its triggers, read it and its"
                " history, follow the feed of what happened. Every error is an RFC 9457 problem"
                f" (`{PROBLEM}`) whose `type` is `{PROBLEM_TYPES}<kind>`. The version is the fingerprint of the"
                " definition: a changed lifecycle is a changed document."
            ),
        },
        "jsonSchemaDialect": schemas["$schema"],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token the server maps to one actor"}
            },
        },
        "security": [{"bearer": []}],
    }


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": schema}
    if example is not None:
        body["example"] = example
    return {"application/json": body}


def _example(definition: Definition, trigger: str) -> dict[str, Any] | None:
    """The first sample `claimstate check` fires `trigger` with, its amounts set against the first filing's."""
    examples = definition.check_settings.examples
    samples, filings = examples.get(trigger, ()), examples.get(definition.creation.trigger, ())
    if not samples:
        return None
    try:
        return with_amounts(samples[0], Money.parse(filings[0]["amount"], filings[0]["currency"]))
    except (IndexError, KeyError, InvalidInput):  # no filing sample with an amount: no placeholders to fill
        return dict(samples[0])


def _who(definition: Definition, trigger: str) -> tuple[list[str], list[str]]:
    """Who may fire `trigger` (roles), and every refusal code it can give: the engine's own (the claim's state,
    who fires, the limits) and its guards'."""
    transitions = definition.transitions_of(trigger)
    roles = sorted({role for t in transitions for role in t.actors})
    codes = sorted({g.code for t in transitions for g in t.guards} | REFUSAL_CODES)
    return roles, codes


def _filing(definition: Definition) -> dict[str, Any]:
    trigger = definition.creation.trigger
    roles, codes = _who(definition, trigger)
    return {
        "operationId": trigger,
        "summary": definition.creation.description.capitalize(),
        "description": f"Files a claim. Who may: {', '.join(roles)}. Refusals: {', '.join(codes)}.",
        "x-claimstate-actors": roles,
        "x-claimstate-refusals": codes,
        "parameters": [_IDEMPOTENCY],
        "requestBody": {"required": True, "content": _json(_ref(f"data.{trigger}"), _example(definition, trigger))},
        "responses": {
            "201": {"description": "Filed", "headers": {"Location": _LOCATION, "ETag": _ETAG},
                    "content": _json(_ref("Claim"))},
            "200": {"description": "Filed by an earlier request under the same Idempotency-Key",
                    "headers": {"Location": _LOCATION, "ETag": _ETAG, "Idempotent-Replayed": _REPLAYED},
                    "content": _json(_ref("Claim"))},
            **_problems(400, 401, 403, 409, 413, 415, 422, 503),
        },
    }  # fmt: skip


def _firing(definition: Definition, trigger: str, data: dict[str, Any]) -> dict[str, Any]:
    roles, codes = _who(definition, trigger)
    transitions = definition.transitions_of(trigger)
    steps = "; ".join(dict.fromkeys(f"from {', '.join(t.sources)} to {t.dest}" for t in transitions))
    return {
        "operationId": trigger,
        "summary": transitions[0].description.capitalize(),
        "description": (
            f"Fires {trigger} on the claim ({steps}). Who may: {', '.join(roles)}"
            + (" (a buyer or supplier only on their own claim)" if {"buyer", "supplier"} & set(roles) else "")
            + f". Refusals it can give: {', '.join(codes)}."
            + (" Amounts are in the claim's currency, with no more decimals than it has."
               if any(f.in_currency for f in definition.fields(trigger)) else "")
        ),
        "x-claimstate-actors": roles,
        "x-claimstate-refusals": codes,
        "parameters": [
            _CLAIM_ID,
            _IDEMPOTENCY,
            {"name": "If-Match", "in": "header", "required": False,
             "schema": {"type": "string", "pattern": rf"^(\*|{ETAG.pattern})$"},
             "description": 'The version the caller read (its ETag, `"3"`): fired only if the claim is still there'},
        ],
        # No body is the empty object: a trigger whose data has required fields needs one.
        "requestBody": {"required": bool(data.get("required")),
                        "content": _json(_ref(f"data.{trigger}"), _example(definition, trigger))},
        "responses": {
            "200": {"description": "Applied (or, under a repeated Idempotency-Key, applied before)",
                    "headers": {"ETag": _ETAG, "Idempotent-Replayed": _REPLAYED}, "content": _json(_ref("Claim"))},
            **_problems(400, 401, 403, 404, 409, 412, 413, 415, 422, 503),
        },
    }  # fmt: skip


def _reading() -> dict[str, Any]:
    return {
        "operationId": "get_claim",
        "summary": "The claim, its history and what the caller may do now, read at one moment",
        "parameters": [
            _CLAIM_ID,
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": _TEXT,
                "description": 'The ETag the caller holds (`"3"`; or several, or `*`): 304 with no body if the claim'
                " is still at it",
            },
        ],
        "responses": {
            "200": {"description": "The claim", "headers": {"ETag": _ETAG}, "content": _json(_ref("ClaimView"))},
            "304": {"description": "Unchanged since the version `If-None-Match` named", "headers": {"ETag": _ETAG}},
            **_problems(400, 401, 403, 404, 409, 503),
        },
    }


def _listing(definition: Definition, policy: Policy) -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    states = {"type": "string", "enum": [s.name for s in definition.states]}
    value = text_schema(policy.limits.text, blank_ok=True)  # matched against a claim's own field: any text
    return {
        "operationId": "list_claims",
        "summary": "Claims matching every filter given, in the order they were filed, a page at a time",
        "description": "A buyer or supplier sees only their own claims.",
        "parameters": [
            query("state", "In this state", states),
            query("buyer", "Of this buyer", value),
            query("supplier", "Of this supplier", value),
            query("order", "On this order", value),
            query("limit", "At most this many", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
            query("after", "The page after this claim id: the previous page's `next`", _ID),
        ],
        "responses": {
            "200": {"description": "One page", "content": _json(_ref("ClaimPage"))},
            **_problems(400, 401, 403, 503),
        },
    }


def _diagram() -> dict[str, Any]:
    return {
        "operationId": "claim_diagram",
        "summary": "The claim's page: the lifecycle with the path it took, in words and a picture",
        "parameters": [_CLAIM_ID, {"name": "format", "in": "query", "required": False,
                                   "schema": {"type": "string", "enum": list(DIAGRAM_TYPES), "default": "html"}}],
        "responses": {
            "200": {"description": "The page", "content": {t: {"schema": _TEXT} for t in dict.fromkeys(
                DIAGRAM_TYPES.values())}},
            **_problems(400, 401, 403, 404, 503),
        },
    }  # fmt: skip


def _events() -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}

    return {
        "operationId": "events",
        "summary": "The next events a consumer has not acknowledged (long poll), after acknowledging `ack`",
        "description": (
            "At least once, in order per claim. Each answer's events come from one lane and are leased to the"
            " caller's worker: handle them, then ask again with `ack` = the answer's `ack` to acknowledge them and"
            " get the next. Asked again without it, the same events come again (so a dropped answer loses"
            " nothing); not acknowledged within the lease, they go to another worker of the consumer. For the"
            " team and for services (role agent or system)."
        ),
        "parameters": [
            query("consumer", "The consumer's name: each name reads the whole feed once", _ID, required=True),
            query("ack", "The `ack` of the previous answer: acknowledges its events",
                  {"type": "string", "pattern": f"^{CURSOR.pattern}$"}),
            query("limit", "At most this many events", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
            query("wait", "Seconds to wait for an event when there is none", {"type": "number", "minimum": 0,
                                                                            "maximum": MAX_WAIT}),
            query("worker", "Names one of several clients reading one consumer (default: one per actor)",
                  {**_ID, "maxLength": MAX_WORKER}),
        ],
        "responses": {"200": {"description": "The events (none if the wait ran out)",
                              "content": _json(_ref("EventPage"))}, **_problems(400, 401, 403, 503)},
    }  # fmt: skip


def _ids() -> dict[str, Any]:
    """Ids and keys as the service reads them (`identifier`): 1 to MAX_ID characters, each printable, not all
    whitespace. A pattern states all but "printable" (Python's str.isprintable: no character of Unicode's
    other or separator categories but the space), which no pattern can state compactly in both dialects a
    schema meets, so the format `printable` names it. A claim's id in a path holds no `/` besides: the server
    decodes `%2F` before it routes."""

    def text(refused: str, description: str) -> dict[str, Any]:
        pattern = f"^[^{refused}]*[^{refused}{WHITESPACE}][^{refused}]*$"
        return {"type": "string", "minLength": 1, "maxLength": MAX_ID, "format": "printable", "pattern": pattern,
                "description": description}  # fmt: skip

    said = f"1 to {MAX_ID} printable characters (Python's str.isprintable), not all whitespace"
    return {"Id": text(_CONTROL, said), "ClaimId": text(_CONTROL + "/", f"A claim's id: {said}, no /")}


def _components(definition: Definition) -> dict[str, Any]:
    states = {"type": "string", "enum": [s.name for s in definition.states]}
    money = {"type": "string", "description": "A decimal amount in the claim's currency"}
    refusal = {
        "type": "object",
        "required": ["kind", "code", "message"],
        "properties": {
            "kind": {"type": "string", "enum": ["state", "permission", "guard"]},
            "code": _TEXT,
            "message": _TEXT,
        },
    }
    evidence = {
        "type": "object",
        "required": ["by", "kind", "description", "at"],
        "properties": {"by": _TEXT, "kind": _TEXT, "description": _TEXT, "document": _nullable("string"), "at": _TIME},
    }
    offer = {
        "type": "object",
        "required": ["number", "by", "kind", "amount", "status", "at"],
        "properties": {
            "number": {"type": "integer"},
            "by": _TEXT,
            "kind": _TEXT,
            "amount": money,
            "status": _TEXT,
            "at": _TIME,
        },
    }
    shipment = {
        "type": ["object", "null"],
        "required": ["carrier", "tracking_number", "shipped_at"],
        "properties": {
            "carrier": _TEXT,
            "tracking_number": _TEXT,
            "shipping_cost": _nullable("string"),
            "shipped_at": _TIME,
        },
    }
    claim = {
        "type": "object",
        "required": [
            "id",
            "state",
            "version",
            "order_id",
            "buyer_id",
            "supplier_id",
            "amount",
            "currency",
            "filed_at",
            "updated_at",
            "evidence",
            "offers",
        ],
        "properties": {
            "id": _TEXT,
            "state": states,
            "version": {"type": "integer", "minimum": 1},
            "order_id": _TEXT,
            "buyer_id": _TEXT,
            "supplier_id": _TEXT,
            "amount": money,
            "currency": _TEXT,
            "reason": _TEXT,
            "resolution": _nullable("string"),
            "refund_amount": _nullable("string"),
            "filed_at": _TIME,
            "updated_at": _TIME,
            "deadline_name": _nullable("string"),
            "deadline_trigger": _nullable("string"),
            "deadline_at": {"type": ["string", "null"], "format": "date-time"},
            "evidence": {"type": "array", "items": evidence},
            "offers": {"type": "array", "items": offer},
            "agreement": _nullable("integer"),
            "return_address": _nullable("string"),
            "shipment": shipment,
            "refund": _nullable("string"),
        },
    }
    step = {  # one applied transition: a history record, and what an event says of it
        "claim_id": _TEXT,
        "seq": {"type": "integer"},
        "trigger": _TEXT,
        "from_state": _nullable("string"),
        "to_state": _TEXT,
        "actor": _TEXT,
        "at": _TIME,
        "data": {"type": "object"},
    }
    record = {"type": "object", "required": list(step), "properties": step}
    availability = {
        "type": "object",
        "required": ["trigger", "allowed", "reasons", "needs"],
        "properties": {
            "trigger": _TEXT,
            "allowed": {"type": "boolean"},
            "reasons": {"type": "array", "items": _ref("Refusal")},
            "needs": {"type": "array", "items": _TEXT},
        },
    }
    event = {
        "type": "object",
        "required": ["position", "cursor", *step, "claim"],
        "properties": {
            "position": {"type": "integer"},
            "cursor": _TEXT,
            **step,
            "claim": {"type": "object"},
            "entered_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    problem = {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": _TEXT,
            "title": _TEXT,
            "status": {"type": "integer"},
            "detail": _TEXT,
            "instance": _TEXT,
            "error": _TEXT,
            "retryable": {"type": "boolean"},
            "field": _nullable("string"),
            "reasons": {"type": "array", "items": _ref("Refusal")},
        },
    }
    return {
        "Claim": claim,
        "TransitionRecord": record,
        "Availability": availability,
        "Refusal": refusal,
        "ClaimView": {"type": "object", "required": ["claim", "history", "available"], "properties": {
            "claim": _ref("Claim"), "history": {"type": "array", "items": _ref("TransitionRecord")},
            "available": {"type": ["array", "null"], "items": _ref("Availability")}}},
        "ClaimPage": {"type": "object", "required": ["claims", "next"], "properties": {
            "claims": {"type": "array", "items": _ref("Claim")},
            "next": {"type": ["string", "null"], "description": "`after` for the next page; null on the last"}}},
        "Event": event,
        "EventPage": {"type": "object", "required": ["events", "ack"], "properties": {
            "events": {"type": "array", "items": _ref("Event")},
            "ack": {"type": ["string", "null"], "description": "Send as `ack` once these events are handled"}}},
        "Problem": problem,
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    }  # fmt: skip
