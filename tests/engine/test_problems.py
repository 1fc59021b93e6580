"""Errors a service can route without reading messages: every error class says whether it is `retryable`
and which HTTP `status` it means, `to_problem()` gives an RFC 9457 problem details body, and `Fired.replayed`
tells a replayed idempotent request from a first application (on both stores)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import EVIDENCE, T0, Walker, filing

import claimstate._errors
from claimstate import (
    ClaimNotFound,
    ClaimService,
    ClaimStateError,
    ConcurrentModification,
    DefinitionError,
    DiagramError,
    Engine,
    InvalidInput,
    LifecycleChanged,
    PlanRefused,
    Refusal,
    StorageBusy,
    StorageError,
    TransitionRefused,
    UnreadableClaims,
)

RFC_9457_MEMBERS = {"type", "title", "status", "detail", "instance"}
URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+")
EXTENSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")  # RFC 9457 section 3.2: what extension names should be
ERRORS_PAGE = Path(__file__).parents[2] / "docs" / "reference" / "errors.md"


def every_error_class() -> set[type[ClaimStateError]]:
    """ClaimStateError and every subclass of it that claimstate defines."""
    found: set[type[ClaimStateError]] = set()
    todo: list[type[ClaimStateError]] = [ClaimStateError]
    while todo:
        kind = todo.pop()
        if kind.__module__ == claimstate._errors.__name__ and kind not in found:
            found.add(kind)
            todo.extend(kind.__subclasses__())
    return found


def _name(kind: object) -> str:
    return getattr(kind, "__name__", "?")


def _claim() -> Any:
    return Walker(Engine()).filed()


# One or more instances of every error class, each with the (status, retryable) it must say.
CASES: dict[str, tuple[Callable[[], ClaimStateError], int, bool]] = {
    "base": (lambda: ClaimStateError("something"), 500, False),
    "definition": (lambda: DefinitionError(["state x has no way out", "trigger y is unknown"]), 422, False),
    "invalid_input": (lambda: InvalidInput("must be a number", field="amount"), 400, False),
    "invalid_input_whole": (lambda: InvalidInput("the data must be an object"), 400, False),
    "refused_permission": (
        lambda: TransitionRefused("decide_full_refund", "in_mediation",
                                  [Refusal("permission", "actor_not_permitted", "buyer may not")], claim_id="c-1"),
        403, False,
    ),
    "refused_permissions": (
        lambda: TransitionRefused("accept_offer", "in_mediation", [
            Refusal("permission", "actor_not_permitted", "no"), Refusal("permission", "answers_other_party", "no")]),
        403, False,
    ),
    "refused_state": (
        lambda: TransitionRefused("withdraw", "refunded_full", [Refusal("state", "not_in_state", "closed")]),
        409, False,
    ),
    "refused_guard": (
        lambda: TransitionRefused("accept_offer", "in_mediation", [Refusal("guard", "offer_open", "no offer")]),
        422, False,
    ),
    "refused_permission_and_guard": (
        lambda: TransitionRefused("file_claim", None, [
            Refusal("permission", "files_own_claim", "own name"), Refusal("guard", "buyer_is_not_supplier", "same")]),
        422, False,
    ),
    "refused_no_reason": (lambda: TransitionRefused("withdraw", "in_mediation", []), 409, False),
    "not_found": (lambda: ClaimNotFound("c-404"), 404, False),
    "stale_version": (lambda: ConcurrentModification("c-1", 2, 3), 412, False),
    "stale_version_unknown_actual": (lambda: ConcurrentModification("c-1", 2, None), 412, False),
    "race_exhausted": (
        lambda: ConcurrentModification("c-1", None, None, detail="another writer took the idempotency key first"),
        409, True,
    ),
    "storage": (lambda: StorageError("/x/claims.db is damaged", path="/x/claims.db"), 503, False),
    "storage_connection_lost": (lambda: StorageError("lost the connection", path="db", retryable=True), 503, True),
    "storage_busy": (lambda: StorageBusy("claims.db is locked by another writer", path="claims.db"), 503, True),
    "unreadable": (
        lambda: UnreadableClaims({"c-9": "its details are not JSON"}, claims=(_claim(),), last="c-9", path="c.db"),
        503, False,
    ),
    "lifecycle_changed": (
        lambda: LifecycleChanged("decided elsewhere", definition="ab" * 32, outdated=(), claim_id="c-1"), 409, False,
    ),
    "plan_refused": (lambda: PlanRefused(["state x is not in the new definition"]), 422, False),
    "diagram": (lambda: DiagramError("the rasteriser could not draw it", fmt="png"), 503, False),
}  # fmt: skip


def assert_rfc_9457(problem: dict[str, Any], error: ClaimStateError) -> None:
    """The body has RFC 9457's shape, says what the error says, and round-trips through JSON."""
    assert isinstance(problem["type"], str) and URN.fullmatch(problem["type"]), problem["type"]
    assert problem["type"].startswith("urn:claimstate:problem:")
    assert isinstance(problem["title"], str) and problem["title"]
    assert type(problem["status"]) is int and 400 <= problem["status"] <= 599
    assert isinstance(problem["detail"], str) and problem["detail"] == str(error)
    assert "instance" not in problem  # the service's to give: it knows the request
    extensions = set(problem) - RFC_9457_MEMBERS
    assert all(EXTENSION_NAME.fullmatch(name) for name in extensions), extensions
    assert not {name.lower() for name in extensions} & RFC_9457_MEMBERS
    assert (problem["status"], problem["retryable"], problem["error"]) == (
        error.status,
        error.retryable,
        type(error).__name__,
    )
    assert orjson.loads(orjson.dumps(problem)) == problem


