"""The HTTP API (`claimstate.http.create_app`) through its HTTP contract, in process (httpx's ASGI
transport), on both backends: conditional writes (ETag, If-Match), idempotent retries, paging, the event
feed as a client that loses answers follows it, bearer tokens and who may read and fire, bad input refused
as RFC 9457 problems that write nothing, and the OpenAPI document `claimstate model --openapi` writes.

Each test runs on its own event loop (the `api` fixture's); nothing waits on a wall clock except the long
polls of /events, whose waiting is the point.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from changed_lifecycle import INSPECTION
from click.testing import CliRunner
from helpers import EVIDENCE, filing, query
from http_helpers import TOKENS, Api, assert_problem

from claimstate import CLAIM_LIFECYCLE, AsyncClaimService, Engine
from claimstate._feed import lane_of
from claimstate.cli import cli
from claimstate.definition import Definition

JSON = {"Content-Type": "application/json"}
EVIDENCE_DATA = {"evidence": EVIDENCE}


def nested(depth: int, leaf: Any = "x") -> Any:
    """`leaf` inside `depth` lists."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def state_of(target: str, claim_id: str) -> tuple[Any, ...]:
    """The claim's (version, state) as its row in the database holds them."""
    rows = query(target, f"SELECT version, state FROM claims WHERE id = '{claim_id}'")
    assert len(rows) == 1, rows
    return tuple(rows[0])


def history_rows(target: str, claim_id: str) -> Any:
    return query(target, f"SELECT seq, trigger FROM transitions WHERE claim_id = '{claim_id}' ORDER BY seq")


# --- 1. ETag and If-Match -------------------------------------------------------------------------------


def test_a_fire_on_the_current_etag_applies_and_one_on_a_stale_etag_is_412_writing_nothing(
    api: Api, store_target: str, footprint: Callable[[], dict[str, Any]]
) -> None:
    """If-Match is how a client says "only if nobody changed it since I read it": the ETag it read applies the
    trigger (and the answer carries the next ETag); an ETag someone else's write made stale is refused with
    412 and the versions in the problem (so the client knows to read again), and writes nothing at all."""
    claim_id = api.file()
    read = api.get(f"/claims/{claim_id}", who="alice")
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    fired = api.fire(claim_id, "submit_evidence", EVIDENCE_DATA, headers={"If-Match": read.headers["etag"]})
    assert fired.status_code == 200, fired.text
    assert fired.headers["etag"] == '"2"' and fired.json()["version"] == 2
    assert fired.json()["state"] == "in_mediation"

    before = footprint()
    stale = api.fire(claim_id, "escalate", headers={"If-Match": read.headers["etag"]})
    assert_problem(stale, 412, "concurrent-modification", expected_version=1, actual_version=2, claim_id=claim_id)
    assert "etag" not in stale.headers
    assert footprint() == before
    assert state_of(store_target, claim_id) == (2, "in_mediation")

    reread = api.get(f"/claims/{claim_id}", who="alice")
    assert reread.headers["etag"] == fired.headers["etag"] == '"2"'
    applied = api.fire(claim_id, "escalate", headers={"If-Match": reread.headers["etag"]})
    assert applied.status_code == 200, applied.text
    assert applied.headers["etag"] == '"3"' and state_of(store_target, claim_id) == (3, "under_review")


