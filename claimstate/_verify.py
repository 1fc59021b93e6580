"""What verify reports, and the checks of one claim's history that hold whatever store keeps it.

A store lists its rows and its own findings (its schema, the file's integrity); the functions here judge
each claim's history against the lifecycle and the hash chain, so every store is held to one contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from claimstate._chain import Chain
from claimstate._claim import Claim
from claimstate._definition import MIGRATE
from claimstate._engine import Engine, Fired
from claimstate._errors import ClaimStateError
from claimstate._feed import lane_of, summary
from claimstate._json import decode, encode
from claimstate._migration import replayed
from claimstate._replayers import Unreplayable
from claimstate._time import from_iso

EngineOf = Callable[[str | None], Engine]  # the engine replaying a step decided under a definition (fingerprint)
_SAME = json.JSONEncoder(sort_keys=True)  # compares JSON values exactly: true is not 1, nor 2.0 the integer 2

MismatchKind = Literal[
    # the database as a whole (claim_id None)
    "integrity",  # SQLite's own check of the file failed, or rows could not be read
    "schema",  # a table, index or trigger claimstate made is missing or changed, or a trigger was added
    "chain_key",  # the chain's kind or key is not this service's, so the chain is not checked
    # one claim
    "claim_missing",  # history rows without a claims row: a deleted claim, or rows of a claim that never was
    # (claim_id None for rows stored without a claim id or seq)
    "no_history",  # a claims row without history
    "sequence",  # the history's seqs are not 1..n
    "chain",  # the first row whose hash does not cover its content and the row before it
    "filing",  # the first row is not the definition's filing
    "replay",  # the history does not replay through the lifecycle (or a row is damaged)
    "states",  # a row's from_state / to_state are not the states the replay went through
    "details",  # the stored claim is not the claim its history rebuilds
    "columns",  # the claims row's plain columns differ from its claim
    "open_twice",  # an order has more than one open claim
    "event",  # a retained event is not its history row's, or its claim summary not the replay's (invented, changed)
    "definition",  # a step's definition cannot be replayed, a stored definition is not its fingerprint's, or
    # the claims row records another definition than its last step
]


@attrs.frozen
class Difference:
    """One stored value that is not what the claim's history gives, both as JSON values.

    `field` is a column of the claims row, ``details.<key>`` for a detail kept in the details JSON, or
    ``from_state`` / ``to_state`` of the history row a `states` mismatch names.
    """

    field: str
    stored: Any
    expected: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "stored": self.stored, "expected": self.expected}


@attrs.frozen
class Mismatch:
    """One thing verify found wrong: in claim `claim_id`, or in the database as a whole (`claim_id` None).

    `kind` names the check that found it (MismatchKind); `seq` the history row concerned, when one is;
    `differences` each differing value, when there are values to compare.
    """

    claim_id: str | None
    problem: str
    differences: tuple[Difference, ...] = ()
    kind: MismatchKind = attrs.field(kw_only=True)
    seq: int | None = attrs.field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "kind": self.kind,
            "seq": self.seq,
            "problem": self.problem,
            "differences": [d.to_dict() for d in self.differences],
        }


def replay(engine_of: EngineOf, claim_id: str, rows: Sequence[Mapping[str, Any]]) -> Iterator[Fired]:
    """Each step of the claim its history rows (data decoded) rebuild, from the filing on, each fired through
    the engine of the definition it was decided under (a migration's row applied as it says).

    Each deadline is the one recorded when it was set, so a later change of policy does not rewrite the
    past: retries return what was stored, and verify judges by the windows then in force. Raises
    TransitionRefused or InvalidInput at a row that does not replay, Unreplayable at one whose definition
    the service does not have.
    """
    claim, previous = None, None
    for row in rows:
        engine = engine_of(row.get("definition"))
        at = from_iso(row["at"], field="at")
        if claim is None:
            fired = engine.file_claim(claim_id, row["actor"], row["data"], at)
        elif row["trigger"] == MIGRATE and previous is not None:
            fired = Fired(*replayed(claim, row, engine.definition, before=previous, after=engine.fingerprint))
        else:
            fired = engine.fire(claim, row["trigger"], row["actor"], row["data"], at)
        claim, previous = fired.claim, engine.fingerprint
        if claim.deadline is not None and row["deadline_at"] is not None:
            claim = attrs.evolve(claim, deadline=attrs.evolve(claim.deadline, due=from_iso(row["deadline_at"])))
        yield Fired(claim, fired.record)


def check_history(
    claim_id: str, rows: Sequence[Mapping[str, Any]], *, engine_of: EngineOf, chain: Chain | None
) -> tuple[list[Mismatch], Claim | None]:
    """What is wrong with one claim's history rows as stored (data as JSON text), and the claim they rebuild
    (None when they do not replay). `chain` None: the chain is not checked (the database's report says why).
    A row's `event`, when the feed retains its event, is that event's (claim summary as JSON text, lane)."""
    found = []
    seqs = [row["seq"] for row in rows]
    if seqs != list(range(1, len(rows) + 1)):
        found.append(Mismatch(claim_id, f"history sequence numbers are {seqs}, not 1..{len(rows)}", kind="sequence"))
    decoded = []
    for row in rows:
        try:
            decoded.append({**row, "data": decode(row["data"])})
        except (TypeError, ValueError, RecursionError):
            damaged = Mismatch(claim_id, "a history row holds damaged data JSON", kind="replay", seq=_seq(row))
            return [*found, damaged], None
    broken = None if chain is None else _first_broken_link(chain, decoded)
    if broken is not None:
        found.append(
            Mismatch(
                claim_id,
                f"the hash chain breaks at seq {broken['seq']}: the row was changed, forged or put in after it was"
                " written",
                kind="chain",
                seq=_seq(broken),
            )
        )
    first = decoded[0]
    try:
        filing = engine_of(first.get("definition")).definition.creation.trigger
    except Unreplayable as error:
        return [*found, Mismatch(claim_id, str(error), kind="definition", seq=_seq(first))], None
    if first["trigger"] != filing or first["from_state"] is not None:
        found.append(
            Mismatch(
                claim_id,
                f"the first history row is {first['trigger']!r} from {first['from_state']!r}, not the filing"
                f" ({filing!r} from nothing)",
                kind="filing",
                seq=_seq(first),
            )
        )
    if found and found[0].kind == "sequence":
        return found, None  # a history with gaps or repeats does not replay to anything meaningful
    return _replayed(claim_id, decoded, engine_of, found)


def _replayed(
    claim_id: str, rows: list[dict[str, Any]], engine_of: EngineOf, found: list[Mismatch]
) -> tuple[list[Mismatch], Claim | None]:
    claim, states = None, None
    steps = replay(engine_of, claim_id, rows)
    for row in rows:
        try:
            fired = next(steps)
        except Unreplayable as error:
            return [*found, Mismatch(claim_id, str(error), kind="definition", seq=_seq(row))], None
        except (ClaimStateError, KeyError, TypeError, ValueError) as error:  # a damaged row: never a traceback
            refused = Mismatch(claim_id, f"the history does not replay: {error}", kind="replay", seq=_seq(row))
            return [*found, refused], None
        claim = fired.claim
        if row.get("event") is not None:
            closed = engine_of(row.get("definition")).definition.state(claim.state).final
            event = _event_differences(claim_id, row, summary(claim.to_dict(), closed))
            found += [event] if event else []
        expected = {"from_state": fired.record.source, "to_state": fired.record.dest}
        if states is None and any(row[k] != v for k, v in expected.items()):
            states = Mismatch(
                claim_id,
                f"history row {row['seq']} records other states than the replay goes through",
                tuple(Difference(k, row[k], v) for k, v in expected.items() if row[k] != v),
                kind="states",
                seq=_seq(row),
            )
    return [*found, *([states] if states else [])], claim


def _event_differences(claim_id: str, row: Mapping[str, Any], expected: Mapping[str, Any]) -> Mismatch | None:
    """What the retained event of history row `row` carries that the replay does not give at that step: each
    value of its claim summary (`expected`, what the fire wrote), and its lane."""
    text, lane = row["event"]
    if text == encode(expected) and lane == lane_of(claim_id):
        return None  # as the fire wrote it, byte for byte: the common case, without decoding
    try:
        stored = decode(text)
    except (TypeError, ValueError, RecursionError):
        stored = None
    if not isinstance(stored, dict):
        return Mismatch(
            claim_id, f"the event of seq {row['seq']} holds damaged claim JSON", kind="event", seq=_seq(row)
        )
    differences = [] if lane == lane_of(claim_id) else [Difference("lane", lane, lane_of(claim_id))]
    for key in sorted(expected.keys() | stored.keys()):
        if key not in stored or key not in expected or _SAME.encode(stored[key]) != _SAME.encode(expected[key]):
            differences.append(Difference(f"claim.{key}", stored.get(key), expected.get(key)))
    if not differences:
        return None  # the same values, written another way (by hand, or an earlier version)
    problem = f"the event of seq {row['seq']} carries another claim than its history rebuilds at that step"
    return Mismatch(claim_id, problem, tuple(differences), kind="event", seq=_seq(row))


def _first_broken_link(chain: Chain, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first row whose stored hash is not the hash of its content after the stored hash before it."""
    previous = None
    for row in rows:
        try:
            expected = chain.link(previous, row)
        except (TypeError, ValueError):
            return row
        if row["hash"] != expected:
            return row
        previous = row["hash"]
    return None


def _seq(row: Mapping[str, Any]) -> int | None:
    """The row's seq, unless a hand edit stored something else there."""
    seq = row["seq"]
    return seq if isinstance(seq, int) else None


def claim_differences(claim_id: str, stored: Claim, replayed: Claim) -> Mismatch | None:
    """The stored claim's details that differ from the claim its history rebuilds."""
    if replayed == stored:
        return None
    kept, expected = stored.to_dict(), replayed.to_dict()
    keys = sorted(k for k, v in expected.items() if kept.get(k) != v)
    return Mismatch(
        claim_id,
        f"the stored claim differs from its history in: {', '.join(keys)}",
        tuple(Difference(f"details.{k}", kept.get(k), expected[k]) for k in keys),
        kind="details",
    )