def test_the_cases_cover_every_error_class() -> None:
    """A new error class without a case here fails: every one must route."""
    assert {type(make()) for make, _status, _retryable in CASES.values()} == every_error_class()


@pytest.mark.parametrize("case", list(CASES))
def test_every_error_is_an_rfc_9457_problem_with_its_status_and_retryable(case: str) -> None:
    make, status, retryable = CASES[case]
    error = make()
    assert (error.status, error.retryable) == (status, retryable)
    assert_rfc_9457(error.to_problem(), error)


@pytest.mark.parametrize("kind", sorted(every_error_class(), key=_name), ids=_name)
def test_each_kind_has_its_own_type_and_a_fixed_title(kind: type[ClaimStateError]) -> None:
    """Class attributes, readable before any error is raised; types are distinct per kind."""
    problems = [make().to_problem() for make, _s, _r in CASES.values() if type(make()) is kind]
    assert {(p["type"], p["title"]) for p in problems} == {("urn:claimstate:problem:" + kind.problem, kind.title)}
    assert isinstance(kind.retryable, bool) and isinstance(kind.status, int)
    others = every_error_class() - {kind}
    assert kind.problem not in {other.problem for other in others}


def test_concurrent_modification_keeps_its_dict_and_names_its_detail_race_in_the_problem() -> None:
    """`to_dict` (which the CLI prints) is as it was; the problem body has no second `detail`."""
    error = ConcurrentModification("c-1", None, None, detail="a lost race")
    assert error.to_dict() == {
        "error": "ConcurrentModification",
        "message": str(error),
        "claim_id": "c-1",
        "expected": None,
        "actual": None,
        "detail": "a lost race",
    }
    problem = error.to_problem()
    assert (problem["detail"], problem["race"]) == (str(error), "a lost race")
    assert (problem["expected_version"], problem["actual_version"]) == (None, None)
    stale = ConcurrentModification("c-1", 2, 3).to_problem()
    assert (stale["status"], stale["expected_version"], stale["actual_version"]) == (412, 2, 3)


def test_to_dict_carries_no_routing_attributes() -> None:
    """`status` and `retryable` an instance sets for its case stay out of `to_dict`, as before."""
    for make, _status, _retryable in CASES.values():
        error = make()
        assert not {"status", "retryable"} & set(error.to_dict())


def test_claimstates_fields_are_in_the_problem_as_data() -> None:
    refused = CASES["refused_guard"][0]().to_problem()
    assert refused["reasons"] == [{"kind": "guard", "code": "offer_open", "message": "no offer"}]
    assert (refused["trigger"], refused["state"], refused["claim_id"]) == ("accept_offer", "in_mediation", None)
    assert CASES["invalid_input"][0]().to_problem()["field"] == "amount"
    assert CASES["not_found"][0]().to_problem()["claim_id"] == "c-404"
    unreadable = CASES["unreadable"][0]().to_problem()
    assert (unreadable["unreadable"], unreadable["last"], "claims" in unreadable) == (
        {"c-9": "its details are not JSON"},
        "c-9",
        False,
    )
    assert CASES["definition"][0]().to_problem()["problems"] == ["state x has no way out", "trigger y is unknown"]


def test_an_extension_named_like_an_rfc_member_is_renamed() -> None:
    """Whatever a subclass calls its attributes, the body never holds a second `type`, `title`, ... ."""

    class Odd(ClaimStateError):
        def __init__(self) -> None:
            self.type, self.title_, self.instance = "mine", "x", "i"
            super().__init__("odd")

    problem = Odd().to_problem()
    assert (problem["type"], problem["claimstate_type"], problem["claimstate_instance"]) == (
        "urn:claimstate:problem:claimstate-error",
        "mine",
        "i",
    )
    assert "instance" not in problem


