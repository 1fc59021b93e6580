"""Copying a whole database into another store (a SQLite file onto PostgreSQL), every row as it is.

The rows are copied unchanged, hashes included, so the hash chain still holds on the target and
`verify` there replays every claim as it did on the source; the copy is one transaction on the target,
which must be empty.
"""

from __future__ import annotations

import attrs

from claimstate._errors import InvalidInput, StorageError
from claimstate._service import ClaimService
from claimstate._service.service import core_of
from claimstate._store.copies import TABLES
from claimstate._verify import Mismatch


@attrs.frozen
class Copied:
    """What `copy_claims` copied, and what `verify` then found on the target (empty: all sound)."""

    claims: int
    transitions: int
    mismatches: tuple[Mismatch, ...]
    events: int = 0  # the feed's retained events, copied with the lanes' counters and each consumer's progress


def copy_claims(source: ClaimService, target: ClaimService) -> Copied:
    """Copy every claim, its whole history, the definitions they were decided under and the event feed (with
    each consumer's progress) from `source` into the empty `target`, then verify `target`.

    Refused, writing nothing, when the target holds claims or keeps another kind of hash chain (another
    history key) than the source.
    """
    for name, service in (("source", source), ("target", target)):
        if not isinstance(service, ClaimService):
            raise InvalidInput(f"must be a ClaimService, not {type(service).__name__}", field=name)
    source_core, target_core = core_of(source), core_of(target)
    theirs, ours = source_core.store, target_core.store
    if theirs.definitions.chain_record() != ours.definitions.chain_record():
        raise StorageError(
            f"{target.path} keeps its history chain another way than {source.path} (give both the same"
            " history key, or none): copied rows would not verify",
            path=target.path,
        )
    with ours.transaction():  # the source read on one snapshot
        ours.lock_whole()  # no other instance writes into the target until the copy is in
        if not ours.copy.is_empty():
            raise StorageError(
                f"{target.path} is not empty: claims are copied only into an empty database", path=target.path
            )
        copied, baseline = theirs.read(
            lambda: (
                {table: ours.copy.insert_rows(table, theirs.copy.table_rows(table)) for table in TABLES},
                theirs.definitions.baseline(),
            )
        )
        if baseline is not None:  # the definition of the rows written before rows recorded one
            ours.definitions.set_baseline(baseline)
    return Copied(copied["claims"], copied["transitions"], tuple(target.verify()), copied["events"])
