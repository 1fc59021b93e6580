"""Child processes for tests/processes/test_durability.py: each mode works on one claimstate file and prints JSON lines.

Run as ``python _durability_child.py MODE ARGS_JSON``. Every acknowledged transition is printed (and flushed)
as ``{"ack": [claim_id, seq, trigger]}`` right after the call that applied it returned, so a parent that
kills this process knows exactly which transitions were acknowledged before the kill.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time
from typing import Any

from claimstate import CLAIM_LIFECYCLE, ClaimService, ConcurrentModification, StorageError, TransitionRefused
from claimstate.definition import Limits

EVIDENCE = [{"kind": "photo", "description": "the lid arrived cracked"}]
MAX_SECONDS = 60.0  # a child never outlives a hung or killed parent by long


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def ack(record: Any, **extra: Any) -> None:
    emit({"ack": [record.claim_id, record.seq, record.trigger], **extra})


def filing(order_id: str, reason: str = "arrived broken") -> dict[str, str]:
    return {
        "order_id": order_id,
        "buyer_id": "alice",
        "supplier_id": "acme",
        "currency": "USD",
        "amount": "25.00",
        "reason": reason,
        "resolution": "full_refund",
    }


# These children pile evidence onto a few claims on purpose, far past the default limits.
ROOMY = CLAIM_LIFECYCLE.policy(limits=Limits(evidence_per_fire=1_000, evidence_per_claim=1_000_000))


def contend(args: dict[str, Any]) -> None:
    """Wait for "go" on stdin, then fire on owned claims, on a shared claim (CAS), and on a shared offer claim."""
    service = ClaimService(args["db"], busy_timeout=10.0, policy=ROOMY)
    worker, owned, shared, offers = args["worker"], args["owned"], args["shared"], args["offers"]
    emit({"ready": worker})
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    conflicts = refused = 0
    for i in range(args["iterations"]):
        ack(service.fire(owned[i % len(owned)], "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}).record)
        # optimistic concurrency: read the version, fire with it, retry on ConcurrentModification
        for _attempt in range(10_000):
            version = service.get(shared).version
            actor = "buyer:alice" if (i + worker) % 2 else "supplier:acme"
            try:
                fired = service.fire(shared, "submit_evidence", actor, {"evidence": EVIDENCE}, expected_version=version)
            except ConcurrentModification:
                conflicts += 1
                continue
            ack(fired.record, expected=version)
            break
        else:
            raise SystemExit("never won the shared claim")
        # a plain fire on the shared claim, racing the others' CAS fires
        ack(service.fire(shared, "submit_evidence", "supplier:acme", {"evidence": EVIDENCE}).record)
        # plain fires that may be refused: even workers make offers, odd workers reject them
        try:
            if worker % 2 == 0:
                fired = service.fire(offers, "make_offer", "buyer:alice", {"kind": "partial_refund", "amount": "10.00"})
            else:
                fired = service.fire(offers, "reject_offer", "supplier:acme", {"note": f"w{worker}"})
        except TransitionRefused:
            refused += 1
        else:
            ack(fired.record)
    emit({"done": worker, "conflicts": conflicts, "refused": refused})
    service.close()


def stream(args: dict[str, Any]) -> None:
    """Fire forever (until killed): evidence on random claims, new filings, and two-fire batches."""
    started, parent = time.monotonic(), os.getppid()
    rng = random.Random(args["seed"])
    service = ClaimService(args["db"], synchronous=args["synchronous"])
    in_mediation = [c.id for c in service.list_claims(state="in_mediation", limit=100_000)]
    waiting = [c.id for c in service.list_claims(state="awaiting_evidence", limit=100_000)]
    emit({"ready": True, "claims": len(in_mediation) + len(waiting)})
    i = 0
    while time.monotonic() - started < MAX_SECONDS and os.getppid() == parent:
        i += 1
        if i % 11 == 0:
            filed = service.file_claim(filing(f"r{args['round']}-{i}"))
            ack(filed.record)
            waiting.append(filed.claim.id)
        elif i % 5 == 0:
            claim_id = rng.choice(in_mediation)
            with service.batch():  # both fires commit together, or neither
                made = service.fire(claim_id, "make_offer", "buyer:alice", {"kind": "partial_refund", "amount": "9.00"})
                rejected = service.fire(claim_id, "reject_offer", "supplier:acme")
            ack(made.record)
            ack(rejected.record)
        elif waiting and i % 3 == 0:
            claim_id = waiting.pop()
            ack(service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}).record)
            in_mediation.append(claim_id)
        else:
            claim_id = rng.choice(in_mediation)
            actor = rng.choice(["buyer:alice", "supplier:acme"])
            ack(service.fire(claim_id, "submit_evidence", actor, {"evidence": EVIDENCE}).record)


def storm(args: dict[str, Any]) -> None:
    """Write until killed (tests/processes/test_backup_storm.py): file claims on orders of this worker's own,
    give each evidence, and on those in mediation fire evidence and two-fire batches (an offer made and
    rejected), each ack stamped with the monotonic clock (`t`, one clock for every process on the machine)."""
    started, parent = time.monotonic(), os.getppid()
    rng = random.Random(args["worker"])
    service = ClaimService(args["db"], policy=ROOMY, busy_timeout=10.0)
    emit({"ready": args["worker"]})
    waiting: list[str] = []
    in_mediation: list[str] = []
    i = 0
    while time.monotonic() - started < MAX_SECONDS and os.getppid() == parent:
        i += 1
        if i % 4 == 1:
            filed = service.file_claim(filing(f"w{args['worker']}-{i}"))
            ack(filed.record, t=time.monotonic())
            waiting.append(filed.claim.id)
        elif i % 4 == 2:
            claim_id = waiting.pop()
            ack(service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}).record,
                t=time.monotonic())  # fmt: skip
            in_mediation.append(claim_id)
        elif i % 4 == 3:
            claim_id = rng.choice(in_mediation[-50:])  # the newest: offers per claim stay well under the limit
            with service.batch():  # both fires commit together, or neither
                made = service.fire(claim_id, "make_offer", "buyer:alice", {"kind": "partial_refund", "amount": "9.00"})
                rejected = service.fire(claim_id, "reject_offer", "supplier:acme")
            done = time.monotonic()
            ack(made.record, t=done)
            ack(rejected.record, t=done)
        else:
            claim_id = rng.choice(in_mediation)
            actor = rng.choice(["buyer:alice", "supplier:acme"])
            ack(service.fire(claim_id, "submit_evidence", actor, {"evidence": EVIDENCE}).record, t=time.monotonic())


def as_user(uid: int) -> None:
    """Drop root for good: become `uid`, with that number as the only group too. (What claimstate imports
    only when it creates a schema is imported first: the interpreter lives where only root may read.)"""
    import sqlite_utils  # noqa: F401, PLC0415

    os.setgid(uid)
    os.setgroups([])
    os.setuid(uid)


def readonly(args: dict[str, Any]) -> None:
    """Drop root, then open the file and fire; report the error."""
    as_user(65534)
    try:
        with ClaimService(args["db"]) as service:
            service.fire(args["claim"], "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
    except StorageError as error:
        emit({"uid": os.getuid(), "error": type(error).__name__, "message": str(error)})
    else:
        emit({"uid": os.getuid(), "error": None})


def owner(args: dict[str, Any]) -> None:
    """As the database's owner (`uid`): "create" it with one claim in mediation, "fire" once on the claim, or
    fire and "hold" the connection open (the fire stays in the -wal) until stdin says go; report the version."""
    as_user(args["uid"])
    try:
        with ClaimService(args["db"]) as service:
            if args["action"] == "create":
                claim = service.file_claim(filing("o-1")).claim
                claim = service.fire(claim.id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE}).claim
            else:
                claim = service.fire(args["claim"], "submit_evidence", "supplier:acme", {"evidence": EVIDENCE}).claim
            emit({"claim": claim.id, "version": claim.version})
            if args["action"] == "hold" and sys.stdin.readline().strip() != "go":
                raise SystemExit("no go")
    except StorageError as error:
        emit({"error": str(error)})


def reader(args: dict[str, Any]) -> None:
    """As nobody: every read through a read-only service, and one write; or, "writable", a writable service
    (refused: nobody may not write the file) and then a plain sqlite3 count, as another program would open it.

    With "wal_vanishes", the first look for a -wal and a -shm finds them, as if the owner's last connection
    removed both just after that look: SQLite then makes a -wal of its own, which the reader must take away.
    """
    as_user(65534)
    if args.get("wal_vanishes"):
        exists, looked = os.path.exists, set()

        def seen_once(path: Any) -> bool:
            if str(path).endswith(("-wal", "-shm")) and path not in looked:
                looked.add(path)
                return True
            return exists(path)

        os.path.exists = seen_once
    if args.get("writable"):
        try:
            ClaimService(args["db"]).close()
        except StorageError as error:
            refused = str(error)
        conn = sqlite3.connect(args["db"])
        emit({"refused": refused, "listed": conn.execute("SELECT count(*) FROM claims").fetchone()[0]})
        conn.close()
        return
    with ClaimService(args["db"], read_only=True) as service:
        claim = service.get(args["claim"])
        report: dict[str, Any] = {
            "version": claim.version,
            "history": len(service.history(claim.id)),
            "listed": [c.id for c in service.list_claims()],
            "iterated": [c.id for c in service.iter_claims(page=1)],
            "verify": [m.to_dict() for m in service.verify()],
            "available": sorted(a.trigger for a in service.available(claim.id, "buyer:alice") if a.allowed),
            "due": service.due(),
        }
        try:
            service.fire(claim.id, "escalate", "buyer:alice")
        except StorageError as error:
            report["write"] = str(error)
        emit(report)


def first_open(args: dict[str, Any]) -> None:
    """For each round: say ready, wait for go, then open (create, or migrate) that round's file and file a claim."""
    for number, path in enumerate(args["paths"]):
        emit({"ready": number})
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("no go")
        try:
            with ClaimService(path) as service:
                service.file_claim(filing(f"o-{args['worker']}"))
        except StorageError as error:
            emit({"round": number, "error": str(error)})
        else:
            emit({"round": number, "error": None})


