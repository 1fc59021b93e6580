"""The library's edges: every public constructor and method refuses wrong types, NaN and infinities, huge
numbers, None and odd paths by name (InvalidInput), creating no file and writing nothing; no accepted write
can make a claim unreadable; one unreadable claim does not hide the others; the policy bounds a claim's
history; tick streams its deadlines a page at a time."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from changed_lifecycle import INSPECTION
from click.testing import CliRunner
from helpers import EVIDENCE, T0, Walker, execute, filing, query

from claimstate import (
    CLAIM_LIFECYCLE,
    ClaimService,
    Engine,
    InvalidInput,
    TransitionRefused,
    UnreadableClaims,
    copy_claims,
)
from claimstate.cli import cli
from claimstate.definition import Limits

NAIVE = datetime(2026, 3, 2, 9, 0)
LATER = T0 + timedelta(days=1)  # after every step a Walker takes
LATE = datetime(8999, 12, 31, tzinfo=UTC)  # accepted as a time, but a deadline set then falls in 9000
QUESTION = {"question": "any tracking number?"}
TABLES = ("claims", "transitions", "events", "consumers", "definitions", "meta")


def _rows(target: str) -> dict[str, list[str]]:
    """Every row of claimstate's tables, sorted: compared before and after a refused call."""
    return {table: sorted(map(repr, query(target, f"SELECT * FROM {table}"))) for table in TABLES}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class _BytesPath(os.PathLike[bytes]):
    def __fspath__(self) -> bytes:
        return b"x.db"

    def __repr__(self) -> str:  # the test's id: the same in every process, as pytest-xdist needs
        return "_BytesPath()"


# --- constructors ---------------------------------------------------------------------------------------

_PATHS = [None, 123, 1.5, b"x.db", bytearray(b"x.db"), ["x"], ("x",), {"x": 1}, "", "x\x00.db", _BytesPath()]


@pytest.mark.parametrize("path", _PATHS, ids=repr)
def test_a_path_that_names_no_file_is_refused_by_name_creating_nothing(
    path: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path is text or os.PathLike of text, not empty, without NUL: anything else is InvalidInput(path), and
    no file is made (not one named 'None', '123' or "b'x.db'" in the working folder)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput) as refused:
        ClaimService(path)  # type: ignore[arg-type]
    assert refused.value.field == "path"
    assert _files(tmp_path) == []


_OPTIONS: list[tuple[dict[str, Any], str]] = [
    *(
        ({"busy_timeout": bad}, "busy_timeout")
        for bad in ("x", None, math.nan, math.inf, -math.inf, 1e300, 10**400, -1, 0, True, 86_401)
    ),
    ({"definition": None}, "definition"),
    ({"definition": "x"}, "definition"),
    ({"definition": CLAIM_LIFECYCLE.to_dict()}, "definition"),
    ({"policy": "x"}, "policy"),
    ({"policy": {"evidence_due": timedelta(days=1)}}, "policy"),
    ({"clock": "x"}, "clock"),
    ({"clock": 5}, "clock"),
    ({"synchronous": "OFF"}, "synchronous"),
    ({"synchronous": None}, "synchronous"),
    ({"create": 1}, "create"),
    ({"read_only": "yes"}, "read_only"),
    ({"migrating": None}, "migrating"),
    ({"history_key": "a text of more than sixteen characters"}, "history_key"),
    ({"history_key": b"short"}, "history_key"),
]