def test_the_engines_refusals_route_by_their_kinds(walker: Walker) -> None:
    """Real refusals: who fires (403), the state (409), a guard (422)."""
    engine, claim, now = walker.engine, walker.filed(), T0

    def refused(call: Callable[[], object]) -> TransitionRefused:
        with pytest.raises(TransitionRefused) as caught:
            call()
        assert_rfc_9457(caught.value.to_problem(), caught.value)
        return caught.value

    other_buyer = refused(lambda: engine.fire(claim, "submit_evidence", "buyer:bob", {"evidence": EVIDENCE}, now))
    assert (other_buyer.status, other_buyer.kinds) == (403, frozenset({"permission"}))
    not_here = refused(lambda: engine.fire(claim, "accept_offer", "buyer:alice", None, now))
    assert (not_here.status, not_here.kinds) == (409, frozenset({"state"}))
    no_evidence = refused(lambda: engine.fire(claim, "submit_evidence", "buyer:alice", {"evidence": []}, now))
    assert (no_evidence.status, no_evidence.kinds) == (422, frozenset({"guard"}))
    in_anothers_name = refused(lambda: engine.file_claim("c-2", "buyer:bob", filing(), now))
    assert (in_anothers_name.status, [r.code for r in in_anothers_name.reasons]) == (403, ["files_own_claim"])
    closed = walker.reach("refunded_full")
    after_close = refused(lambda: engine.fire(closed, "withdraw", "buyer:alice", None, walker.now))
    assert after_close.status == 409
    assert all(not e.retryable for e in (other_buyer, not_here, no_evidence, in_anothers_name, after_close))


def test_the_services_errors_route_per_case(store_target: str) -> None:
    """On both stores: an unknown claim 404, a stale expected version 412, an idempotency key reused for
    another request 422, malformed input 400."""
    with ClaimService(store_target) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, idempotency_key="k", now=T0)
        cases: list[tuple[Callable[[], object], type[ClaimStateError], int]] = [
            (lambda: service.get("c-nowhere"), ClaimNotFound, 404),
            (lambda: service.fire(claim_id, "escalate", "buyer:alice", expected_version=1, now=T0),
             ConcurrentModification, 412),
            (lambda: service.fire(claim_id, "withdraw", "buyer:alice", idempotency_key="k", now=T0), InvalidInput, 422),
            (lambda: service.fire(claim_id, "no_such_trigger", "buyer:alice", now=T0), InvalidInput, 400),
        ]  # fmt: skip
        for call, kind, status in cases:
            with pytest.raises(kind) as caught:
                call()
            assert (caught.value.status, caught.value.retryable) == (status, False)
            assert_rfc_9457(caught.value.to_problem(), caught.value)
        assert service.get(claim_id).version == 2


def test_fired_is_replayed_exactly_for_a_replay(store_target: str) -> None:
    """On both stores: the first application of a keyed file_claim or fire is not replayed; the same
    request again under its key is, and equals the first result; an unkeyed call never is."""
    with ClaimService(store_target) as service:
        filed = service.file_claim(filing(), idempotency_key="file-1", now=T0)
        again = service.file_claim(filing(), idempotency_key="file-1", now=T0)
        assert (filed.replayed, again.replayed, again == filed) == (False, True, True)
        claim_id = filed.claim.id
        evidence = {"evidence": EVIDENCE}
        fired = service.fire(claim_id, "submit_evidence", "buyer:alice", evidence, idempotency_key="ev-1", now=T0)
        repeat = service.fire(claim_id, "submit_evidence", "buyer:alice", evidence, idempotency_key="ev-1", now=T0)
        assert (fired.replayed, repeat.replayed, repeat == fired) == (False, True, True)
        unkeyed = service.fire(claim_id, "escalate", "buyer:alice", now=T0)
        assert unkeyed.replayed is False
        later = service.fire(claim_id, "submit_evidence", "buyer:alice", evidence, idempotency_key="ev-1", now=T0)
        assert (later.replayed, later.claim.version) == (True, 2)  # the first result, though the claim moved on
        other = service.file_claim(filing(order_id="o-2"), now=T0)
        assert other.replayed is False
        assert [r.trigger for r in service.history(claim_id)] == ["file_claim", "submit_evidence", "escalate"]


def test_the_engine_never_replays(walker: Walker) -> None:
    claim = walker.filed()
    fired = walker.engine.fire(claim, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, T0)
    assert fired.replayed is False


def test_the_errors_page_has_every_kind_with_its_type() -> None:
    """docs/reference/errors.md's table names every error class with its problem type."""
    page = ERRORS_PAGE.read_text()
    for kind in every_error_class():
        named = re.compile(rf"\| `{kind.__name__}`( \(a `\w+`\))? \| ")  # the class, and what it is a kind of
        row = next((line for line in page.splitlines() if named.match(line) and "urn:" in line), None)
        assert row is not None, kind.__name__
        assert f"`urn:claimstate:problem:{kind.problem}`" in row, kind.__name__
        assert str(kind.status) in row, kind.__name__