def test_a_read_whose_if_none_match_is_the_current_etag_is_304(api: Api) -> None:
    """A client that holds the claim's current version reads nothing again (304, the ETag, no body); once
    the claim moves on, the same If-None-Match gets the new claim."""
    claim_id = api.file()
    unchanged = api.get(f"/claims/{claim_id}", who="alice", headers={"If-None-Match": '"1"'})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == '"1"'
    assert api.fire(claim_id, "submit_evidence", EVIDENCE_DATA).status_code == 200
    changed = api.get(f"/claims/{claim_id}", who="alice", headers={"If-None-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["etag"] == '"2"'
    assert changed.json()["claim"]["version"] == 2


@pytest.mark.sqlite_only  # how the header is read: nothing of the backend's
@pytest.mark.parametrize("if_none_match", ['W/"1"', '"7", "1"', '"7",W/"1"', "*"])
def test_if_none_match_compares_weakly_and_takes_a_list_or_a_star(api: Api, if_none_match: str) -> None:
    """RFC 9110 13.1.2: If-None-Match is compared weakly (W/"1" matches "1"), may list several ETags, and
    `*` matches any current claim. Caches and HTTP libraries send these forms; each must answer 304, as the
    plain "1" does, rather than the whole claim again."""
    claim_id = api.file()
    answer = api.get(f"/claims/{claim_id}", who="alice", headers={"If-None-Match": if_none_match})
    assert answer.status_code == 304, (if_none_match, answer.status_code)


# --- 2. Idempotency-Key ---------------------------------------------------------------------------------


def test_a_filing_repeated_under_its_idempotency_key_is_replayed_and_files_nothing_more(
    api: Api, store_target: str, footprint: Callable[[], dict[str, Any]]
) -> None:
    """A client whose answer to POST /claims was lost sends it again under the same Idempotency-Key: it gets
    the first result (200, Idempotent-Replayed: true, the same claim) and no second claim is filed. The same
    key with another body is a client bug: 422, and nothing is written."""
    first = api.post("/claims", who="alice", json=filing(), headers={"Idempotency-Key": "file-1"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    claim_id = first.json()["id"]
    after_first = footprint()

    again = api.post("/claims", who="alice", json=filing(), headers={"Idempotency-Key": "file-1"})
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"] and again.headers["etag"] == '"1"'
    assert footprint() == after_first and after_first["claims"] == 1
    assert history_rows(store_target, claim_id) == [(1, "file_claim")]

    other = api.post("/claims", who="alice", json=filing(amount="26.00"), headers={"Idempotency-Key": "file-1"})
    assert_problem(other, 422, "invalid-input", field="idempotency_key")
    assert footprint() == after_first


def test_a_fire_repeated_under_its_idempotency_key_is_replayed_and_applies_nothing_more(
    api: Api, store_target: str, footprint: Callable[[], dict[str, Any]]
) -> None:
    """The same for a trigger: a retried fire (the very request again, its If-Match included, although the
    first one moved the claim past that version) answers the first result with Idempotent-Replayed: true and
    adds no history row; the key reused for other data or another trigger is 422 and writes nothing."""
    claim_id = api.file()
    headers = {"Idempotency-Key": "evidence-1", "If-Match": '"1"'}
    first = api.fire(claim_id, "submit_evidence", EVIDENCE_DATA, headers=headers)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    after_first = footprint()

    again = api.fire(claim_id, "submit_evidence", EVIDENCE_DATA, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["etag"] == '"2"'
    assert footprint() == after_first
    assert history_rows(store_target, claim_id) == [(1, "file_claim"), (2, "submit_evidence")]

    other_data = {"evidence": [{"kind": "photo", "description": "another photo"}]}
    assert_problem(api.fire(claim_id, "submit_evidence", other_data, headers=headers), 422, "invalid-input",
                   field="idempotency_key")  # fmt: skip
    assert_problem(api.fire(claim_id, "escalate", headers={"Idempotency-Key": "evidence-1"}), 422, "invalid-input",
                   field="idempotency_key")  # fmt: skip
    assert footprint() == after_first


def test_a_quoted_idempotency_key_is_the_same_key_unquoted(api: Api, footprint: Callable[[], dict[str, Any]]) -> None:
    """The IETF draft writes the Idempotency-Key as a quoted string ("abc"); clients send either form, so
    `"abc"` and `abc` are one key, for filing and for firing alike."""
    first = api.post("/claims", who="alice", json=filing(), headers={"Idempotency-Key": '"abc"'})
    assert first.status_code == 201
    plain = api.post("/claims", who="alice", json=filing(), headers={"Idempotency-Key": "abc"})
    assert plain.status_code == 200 and plain.headers["idempotent-replayed"] == "true"
    assert plain.json()["id"] == first.json()["id"]

    claim_id = first.json()["id"]
    fired = api.fire(claim_id, "submit_evidence", EVIDENCE_DATA, headers={"Idempotency-Key": "evidence"})
    assert fired.status_code == 200
    before = footprint()
    quoted = api.fire(claim_id, "submit_evidence", EVIDENCE_DATA, headers={"Idempotency-Key": '"evidence"'})
    assert quoted.status_code == 200 and quoted.headers["idempotent-replayed"] == "true"
    assert footprint() == before and before["transitions"] == 2


# --- 3. 201, 200 and Location ---------------------------------------------------------------------------


def test_a_new_claim_is_201_with_a_location_that_reads_it(api: Api) -> None:
    """POST /claims answers 201 Created with the claim, its ETag and a Location a client can GET the claim
    from; a replay is 200 (nothing was created) with the same Location."""
    filed = api.post("/claims", who="alice", json=filing(), headers={"Idempotency-Key": "k"})
    assert filed.status_code == 201 and filed.headers["etag"] == '"1"'
    claim_id = filed.json()["id"]
    location = filed.headers["location"]
    assert location == f"http://testserver/claims/{claim_id}"
    read = api.get(location, who="alice")
    assert read.status_code == 200
    assert read.json()["claim"] == filed.json() and read.headers["etag"] == '"1"'
    assert [row["trigger"] for row in read.json()["history"]] == ["file_claim"]
    assert any(a["trigger"] == "submit_evidence" and a["allowed"] for a in read.json()["available"])
    replayed = api.post("/claims", who="alice", json=filing(), headers={"Idempotency-Key": "k"})
    assert replayed.status_code == 200 and replayed.headers["location"] == location


# --- 4. Paging ------------------------------------------------------------------------------------------


def pages(api: Api, who: str, **filters: str) -> list[list[dict[str, Any]]]:
    """Every page of GET /claims (2 a page) for `who`, following `next` until it is null."""
    found: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        params = {**filters, "limit": "2", **({} if after is None else {"after": after})}
        page = api.get("/claims", who=who, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"claims", "next"}
        found.append(body["claims"])
        after = body["next"]
        if after is None:
            return found
        assert after == body["claims"][-1]["id"]
        assert len(found) < 10, "next never ends"


def test_listing_pages_through_every_claim_once_and_a_party_lists_only_their_own(api: Api) -> None:
    """Five claims listed 2 at a time come as pages of 2, 2 and 1, following `next` to its null, each claim
    once and in id order; a buyer or supplier listing sees only their own claims, and naming another party
    in the filter is refused (403) rather than quietly answered with nothing."""
    alices = [api.file(who="alice", order_id=f"o-{n}") for n in range(3)]
    bobs = [api.file(who="bob", buyer_id="bob", supplier_id="zeta", order_id=f"o-{n}") for n in range(3, 5)]

    team = pages(api, "kim")
    assert [len(page) for page in team] == [2, 2, 1]
    ids = [claim["id"] for page in team for claim in page]
    assert ids == sorted(alices + bobs) and len(set(ids)) == 5

    alice = [claim for page in pages(api, "alice") for claim in page]
    assert sorted(c["id"] for c in alice) == sorted(alices) and {c["buyer_id"] for c in alice} == {"alice"}
    acme = [claim for page in pages(api, "acme") for claim in page]
    assert sorted(c["id"] for c in acme) == sorted(alices)
    assert [c["id"] for page in pages(api, "kim", buyer="bob") for c in page] == sorted(bobs)
    assert [c["id"] for page in pages(api, "alice", buyer="alice") for c in page] == sorted(alices)

    assert_problem(api.get("/claims", who="alice", params={"buyer": "bob"}), 403, "not-yours")
    assert_problem(api.get("/claims", who="bob", params={"buyer": "alice"}), 403, "not-yours")
    assert_problem(api.get("/claims", who="acme", params={"supplier": "zeta"}), 403, "not-yours")


# --- 5. The event feed ----------------------------------------------------------------------------------


def delivered(answer: httpx.Response) -> list[tuple[str, int]]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"events", "ack"}
    events = body["events"]
    assert body["ack"] == (events[-1]["cursor"] if events else None)
    return [(event["claim_id"], event["seq"]) for event in events]


def every_transition(service: AsyncClaimService, claim_ids: list[str]) -> set[tuple[str, int]]:
    return {(claim_id, row.seq) for claim_id in claim_ids for row in service.sync.history(claim_id)}


def test_events_whose_answer_is_lost_come_again_and_none_is_lost(api: Api, service: AsyncClaimService) -> None:
    """A client following /events can lose any answer (the connection drops, the process dies): until it
    acknowledges, asking again (with the same ack, or none) gives the same events again; acknowledging
    moves on. Followed that way, losing every first answer and a long poll cancelled as it waits, it still
    receives every transition of the history at least once, each claim's in order."""
    claim_ids = [api.file(order_id=f"o-{n}") for n in range(3)]
    for claim_id in claim_ids:
        assert api.fire(claim_id, "submit_evidence", EVIDENCE_DATA).status_code == 200

    def poll(**params: Any) -> httpx.Response:
        return api.get("/events", who="kim", params={"consumer": "payments", "limit": 3, **params})

    received: list[tuple[str, int]] = []
    ack: str | None = None
    for _ in range(20):
        acked = {} if ack is None else {"ack": ack}
        lost = delivered(poll(**acked))  # the answer never reaches the client
        retried = poll(**acked)  # it asks again, the same request
        assert delivered(retried) == lost
        if not lost:
            break
        assert delivered(poll()) == lost  # or without its ack: the same events still
        received += lost
        ack = retried.json()["ack"]
    else:
        pytest.fail("the feed never ran dry")
    assert set(received) == every_transition(service, claim_ids)

    async def poll_cancelled_while_waiting() -> None:
        waiting = asyncio.ensure_future(api.send("GET", "/events", params={"consumer": "payments", "wait": 10}))
        await asyncio.sleep(0.6)  # the poll waits for an event that does not come
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    api.run(poll_cancelled_while_waiting())
    assert api.fire(claim_ids[0], "escalate").status_code == 200
    dropped = delivered(poll())  # delivered, and this answer too is lost
    assert dropped == [(claim_ids[0], 3)]
    again = poll()
    assert delivered(again) == dropped
    received += dropped
    assert delivered(poll(ack=again.json()["ack"])) == []

    everything = every_transition(service, claim_ids)
    assert set(received) == everything and len(everything) == 7
    for claim_id in claim_ids:
        seqs = [seq for c, seq in received if c == claim_id]
        assert seqs == sorted(seqs), (claim_id, seqs)


def test_a_long_poll_with_nothing_to_deliver_answers_an_empty_page_when_its_wait_is_over(api: Api) -> None:
    """wait=1 with nothing new holds the request about a second, then answers an empty page (and no ack),
    rather than at once (a busy loop for the client) or never."""
    started = time.monotonic()
    answer = api.get("/events", params={"consumer": "idle", "wait": "1"})
    took = time.monotonic() - started
    assert delivered(answer) == [] and answer.json() == {"events": [], "ack": None}
    assert 0.9 <= took < 3, took


def test_an_event_fired_while_a_long_poll_waits_is_answered_to_it(api: Api) -> None:
    """The point of the long poll: an event fired while a poll waits is answered to that poll, soon after it
    happens, not at the end of the wait."""
    claim_id = api.file()
    first = api.get("/events", params={"consumer": "mailer"})
    assert delivered(first) == [(claim_id, 1)]

    async def fire_while_waiting() -> tuple[httpx.Response, float]:
        params = {"consumer": "mailer", "wait": "10", "ack": first.json()["ack"]}
        waiting = asyncio.ensure_future(api.send("GET", "/events", params=params))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        fired = await api.send("POST", f"/claims/{claim_id}/submit_evidence", who="alice", json=EVIDENCE_DATA)
        assert fired.status_code == 200
        started = time.monotonic()
        answer = await waiting
        return answer, time.monotonic() - started

    answer, took = api.run(fire_while_waiting())
    assert delivered(answer) == [(claim_id, 2)]
    assert took < 3, took


def test_clients_of_one_consumer_that_name_themselves_get_lanes_of_their_own(api: Api) -> None:
    """Several clients reading one consumer name themselves with worker=: while one holds a lane's events
    unacknowledged, another gets another lane's, never the same events, and asking again it still does
    not get the first one's."""
    claim_ids: list[str] = []
    while len({lane_of(claim_id) for claim_id in claim_ids}) < 2:
        claim_ids.append(api.file(order_id=f"o-{len(claim_ids)}"))

    def poll(worker: str) -> list[tuple[str, int]]:
        return delivered(api.get("/events", params={"consumer": "mail", "worker": worker}))

    first, second = poll("a"), poll("b")
    assert first and second
    assert {lane_of(c) for c, _ in first}.isdisjoint({lane_of(c) for c, _ in second})
    assert poll("b") == second and poll("a") == first


# --- 6. Bearer tokens and who may do what --------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token-anyone-was-given", "Bearer ", "Basic YWxpY2U6c2VjcmV0", TOKENS["kim"]],
    ids=["none", "unknown", "empty", "basic", "no-scheme"],
)
def test_a_request_without_a_known_bearer_token_is_401_and_writes_nothing(
    api: Api, authorization: str | None, footprint: Callable[[], dict[str, Any]]
) -> None:
    """Every route but /healthz and /openapi.json needs a bearer token the server was given: without one
    (or with another scheme, or a token it does not know) the answer is 401 with WWW-Authenticate: Bearer,
    nothing is read for the caller and nothing is written."""
    claim_id = api.file()
    headers = {} if authorization is None else {"Authorization": authorization}
    before = footprint()
    for method, url, body in [
        ("GET", "/claims", None),
        ("POST", "/claims", filing(order_id="o-2")),
        ("GET", f"/claims/{claim_id}", None),
        ("GET", f"/claims/{claim_id}/diagram?format=mermaid", None),
        ("POST", f"/claims/{claim_id}/submit_evidence", EVIDENCE_DATA),
        ("GET", "/events?consumer=x", None),
    ]:
        answer = api.run(api.send(method, url, who=None, headers=headers, json=body))
        assert_problem(answer, 401, "not-authenticated")
        assert answer.headers["www-authenticate"] == "Bearer", url
    assert footprint() == before
    assert api.get("/healthz", who=None).json() == {"status": "ok"}
    assert api.get("/openapi.json", who=None).status_code == 200


def test_a_buyer_may_neither_read_nor_fire_on_another_buyers_claim(
    api: Api, footprint: Callable[[], dict[str, Any]]
) -> None:
    """A buyer's token reaches only that buyer's claims: bob reading alice's claim, its diagram, or firing a
    trigger a buyer may fire on it is refused 403 and writes nothing; a supplier not party to it likewise."""
    claim_id = api.file()
    before = footprint()
    for who in ("bob", "zeta"):
        assert_problem(api.get(f"/claims/{claim_id}", who=who), 403, "not-yours")
        assert_problem(api.get(f"/claims/{claim_id}/diagram?format=dot", who=who), 403, "not-yours")
    for trigger, data in (("submit_evidence", EVIDENCE_DATA), ("withdraw", {"reason": "x"})):
        for headers in (None, {"If-Match": '"7"'}):  # a stale If-Match would tell the claim's version
            body = assert_problem(api.fire(claim_id, trigger, data, who="bob", headers=headers), 403, "not-yours")
            told = json.dumps(body)
            assert "alice" not in told and "awaiting_evidence" not in told and "actual_version" not in told
    assert footprint() == before
    assert api.get(f"/claims/{claim_id}", who="alice").status_code == 200
    assert api.get(f"/claims/{claim_id}", who="acme").status_code == 200


def test_a_claims_answer_is_the_callers_own_and_a_405_names_every_method(api: Api) -> None:
    """A read is kept privately by caches and revalidated (what the caller may do turns with the clock); a
    method a route does not take is refused with the ones it does."""
    claim_id = api.file()
    read = api.get(f"/claims/{claim_id}", who="alice")
    assert read.headers["cache-control"] == "private, no-cache" and read.headers["vary"] == "Authorization"
    refused = api.run(api.send("PUT", "/claims"))
    assert_problem(refused, 405, "method-not-allowed")
    assert set(refused.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_the_teams_decisions_are_refused_to_a_partys_token_with_the_reasons_as_data(
    api: Api, footprint: Callable[[], dict[str, Any]]
) -> None:
    """decide_full_refund is the team's (agent): fired with the claim's own buyer's or supplier's token it is
    403 transition-refused, its reasons as data (kind permission, a code) a client can act on, and nothing is
    written; the agent's token applies it."""
    claim_id = api.file()
    assert api.fire(claim_id, "submit_evidence", EVIDENCE_DATA).status_code == 200
    before = footprint()
    for who in ("alice", "acme"):
        refused = api.fire(claim_id, "decide_full_refund", {"rationale": "damaged"}, who=who)
        body = assert_problem(refused, 403, "transition-refused", trigger="decide_full_refund",
                              state="in_mediation", claim_id=claim_id)  # fmt: skip
        assert body["reasons"] and {r["kind"] for r in body["reasons"]} == {"permission"}, body
        assert all(isinstance(r["code"], str) and r["code"] and r["message"] for r in body["reasons"])
    assert footprint() == before
    decided = api.fire(claim_id, "decide_full_refund", {"rationale": "damaged"}, who="kim")
    assert decided.status_code == 200 and decided.json()["state"] == "awaiting_return"


def test_the_event_feed_is_refused_to_buyers_and_suppliers(api: Api) -> None:
    """/events holds every claim's events: a buyer's or supplier's token is refused 403, whatever consumer
    it names; the team (agent) and services (system) read it."""
    api.file()
    for who in ("alice", "acme"):
        assert_problem(api.get("/events", who=who, params={"consumer": "mine"}), 403, "not-yours")
    assert delivered(api.get("/events", who="kim", params={"consumer": "team"}))
    assert delivered(api.get("/events", who="bot", params={"consumer": "service"}))


# --- 7. Bad input: a problem, and nothing written -------------------------------------------------------

NOT_JSON = {"Content-Type": "text/plain"}
BAD_REQUESTS: dict[str, tuple[str, str, dict[str, Any], int, str, str | None]] = {
    # name: (method, path ({claim} is an existing claim), request options, status, problem kind, field)
    "malformed JSON filed": ("POST", "/claims", {"content": b'{"order_id": "o-2",', "headers": JSON},
                             400, "invalid-input", "body"),
    "malformed JSON fired": ("POST", "/claims/{claim}/submit_evidence", {"content": b"{evidence: 1}", "headers": JSON},
                             400, "invalid-input", "body"),
    "not UTF-8": ("POST", "/claims/{claim}/escalate", {"content": b'{"note": "\xff"}', "headers": JSON},
                  400, "invalid-input", "body"),
    "text/plain filed": ("POST", "/claims", {"content": json.dumps(filing(order_id="o-2")).encode(),
                                             "headers": NOT_JSON}, 415, "not-json", None),
    "text/plain fired": ("POST", "/claims/{claim}/submit_evidence", {"content": json.dumps(EVIDENCE_DATA).encode(),
                                                                     "headers": NOT_JSON}, 415, "not-json", None),
    "no content type": ("POST", "/claims/{claim}/submit_evidence", {"content": json.dumps(EVIDENCE_DATA).encode()},
                        415, "not-json", None),
    "100 nested lists filed": ("POST", "/claims", {"json": filing(order_id="o-2", reason=nested(100))},
                               400, "invalid-input", "data"),
    "100 nested lists fired": ("POST", "/claims/{claim}/submit_evidence",
                               {"json": {"evidence": [{"kind": "photo", "description": nested(100)}]}},
                               400, "invalid-input", "data"),
    "nested past the parser": ("POST", "/claims/{claim}/escalate",
                               {"content": b'{"note": ' + b"[" * 5000 + b"]" * 5000 + b"}", "headers": JSON},
                               400, "invalid-input", "body"),
    "array filed": ("POST", "/claims", {"json": [filing(order_id="o-2")]}, 400, "invalid-input", "body"),
    "array fired": ("POST", "/claims/{claim}/submit_evidence", {"json": [EVIDENCE_DATA]}, 400, "invalid-input", "body"),
    "string fired": ("POST", "/claims/{claim}/escalate", {"json": "no"}, 400, "invalid-input", "body"),
    "no body filed": ("POST", "/claims", {}, 400, "invalid-input", "body"),
    "over 1 MB": ("POST", "/claims/{claim}/escalate", {"content": b" " * 1_000_001, "headers": JSON},
                  413, "too-large", None),
    "not in this state": ("POST", "/claims/{claim}/accept_offer", {"json": {}}, 409, "transition-refused", None),
    "unknown trigger": ("POST", "/claims/{claim}/refund_everything", {"json": {}}, 404, "no-such-trigger", None),
    "filing trigger fired": ("POST", "/claims/{claim}/file_claim", {"json": filing(order_id="o-2")},
                             404, "no-such-trigger", None),
    "unknown claim fired": ("POST", "/claims/01NOSUCHCLAIM000000000000/submit_evidence", {"json": EVIDENCE_DATA},
                            404, "claim-not-found", None),
    "unknown claim read": ("GET", "/claims/01NOSUCHCLAIM000000000000", {}, 404, "claim-not-found", None),
    "If-Match abc": ("POST", "/claims/{claim}/submit_evidence", {"json": EVIDENCE_DATA, "headers": {"If-Match": "abc"}},
                     400, "invalid-input", "If-Match"),
    "limit=0": ("GET", "/claims?limit=0", {}, 400, "invalid-input", "limit"),
    "limit=abc": ("GET", "/claims?limit=abc", {}, 400, "invalid-input", "limit"),
    "limit=501": ("GET", "/claims?limit=501", {}, 400, "invalid-input", "limit"),
    "events limit=0": ("GET", "/events?consumer=c&limit=0", {}, 400, "invalid-input", "limit"),
    "events limit=abc": ("GET", "/events?consumer=c&limit=abc", {}, 400, "invalid-input", "limit"),
    "wait=-1": ("GET", "/events?consumer=c&wait=-1", {}, 400, "invalid-input", "wait"),
    "wait=abc": ("GET", "/events?consumer=c&wait=abc", {}, 400, "invalid-input", "wait"),
    "wait=31": ("GET", "/events?consumer=c&wait=31", {}, 400, "invalid-input", "wait"),
    "no consumer": ("GET", "/events", {}, 400, "invalid-input", "consumer"),
    "no such route": ("GET", "/claimz", {}, 404, "no-such-route", None),
    "method not allowed": ("DELETE", "/claims/{claim}", {}, 405, "method-not-allowed", None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_problem_and_writes_nothing(
    make_shared_api: Callable[..., Api], shared_claim: str, case: str, shared_footprint: Callable[[], dict[str, Any]]
) -> None:
    """Each malformed request (its body, its headers, its parameters, its route) is answered with an RFC
    9457 problem of its own status and kind, naming the `field` at fault where there is one, and leaves the
    store exactly as it was: no claim, history row or event added, no version moved. The events feed's
    refusals take effect before anything is leased or acknowledged."""
    method, path, options, status, kind, field = BAD_REQUESTS[case]
    api = make_shared_api()
    before = shared_footprint()
    who = "kim" if path.startswith("/events") else "alice"
    answer = api.run(api.send(method, path.format(claim=shared_claim), who=who, **options))
    body = assert_problem(answer, status, kind)
    if field is not None:
        assert body["field"] == field, body
    assert shared_footprint() == before


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
@pytest.mark.parametrize("path", ["/claims", "/claims/{claim}/submit_evidence"])
def test_a_body_over_the_limit_is_413_and_writes_nothing(
    make_shared_api: Callable[..., Api],
    shared_claim: str,
    path: str,
    streamed: bool,
    shared_footprint: Callable[[], dict[str, Any]],
) -> None:
    """A body larger than create_app's max_body is refused 413 before it is parsed, whether its size is
    declared (Content-Length) or it comes in chunks with no length; a body of exactly max_body bytes is
    read (and judged on its data)."""
    api = make_shared_api(max_body=512)
    before = shared_footprint()
    raw = json.dumps({"evidence": [{"kind": "photo", "description": "x" * 600}]}).encode()

    async def chunks() -> Any:
        for start in range(0, len(raw), 100):
            yield raw[start : start + 100]

    answer = api.post(path.format(claim=shared_claim), who="alice", content=chunks() if streamed else raw,
                      headers=JSON)  # fmt: skip
    assert_problem(answer, 413, "too-large")
    assert shared_footprint() == before

    exact = json.dumps({"evidence": EVIDENCE, "note": ""}).encode()
    exact = exact.replace(b'"note": ""', b'"note": "' + b"x" * (512 - len(exact)) + b'"')
    assert len(exact) == 512
    judged = api.post(f"/claims/{shared_claim}/submit_evidence", who="alice", content=exact, headers=JSON)
    assert_problem(judged, 400, "invalid-input", field="data")  # read, and refused for its unknown field
    assert shared_footprint() == before


# --- 8. The OpenAPI document ----------------------------------------------------------------------------


def written_openapi(tmp_path: Path, *definition: str) -> dict[str, Any]:
    """The document `claimstate [--definition X] model --openapi FILE` writes."""
    path = tmp_path / f"openapi-{len(list(tmp_path.iterdir()))}.json"
    result = CliRunner().invoke(cli, [*definition, "model", "--openapi", str(path)], prog_name="claimstate")
    assert result.exit_code == 0, result.output
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def trigger_routes(document: dict[str, Any]) -> set[str]:
    return {path for path in document["paths"] if path.startswith("/claims/{claim_id}/")} - {
        "/claims/{claim_id}/diagram"
    }


def expected_routes(definition: Definition) -> set[str]:
    return {f"/claims/{{claim_id}}/{t}" for t in definition.triggers if t != definition.creation.trigger}


def test_the_openapi_document_has_a_route_per_trigger_and_the_definitions_fingerprint_as_version(
    tmp_path: Path,
) -> None:
    """`claimstate model --openapi FILE` documents every trigger but the filing one as POST
    /claims/{claim_id}/<trigger> (filing is POST /claims), and its version is the definition's fingerprint,
    so a client generated from it can tell which lifecycle it was made for: a changed definition
    (--definition changed_lifecycle:INSPECTION) gives another document, with its routes and fingerprint."""
    built_in = written_openapi(tmp_path)
    assert built_in["openapi"].startswith("3.1")
    assert trigger_routes(built_in) == expected_routes(CLAIM_LIFECYCLE)
    assert all(set(built_in["paths"][route]) == {"post"} for route in trigger_routes(built_in))
    assert "/claims/{claim_id}/file_claim" not in built_in["paths"] and "post" in built_in["paths"]["/claims"]
    model = CliRunner().invoke(cli, ["--json", "model"], prog_name="claimstate")
    assert built_in["info"]["version"] == json.loads(model.stdout)["fingerprint"] == Engine().fingerprint

    changed = written_openapi(tmp_path, "--definition", "changed_lifecycle:INSPECTION")
    assert trigger_routes(changed) == expected_routes(INSPECTION)
    assert (
        "/claims/{claim_id}/cancel_claim" in built_in["paths"]
        and "/claims/{claim_id}/cancel_claim" not in changed["paths"]
    )
    assert changed["info"]["version"] == Engine(INSPECTION).fingerprint != built_in["info"]["version"]
    assert changed != built_in


@pytest.mark.sqlite_only  # the document is the definition's: nothing of the backend's
def test_the_served_openapi_document_is_the_one_the_command_writes(api: Api, tmp_path: Path) -> None:
    """GET /openapi.json (no token needed) answers the document `claimstate model --openapi` writes for the
    same definition: a client may be generated from either."""
    served = api.get("/openapi.json", who=None)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/json")
    assert served.json() == written_openapi(tmp_path)