@pytest.mark.parametrize(("options", "field"), _OPTIONS, ids=[repr(o)[:50] for o, _ in _OPTIONS])
def test_constructor_options_are_refused_by_name_creating_nothing(
    options: dict[str, Any], field: str, store_target: str, tmp_path: Path
) -> None:
    """Timeouts, definition, policy, clock, store options (synchronous on PostgreSQL too) and flags are checked
    before any file or schema is made: InvalidInput naming the argument, nothing created."""
    with pytest.raises(InvalidInput) as refused:
        ClaimService(store_target, **options)
    assert refused.value.field == field
    assert _files(tmp_path) == []
    if store_target.startswith("postgresql://"):
        assert (
            query(
                store_target, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
            == []
        )


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Engine(None), "definition"),  # type: ignore[arg-type]
        (lambda: Engine("x"), "definition"),  # type: ignore[arg-type]
        (lambda: Engine(policy="x"), "policy"),  # type: ignore[arg-type]
        (lambda: Engine(policy=INSPECTION.policy()), "policy"),
        (lambda: CLAIM_LIFECYCLE.policy(limits="x"), "limits"),  # type: ignore[arg-type]
        (lambda: CLAIM_LIFECYCLE.policy(limits=Limits(history_per_claim=0)), "limits.history_per_claim"),
        (lambda: CLAIM_LIFECYCLE.policy(limits=Limits(history_per_claim=math.nan)), "limits.history_per_claim"),  # type: ignore[arg-type]
        (lambda: CLAIM_LIFECYCLE.policy(evidence_due=math.inf), "evidence_due"),  # type: ignore[arg-type]
        (lambda: CLAIM_LIFECYCLE.policy(evidence_due=timedelta(days=-1)), "evidence_due"),
        (lambda: CLAIM_LIFECYCLE.policy(nowhere_due=timedelta(days=1)), "nowhere_due"),
        (lambda: Engine(policy=attrs_policy(windows="x")), "windows"),
        (lambda: Engine(policy=attrs_policy(windows={"evidence_due": timedelta(days=10**6)})), "windows"),
        (lambda: Engine(policy=attrs_policy(limits=None)), "limits"),
    ],
)
def test_engine_and_policy_arguments_are_refused_by_name(make: Callable[[], object], field: str) -> None:
    """Engine(...) and a policy refuse what is not a definition, a policy, limits or windows, by name."""
    with pytest.raises(InvalidInput) as refused:
        make()
    assert refused.value.field == field


def attrs_policy(**changes: Any) -> Any:
    """A Policy built directly (not through Definition.policy), with `changes` in place of the defaults."""
    from claimstate.definition import Policy  # noqa: PLC0415  (the class is only for this test's use)

    defaults = CLAIM_LIFECYCLE.policy()
    return Policy(**{"windows": defaults.windows, "limits": defaults.limits, **changes})


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda e, c: e.fire(None, "submit_evidence", "buyer:alice", None, T0), "claim"),
        (lambda e, c: e.fire(c.to_dict(), "submit_evidence", "buyer:alice", None, T0), "claim"),
        (lambda e, c: e.fire(c, None, "buyer:alice", None, T0), "trigger"),
        (lambda e, c: e.fire(c, ["escalate"], "buyer:alice", None, T0), "trigger"),
        (lambda e, c: e.fire(c, "escalate", None, None, LATER), "actor"),
        (lambda e, c: e.fire(c, "escalate", "buyer:alice", "x", LATER), "data"),
        (lambda e, c: e.fire(c, "escalate", "buyer:alice", None, math.nan), "now"),
        (lambda e, c: e.fire(c, "escalate", "buyer:alice", None, NAIVE), "now"),
        (lambda e, c: e.file_claim(None, "buyer:alice", filing(), T0), "claim_id"),
        (lambda e, c: e.file_claim("", "buyer:alice", filing(), T0), "claim_id"),
        (lambda e, c: e.file_claim("c-2", "buyer:alice", filing(amount=math.inf), T0), "data.amount"),
        (lambda e, c: e.file_claim("c-2", "buyer:alice", filing(), LATE), "now"),
        (lambda e, c: e.available(None, "buyer:alice", T0), "claim"),
    ],
)
def test_engine_calls_refuse_bad_arguments_by_name(
    walker: Walker, call: Callable[[Engine, Any], object], field: str
) -> None:
    """Engine.fire, file_claim and available refuse a claim that is not one, bad triggers, actors, data and
    times (a filing whose deadline would fall past 8999 included) by name."""
    claim = walker.reach("in_mediation")
    with pytest.raises(InvalidInput) as refused:
        call(walker.engine, claim)
    assert refused.value.field == field