def brim(args: dict[str, Any]) -> None:
    """With one claim stored, fill the disk to its last byte; then create a second database, and fire on the first."""
    folder = os.path.dirname(args["db"])
    with ClaimService(args["db"]) as service:
        claim_id = service.file_claim(filing("o-1")).claim.id
    ballast = os.open(os.path.join(folder, "ballast"), os.O_WRONLY | os.O_CREAT)
    for size in (65536, 1):
        try:
            while True:
                os.write(ballast, b"\0" * size)
        except OSError:
            pass
    os.close(ballast)
    before = set(os.listdir(folder))
    report: dict[str, Any] = {"free": os.statvfs(folder).f_bavail}
    try:
        ClaimService(os.path.join(folder, "new.db")).close()
    except StorageError as error:
        report["create"] = str(error)
    report["left"] = sorted(set(os.listdir(folder)) - before)
    try:
        with ClaimService(args["db"]) as service:
            service.fire(claim_id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE})
    except StorageError as error:
        report["fire"] = str(error)
    emit(report)


def fill(args: dict[str, Any]) -> None:
    """File claims until the disk is full, then free a ballast file and file one more."""
    ballast = os.path.join(os.path.dirname(args["db"]), "ballast")
    with open(ballast, "wb") as file:
        file.write(b"\0" * 256 * 1024)
    service = ClaimService(args["db"], policy=ROOMY)
    probe = service.file_claim(filing("probe"))
    ack(probe.record)
    for n in range(100_000):
        try:
            ack(service.file_claim(filing(f"fill-{n}", reason="x" * 500)).record)
        except StorageError as error:
            emit({"full": str(error)})
            break
    try:
        fired = service.fire(probe.claim.id, "submit_evidence", "buyer:alice", {"evidence": EVIDENCE * 50})
    except StorageError as error:
        emit({"full_fire": str(error)})
    else:
        ack(fired.record)
        emit({"full_fire": None})
    os.remove(ballast)
    ack(service.file_claim(filing("after-space-freed")).record)
    service.close()


def check(args: dict[str, Any]) -> None:
    """A fresh process and service: report every history row and verify()."""
    with ClaimService(args["db"]) as service:
        claims = service.list_claims(limit=100_000)
        rows = [[r.claim_id, r.seq, r.trigger] for c in claims for r in service.history(c.id)]
        versions = {c.id: c.version for c in claims}
        emit(
            {
                "claims": len(claims),
                "rows": rows,
                "versions": versions,
                "verify": [m.to_dict() for m in service.verify()],
            }
        )


if __name__ == "__main__":
    MODES = {
        "contend": contend,
        "stream": stream,
        "storm": storm,
        "readonly": readonly,
        "owner": owner,
        "reader": reader,
        "first_open": first_open,
        "brim": brim,
        "fill": fill,
        "check": check,
    }
    MODES[sys.argv[1]](json.loads(sys.argv[2]))
