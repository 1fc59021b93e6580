"""verify as the service runs it: the database's own findings, then every claim's history replayed and
compared with its rows, its claims row and its events (the checks themselves are `_verify`'s)."""

from __future__ import annotations

from typing import Any

from claimstate._chain import Chain
from claimstate._errors import StorageError
from claimstate._fingerprints import short
from claimstate._service.core import Core
from claimstate._service.definitions import engine_of, sound_bodies
from claimstate._verify import Difference, EngineOf, Mismatch, check_history, claim_differences


def verify(core: Core) -> list[Mismatch]:
    """Every problem found, the database's first (inside one read of the store)."""
    store = core.store
    found = [Mismatch(None, problem, kind="integrity") for problem in store.integrity()]
    try:
        found += [Mismatch(None, problem, kind="schema") for problem in store.schema_problems()]
        unchecked = core.chain.cannot_check(store.definitions.chain_record())
        if unchecked is not None:
            found.append(Mismatch(None, f"the hash chain is not checked: {unchecked}", kind="chain_key"))
        replaying, baseline = engine_of(core, sound_bodies(core, found)), store.definitions.baseline()
        for claim_id, rows in store.verify.histories():
            chain = None if unchecked else core.chain
            found += _claim(core, claim_id, rows, chain=chain, replaying=replaying, baseline=baseline)
        unkeyed = store.verify.unkeyed_history_rows()
        if unkeyed:
            found.append(Mismatch(None, f"{unkeyed} history row(s) have no claim id or seq", kind="claim_missing"))
        for claim_id in store.verify.claims_without_history():
            found.append(Mismatch(claim_id, "the claim has no history", kind="no_history"))
        for order, ids in store.verify.orders_open_twice():
            problem = f"order {order!r} has {len(ids)} open claims: {', '.join(ids)}"
            found.append(Mismatch(ids[-1], problem, kind="open_twice"))
        for claim_id, seq in store.events.not_in_history():
            problem = f"the event of seq {seq} is not its history row's: invented, or changed since"
            found.append(Mismatch(claim_id, problem, kind="event", seq=seq))
    except StorageError as error:  # a damaged file can stop the walk: say so rather than stop
        found.append(Mismatch(None, f"not every row could be read: {error}", kind="integrity"))
    return sorted(found, key=lambda m: (m.claim_id is not None, m.claim_id or ""))


def _claim(
    core: Core,
    claim_id: str,
    rows: list[dict[str, Any]],
    *,
    chain: Chain | None,
    replaying: EngineOf,
    baseline: str | None,
) -> list[Mismatch]:
    found, replayed = check_history(claim_id, rows, engine_of=replaying, chain=chain)
    try:
        decided = core.store.claims.loaded_for_reading(claim_id)  # the claim and its definition, in one read
    except StorageError as error:
        return [*found, Mismatch(claim_id, f"the stored claim cannot be read: {error}", kind="details")]
    if decided is None:
        return [
            Mismatch(
                claim_id,
                f"no claims row, but {len(rows)} history row(s): the claim was deleted, or the rows belong to no claim",
                kind="claim_missing",
            ),
            *found,
        ]
    stored, last = decided.claim, rows[-1].get("definition") or baseline
    if decided.definition != last:
        problem = (
            f"the claims row records definition {short(decided.definition)}, but its last step was decided"
            f" under {short(last)}"
        )
        found.append(Mismatch(claim_id, problem, kind="definition"))
    if replayed is None:
        return found
    differs = claim_differences(claim_id, stored, replayed)
    closed = replaying(last).definition.state(replayed.state).final  # its rules know a state retired since
    if differs is not None:
        # Facts kept in columns alone (rows written since SQLite schema 7, PostgreSQL 6) that differ: the
        # columns are named.
        wrong = core.store.verify.row_differences(replayed, closed)
        in_columns = {d.field.removeprefix("details.") for d in differs.differences} <= wrong.keys()
        if not in_columns or not core.store.verify.slim(claim_id):
            return [*found, differs]
    else:
        wrong = core.store.verify.row_differences(stored, closed)
    if wrong:
        found.append(
            Mismatch(
                claim_id,
                f"the claims row's columns differ from the claim: {', '.join(wrong)}",
                tuple(Difference(column, *values) for column, values in wrong.items()),
                kind="columns",
            )
        )
    return found