def test_copy_claims_refuses_what_is_not_a_service(tmp_path: Path) -> None:
    """copy_claims takes two services; anything else is refused by name, not an AttributeError."""
    with ClaimService(tmp_path / "claims.db") as service:
        for source, target, field in ((None, service, "source"), (service, str(tmp_path / "b.db"), "target")):
            with pytest.raises(InvalidInput) as refused:
                copy_claims(source, target)  # type: ignore[arg-type]
            assert refused.value.field == field
    assert _files(tmp_path) == ["claims.db"]


# --- methods --------------------------------------------------------------------------------------------

Call = Callable[[ClaimService, str], object]


def _with(call: Callable[[ClaimService, str, Any], object], value: object) -> Call:
    """`call` with `value` as its last argument: one case per bad value."""
    return lambda service, claim_id: call(service, claim_id, value)


_CALLS: list[tuple[str, Call, str]] = [
    ("file data None", lambda s, c: s.file_claim(None, now=T0), "data"),  # type: ignore[arg-type]
    ("file data text", lambda s, c: s.file_claim("x", now=T0), "data"),  # type: ignore[arg-type]
    ("file amount nan", lambda s, c: s.file_claim(filing(order_id="o-9", amount=math.nan), now=T0), "data.amount"),
    ("file huge int", lambda s, c: s.file_claim(filing(order_id="o-9", amount=10**400), now=T0), "data.amount"),
    ("file claim id", lambda s, c: s.file_claim(filing(order_id="o-9"), claim_id=123, now=T0), "claim_id"),
    ("file claim id NUL", lambda s, c: s.file_claim(filing(order_id="o-9"), claim_id="a\x00", now=T0), "claim_id"),
    ("file key", lambda s, c: s.file_claim(filing(order_id="o-9"), idempotency_key=5, now=T0), "idempotency_key"),
    ("file actor", lambda s, c: s.file_claim(filing(order_id="o-9"), actor=5, now=T0), "actor"),
    ("file now text", lambda s, c: s.file_claim(filing(order_id="o-9"), now="2026-03-02"), "now"),
    ("file now naive", lambda s, c: s.file_claim(filing(order_id="o-9"), now=NAIVE), "now"),
    ("file now late", lambda s, c: s.file_claim(filing(order_id="o-9"), now=LATE), "now"),
    ("fire claim None", lambda s, c: s.fire(None, "escalate", "buyer:alice", now=T0), "claim_id"),
    ("fire claim int", lambda s, c: s.fire(123, "escalate", "buyer:alice", now=T0), "claim_id"),
    ("fire trigger None", lambda s, c: s.fire(c, None, "buyer:alice", now=T0), "trigger"),
    ("fire trigger list", lambda s, c: s.fire(c, ["escalate"], "buyer:alice", now=T0), "trigger"),
    ("fire actor None", lambda s, c: s.fire(c, "escalate", None, now=T0), "actor"),
    ("fire data text", lambda s, c: s.fire(c, "escalate", "buyer:alice", "x", now=T0), "data"),
    (
        "fire data nan",
        lambda s, c: s.fire(c, "submit_evidence", "buyer:alice", {"evidence": [math.nan]}, now=T0),
        "data.evidence[0]",
    ),
    *(
        (
            f"fire version {v!r}",
            _with(lambda s, c, v: s.fire(c, "escalate", "buyer:alice", expected_version=v, now=T0), v),
            "expected_version",
        )
        for v in (math.nan, math.inf, 1e300, 2**64, -1, 0, True, "2")
    ),
    ("fire now inf", lambda s, c: s.fire(c, "escalate", "buyer:alice", now=math.inf), "now"),
    ("fire now naive", lambda s, c: s.fire(c, "escalate", "buyer:alice", now=NAIVE), "now"),
    (
        "fire now late",
        lambda s, c: s.fire(c, "request_buyer_response", "agent:kim", {"question": "why?"}, now=LATE),
        "now",
    ),
    *(
        (f"tick limit {v!r}", _with(lambda s, c, v: s.tick(T0, limit=v), v), "limit")
        for v in (math.nan, math.inf, 1e300, 2**64, 0, -1, None, "5", True)
    ),
    ("tick now text", lambda s, c: s.tick("2026-03-02"), "now"),
    ("tick now nan", lambda s, c: s.tick(math.nan), "now"),
    ("tick progress", lambda s, c: s.tick(T0 + timedelta(days=30), progress="x"), "progress"),
    ("iter_tick limit", lambda s, c: s.iter_tick(T0, limit=math.nan), "limit"),
    ("due now", lambda s, c: s.due("x"), "now"),
    ("events consumer", lambda s, c: s.events(None), "consumer"),
    *(
        (f"events limit {v!r}", _with(lambda s, c, v: s.events("pay", limit=v), v), "limit")
        for v in (math.nan, 1e300, 0, None)
    ),
    *(
        (f"events lease {v!r}", _with(lambda s, c, v: s.events("pay", lease=v), v), "lease")
        for v in (math.nan, math.inf, 1e300, -1, 0, "30", None)
    ),
    ("ack event None", lambda s, c: s.ack("pay", None), "up_to"),  # type: ignore[arg-type]
    ("ack event dict", lambda s, c: s.ack("pay", {"position": 1}), "up_to"),  # type: ignore[arg-type]
    ("consume handler", lambda s, c: s.consume("pay", None), "handler"),  # type: ignore[arg-type]
    ("consume poll", lambda s, c: s.consume("pay", print, poll=math.inf), "poll"),
    ("consume stop", lambda s, c: s.consume("pay", print, stop=True), "stop"),  # type: ignore[arg-type]
    ("prune None", lambda s, c: s.prune_events(None), "older_than"),  # type: ignore[arg-type]
    ("prune naive", lambda s, c: s.prune_events(NAIVE), "older_than"),
    ("forget consumer", lambda s, c: s.forget_consumer(""), "consumer"),
    ("migrate plan None", lambda s, c: s.migrate(None), "plan"),  # type: ignore[arg-type]
    ("migrate plan text", lambda s, c: s.migrate("x"), "plan"),  # type: ignore[arg-type]
    ("migrate unknown", lambda s, c: s.migrate({"states": {"nowhere": "in_mediation"}}), "plan"),
    ("migrate now", lambda s, c: s.migrate({}, now="x"), "now"),
    ("migrate dry_run", lambda s, c: s.migrate({}, dry_run="no"), "dry_run"),  # type: ignore[arg-type]
    ("list limit", lambda s, c: s.list_claims(limit=math.nan), "limit"),
    ("list after", lambda s, c: s.list_claims(after=5), "after"),  # type: ignore[arg-type]
    ("list state", lambda s, c: s.list_claims(state="nowhere"), "state"),
    ("list buyer", lambda s, c: s.list_claims(buyer=5), "buyer"),  # type: ignore[arg-type]
    ("iter page", lambda s, c: s.iter_claims(page=0), "page"),
    ("iter limit", lambda s, c: s.iter_claims(limit=math.inf), "limit"),
    ("get None", lambda s, c: s.get(None), "claim_id"),  # type: ignore[arg-type]
    ("history int", lambda s, c: s.history(5), "claim_id"),  # type: ignore[arg-type]
    ("available actor", lambda s, c: s.available(c, None), "actor"),  # type: ignore[arg-type]
    ("feed after", lambda s, c: s.feed(after=-1), "after"),
    ("open_claims", lambda s, c: s.open_claims(5), "definition"),  # type: ignore[arg-type]
]


@pytest.fixture(scope="module")
def filed(
    shared_store_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ClaimService, str, str, Path]]:
    """A service on each backend holding one claim in mediation (with its events and a consumer's progress),
    shared by the tests below: each call they make is refused, and each checks that it wrote nothing.
    Yields the service, the claim's id, the store and the folder beside it."""
    with ClaimService(shared_store_target) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        (first, *_) = service.events("pay")
        service.ack("pay", first)
        on_server = shared_store_target.startswith("postgresql://")
        folder = tmp_path_factory.mktemp("beside") if on_server else Path(shared_store_target).parent
        yield service, claim_id, shared_store_target, folder


@pytest.mark.parametrize(("name", "call", "field"), _CALLS, ids=[c[0] for c in _CALLS])
def test_methods_refuse_bad_arguments_by_name_writing_nothing(
    filed: tuple[ClaimService, str, str, Path], name: str, call: Call, field: str
) -> None:
    """Each public method given a wrong type, NaN or an infinity, a huge number, None or a time out of range
    raises InvalidInput naming the argument, and the database's rows and the folder are as they were."""
    service, claim_id, target, folder = filed
    rows, files = _rows(target), _files(folder)
    with pytest.raises(InvalidInput) as refused:
        call(service, claim_id)
    assert (refused.value.field, name) == (field, name)
    assert _rows(target) == rows
    assert _files(folder) == files


def test_ack_of_an_event_that_is_not_this_feeds_is_refused(filed: tuple[ClaimService, str, str, Path]) -> None:
    """An Event built by hand (never delivered) is refused by name, writing nothing."""
    service, _, target, _ = filed
    (event,) = service.feed(limit=1)
    rows = _rows(target)
    with pytest.raises(InvalidInput):
        service.ack("pay", attrs.evolve(event, position=10**6, lane_seq=10**6))
    assert _rows(target) == rows


# --- derived values: no accepted write makes a claim unreadable -----------------------------------------


def test_a_filing_whose_deadline_would_fall_past_8999_is_refused_writing_nothing(store_target: str) -> None:
    """Filing at 8999-12-31 would set the evidence deadline in the year 9000, which no stored time may hold:
    refused by `now` before anything is written, and the rest of the database still lists."""
    with ClaimService(store_target) as service:
        service.file_claim(filing(order_id="o-0"), now=T0)
        rows = _rows(store_target)
        with pytest.raises(InvalidInput) as refused:
            service.file_claim(filing(), now=LATE)
        assert refused.value.field == "now"
        assert "past the years 1970 to 8999" in refused.value.reason
        assert _rows(store_target) == rows
        assert [c.order_id for c in service.list_claims()] == ["o-0"]
        assert service.verify() == []


def test_a_fire_or_a_tick_whose_new_deadline_would_fall_past_8999_changes_nothing(store_target: str) -> None:
    """A fire into a state whose deadline would fall past 8999 is refused by `now`; a deadline whose firing
    would do so stays due (tick passes it over, as a refused one) and the other deadlines fire."""
    early = datetime(8999, 12, 20, tzinfo=UTC)
    with ClaimService(store_target) as service:
        stuck = service.file_claim(filing(order_id="o-1"), now=early).claim.id
        service.fire(stuck, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=early)
        rows = _rows(store_target)
        with pytest.raises(InvalidInput) as refused:  # awaiting_buyer_response's deadline: 5 days on
            service.fire(stuck, "request_buyer_response", "agent:kim", QUESTION, now=LATE)
        assert refused.value.field == "now"
        assert _rows(store_target) == rows
        service.fire(stuck, "request_supplier_response", "agent:kim", QUESTION, now=early)
        other = service.file_claim(filing(order_id="o-2"), now=early).claim.id
        # response_due (5 days) fell due 8999-12-25; its firing would start return_due (10 days): past 8999
        fired = service.tick(datetime(8999, 12, 30, tzinfo=UTC))
        assert [r.claim_id for r in fired] == [other]
        assert service.get(stuck).version == 3
        assert service.due(LATE) == 1
        assert service.verify() == []


def test_a_migration_whose_deadline_would_fall_past_8999_is_refused_writing_nothing(store_target: str) -> None:
    """A migration that starts a deadline (a claim moved into a state with one) at 8999-12-31 is refused by
    `now`, writing nothing, as a fire would be."""
    with ClaimService(store_target) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
    with ClaimService(store_target, definition=INSPECTION, migrating=True) as changed:
        rows = _rows(store_target)
        plan = {"states": {"in_mediation": "awaiting_return"}}
        with pytest.raises(InvalidInput) as refused:
            changed.migrate(plan, now=LATE)
        assert refused.value.field == "now"
        assert _rows(store_target) == rows
        assert changed.migrate(plan, now=T0 + timedelta(days=1)).moves[0].claim_id == claim_id


# --- one unreadable claim does not hide the others ------------------------------------------------------


def _damage(store_target: str, claim_id: str, how: str) -> None:
    """Make one stored claim unreadable, by SQL: JSON that does not parse, or a deadline in the year 9000."""
    (details,) = query(store_target, f"SELECT details FROM claims WHERE id = '{claim_id}'")[0]
    if how == "json":
        text = details[:-5]
    else:
        text = json.dumps({**json.loads(details), "deadline_at": "9000-01-06T00:00:00.000000+00:00"})
    execute(store_target, "UPDATE claims SET details = %s WHERE id = %s", (text, claim_id))


@pytest.mark.parametrize("how", ["json", "year 9000"])
def test_an_unreadable_claim_is_reported_and_every_other_one_listed(store_target: str, how: str) -> None:
    """list_claims reads its page whole and raises UnreadableClaims naming the damaged claim and carrying the
    others; iter_claims yields every other claim, page after page, then raises it."""
    with ClaimService(store_target) as service:
        ids = [service.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id for n in range(5)]
        _damage(store_target, ids[1], how)
        with pytest.raises(UnreadableClaims) as listed:
            service.list_claims()
        assert list(listed.value.unreadable) == [ids[1]]
        assert [c.id for c in listed.value.claims] == [ids[0], *ids[2:]]
        assert listed.value.last == ids[-1]
        assert ids[1] in str(listed.value)
        seen: list[str] = []
        with pytest.raises(UnreadableClaims) as iterated:
            seen.extend(c.id for c in service.iter_claims(page=2))
        assert seen == [ids[0], *ids[2:]]
        assert (list(iterated.value.unreadable), iterated.value.claims, iterated.value.last) == ([ids[1]], (), ids[-1])
        assert [c.id for c in service.iter_claims(after=ids[1])] == ids[2:]
        assert [c.id for c in service.iter_claims(limit=1)] == ids[:1]


# --- the history limit ----------------------------------------------------------------------------------

_SHORT = CLAIM_LIFECYCLE.policy(limits=Limits(history_per_claim=4))


def test_a_party_cannot_take_a_history_past_the_limit_but_the_team_the_clock_and_closing_can(walker: Walker) -> None:
    """Past limits.history_per_claim a buyer's or supplier's step is refused (within_limits); the team's
    steps, deadlines and a step that closes the claim still pass, so a claim can always end."""
    walker.engine = Engine(policy=_SHORT)
    claim = walker.reach("in_mediation")  # filed, evidence: 2 steps
    claim = walker.step(claim, "request_buyer_response", "agent", QUESTION)
    claim = walker.step(claim, "respond", "buyer", {"message": "none"})
    assert claim.version == 4
    asked = walker.step(claim, "request_buyer_response", "agent", QUESTION)  # the team: past the limit
    with pytest.raises(TransitionRefused) as refused:
        walker.step(asked, "respond", "buyer", {"message": "still none"})
    assert [(r.kind, r.code) for r in refused.value.reasons] == [("guard", "within_limits")]
    assert "history holds 5 steps; past 4" in refused.value.reasons[0].message
    assert walker.step(asked, "withdraw", "buyer").state == "withdrawn"  # closes: passes
    walker.now = asked.deadline.due  # type: ignore[union-attr]
    assert walker.step(asked, "response_deadline", "system").state == "payment_released"
    with pytest.raises(TransitionRefused):
        walker.step(claim, "escalate", "buyer")  # version 4: the fifth step is a buyer's


def test_a_lowered_history_limit_does_not_make_old_claims_look_damaged(store_target: str) -> None:
    """Replay (verify, and a retry under its idempotency key) judges old steps by what was accepted then: a
    service with a lower limit verifies longer histories clean and returns a retried step's first result,
    while refusing a party's new step, writing nothing."""
    with ClaimService(store_target) as service:
        claim_id = service.file_claim(filing(), now=T0).claim.id
        service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}, now=T0)
        for n in range(3):
            service.fire(claim_id, "request_buyer_response", "agent:kim", QUESTION, now=T0)
            first = service.fire(claim_id, "respond", "buyer:alice", {"message": f"{n}"}, idempotency_key=f"r{n}",
                                 now=T0)  # fmt: skip
        service.fire(claim_id, "request_buyer_response", "agent:kim", QUESTION, now=T0)
    with ClaimService(store_target, policy=_SHORT, migrating=True) as short:
        assert short.verify() == []
        assert short.fire(claim_id, "respond", "buyer:alice", {"message": "2"}, idempotency_key="r2", now=T0) == first
        rows = _rows(store_target)
        with pytest.raises(TransitionRefused) as refused:
            short.fire(claim_id, "respond", "buyer:alice", {"message": "again"}, now=T0)
        assert [r.code for r in refused.value.reasons] == ["within_limits"]
        assert _rows(store_target) == rows


# --- tick pages -----------------------------------------------------------------------------------------


def test_iter_tick_fires_a_page_at_a_time_as_it_is_iterated(store_target: str) -> None:
    """iter_tick reads `limit` due deadlines at a time and fires each as it is iterated (so memory stays flat
    however many are due); a deadline passed over (refused) is not read again, each fires once, and what is
    left is the next tick's."""
    with ClaimService(store_target) as service:
        ids = [service.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id for n in range(5)]
        execute(store_target, "UPDATE claims SET deadline_trigger = 'receipt_deadline' WHERE id = %s", (ids[0],))
        at = T0 + timedelta(days=8)
        handled: list[int] = []
        ticking = service.iter_tick(at, limit=2, progress=handled.append)
        assert service.due(at) == 5  # nothing fires before it is iterated
        assert next(ticking).claim_id == ids[1]
        assert (len(handled), service.due(at)) == (2, 4)  # the refused one, then one fired
        assert [r.claim_id for r in ticking] == ids[2:]
        assert (len(handled), service.due(at)) == (5, 1)
        assert service.tick(at, limit=1) == []


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_the_list_command_prints_every_readable_claim_then_names_the_damaged_one(
    store_target: str, as_json: bool
) -> None:
    """`claimstate list` prints the claims it could read (a whole table, or a closed JSON array), then one
    error line naming the damaged claim, and exits 5."""
    with ClaimService(store_target) as service:
        ids = [service.file_claim(filing(order_id=f"o-{n}"), now=T0).claim.id for n in range(3)]
    _damage(store_target, ids[1], "json")
    result = CliRunner().invoke(cli, ["--db", store_target, *(["--json"] if as_json else []), "list"])
    assert result.exit_code == 5, result.output
    assert ids[1] in result.stderr
    assert "Traceback" not in result.stderr
    if as_json:  # the array, then (as every failing command with --json) the error as JSON
        listed, end = json.JSONDecoder().raw_decode(result.stdout)
        assert [c["id"] for c in listed] == [ids[0], ids[2]]
        assert ids[1] in json.loads(result.stdout[end:])["unreadable"]
    else:
        listed = [line.split()[0] for line in result.stdout.splitlines()[1:]]
        assert listed == [ids[0], ids[2]]
