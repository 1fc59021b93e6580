"""The commands that act on the database: init, verify, stats, events, migrate, migrate-store and backup."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

import click
from click.core import ParameterSource

from claimstate import (
    Event,
    Stats,
    StorageError,
    copy_claims,
)
from claimstate.cli._group import command
from claimstate.cli._options import (
    EXIT_CODES,
    Duration,
    NonEmptyPath,
    get_settings,
    open_service,
    read_text,
    say,
    stopped_by_signals,
)
from claimstate.cli._output import (
    emit,
    show_mismatches,
    table,
)
from claimstate.definition import short_fingerprint
from claimstate.scripting import format_time, read_json_object


@command(no_now="it creates or migrates the database, which holds no times")
@click.option("--partitions", type=int, default=None, metavar="N",
              help="PostgreSQL: create the tables hash-partitioned by claim id into N partitions (2 to 256; 0"
              " for plain tables). Chosen when the database is created: a database that exists must have N"
              " already; left out, a new one gets plain tables and one that exists keeps its own.")  # fmt: skip
def init(partitions: int | None) -> None:
    """Create the database, or migrate it to this version's schema."""
    with get_settings().service(create=True, partitions=partitions) as service:
        path, version, made = service.path, service.schema_version, service.partitions
    shown = {"db": path, "schema_version": version} | ({"partitions": made} if made else {})
    emit(shown, lambda: f"{path}: claimstate schema {version}" + (f", {made} partitions by claim id" if made else ""))


@command(no_now="it replays each history at the times recorded")
def verify() -> None:
    """Replay every claim's history and report each stored value that differs (exit 5 when any)."""
    with get_settings().service(read_only=True) as service:
        problems = service.verify()
    show_mismatches(problems)
    if problems:
        claims = len({m.claim_id for m in problems if m.claim_id is not None})
        whole = " (and in the database as a whole)" if any(m.claim_id is None for m in problems) else ""
        say(f"error: verify found {len(problems)} problem(s) in {claims} claim(s){whole}", err=True)
        sys.exit(EXIT_CODES[StorageError])


@command()
@click.option("--stuck-after", type=Duration(), default="1d", show_default=True, metavar="DURATION",
              help="How long an open claim may sit unchanged in a state without a deadline before it counts as"
              " stuck (5m, 2h, 1d).")  # fmt: skip
def stats(stuck_after: timedelta) -> None:
    """Print what an operator watches: claims per state with the oldest and median age, claims stuck in
    states without a deadline, overdue deadlines, each consumer's lag and the tick runners' heartbeats
    (ages at --now, default the clock)."""
    settings = get_settings()
    with settings.service(read_only=True) as service:
        found = service.stats(settings.now, stuck_after=stuck_after)
    emit(found.to_dict(), partial(_stats_text, found))


def _age(age: timedelta | None) -> str:
    """An age in the two largest units that matter: ``3d 4h``, ``5m 12s``, ``0.25s``."""
    if age is None:
        return "-"
    total = age.total_seconds()
    if total < 60:
        return f"{total:.3g}s"
    parts: list[str] = []
    left = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or parts:
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def _stats_text(found: Stats) -> str:
    """The stats as tables, one section per figure."""
    lines = [f"claims: {found.claims} at {format_time(found.now)}"]
    if found.states:
        rows = [(s.state + (" (final)" if s.final else ""), s.count, _age(s.oldest_age), _age(s.median_age))
                for s in found.states]  # fmt: skip
        lines += [table(rows, ("state", "claims", "oldest", "median"))]
    lines += ["", f"stuck (open, in a state without a deadline, unchanged for over {_age(found.stuck_after)}):"]
    stuck = [(s.state, s.count, _age(s.oldest_age), ", ".join(s.oldest_ids)) for s in found.stuck]
    lines += [table(stuck, ("state", "claims", "oldest", "oldest ids")) if stuck else "none"]
    overdue = found.overdue
    lines += ["", f"overdue deadlines (due, not fired): {overdue.count}"]
    if overdue.oldest_due is not None:
        lines[-1] += f", the earliest due {format_time(overdue.oldest_due)} ({_age(overdue.oldest_late)} late)"
    lines += ["", "consumer lag (events not acknowledged, by lane):"]
    lag: list[tuple[object, ...]] = [
        (c.consumer, lane.lane, lane.pending, _age(lane.oldest_age)) for c in found.consumers for lane in c.lanes
    ]
    lag += [(c.consumer, "-", 0, "-") for c in found.consumers if not c.lanes]
    lines += [table(lag, ("consumer", "lane", "pending", "oldest")) if lag else "no consumers"]
    lines += ["", "tick runners (last heartbeat):"]
    beats = [
        (w.name, w.kind, format_time(w.started_at), _age(w.since_beat) + " ago",
         "-" if w.last_tick_at is None else format_time(w.last_tick_at), w.fired)
        for w in found.workers
    ]  # fmt: skip
    lines += [table(beats, ("worker", "kind", "started", "last beat", "last tick", "fired")) if beats else "none"]
    return "\n".join(lines)


@command(no_now="leases on the feed run on the wall clock")
@click.option("--consumer", metavar="NAME", help="Only the events NAME has not acknowledged (kept per name).")
@click.option("--ack", is_flag=True, help="Take them as a worker of NAME, acknowledging each batch once printed.")
@click.option("--follow", is_flag=True, help="Keep printing new events as they come (needs --ack); Ctrl-C stops.")
@click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between looks for new events, with --follow.")  # fmt: skip
@click.option("--lease", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="With --ack: seconds a batch stays this worker's (a killed one's return then).")  # fmt: skip
def events(consumer: str | None, ack: bool, follow: bool, poll: float, lease: float) -> None:
    """Print transition events as JSON Lines, one per line, oldest first: every retained one, or with
    --consumer the ones NAME has not acknowledged. With --ack each batch is acknowledged only once it was
    written out (to the terminal, a file or a pipe's buffer), so a reader gets every event at least once:
    dedupe on claim_id and seq."""
    if ack and consumer is None:
        raise click.UsageError("--ack needs --consumer NAME: progress is kept per consumer")
    if follow and not ack:
        raise click.UsageError("--follow needs --consumer NAME and --ack: unacknowledged events would print again")
    ctx = click.get_current_context()
    for option, needs, given in (("--lease", "--ack", ack), ("--poll", "--follow", follow)):
        if not given and ctx.get_parameter_source(option.strip("-")) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{option} goes with {needs}, which was not given")
    settings = get_settings()
    if not ack:
        with settings.service(read_only=True) as service:
            after = 0
            while page := service.feed(consumer, after=after, limit=500):
                if not _printed(page):
                    return
                after = page[-1].position
        return
    assert consumer is not None
    with settings.service(migrating=True) as service:  # it fires nothing: a change awaiting its plan stops no feed
        if follow:
            stop = threading.Event()
            with stopped_by_signals(stop):
                service.consume(consumer, partial(_print_event, stop), stop=stop, poll=poll, lease=lease)
            return
        while batch := service.events(consumer, limit=500, lease=lease):
            if not _printed(batch):
                return
            service.ack(consumer, batch[-1])
        left = bool(service.feed(consumer, limit=1))
    if left:
        say(
            f"note: events of {consumer} remain unacknowledged: leased to another worker (or set aside after a"
            " failure) until its lease ends, or written meanwhile; run again to take them",
            err=True,
        )


def _printed(events: Sequence[Event]) -> bool:
    """Write the events out; False once nobody reads them (a closed pipe): then nothing more is printed
    or acknowledged, and the command ends quietly with exit 0."""
    try:
        for event in events:
            click.echo(json.dumps(event.to_dict()))  # ASCII: every control character escaped
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error as Python exits
        return False
    return True


def _print_event(stop: threading.Event, event: Event) -> None:
    """Write one event out; once nobody reads (a closed pipe), stop without acknowledging it."""
    if not _printed([event]):
        stop.set()
        raise BrokenPipeError("the reader of the events went away")


@command(
    "migrate-store",
    no_db="it names both databases as arguments",
    no_now="it copies the claims as stored",
)
@click.argument("source", type=NonEmptyPath(dir_okay=False, readable=False))
@click.argument("target", type=NonEmptyPath(dir_okay=False, readable=False))
def migrate_store(source: str, target: str) -> None:
    """Copy every claim and its whole history from SOURCE (a SQLite file) into the empty TARGET (a
    postgresql:// URL, or another file), then verify TARGET (exit 5 if it finds anything)."""
    definition = get_settings().definition
    with (
        open_service(source, read_only=True, definition=definition) as old,
        open_service(target, create=True, definition=definition, migrating=True) as new,
    ):
        moved = copy_claims(old, new)
    done = (
        f"copied {moved.claims} claim(s), {moved.transitions} history row(s) and {moved.events} event(s) from"
        f" {old.path} to {new.path}"
    )
    emit(
        {"source": old.path, "target": new.path, "claims": moved.claims, "transitions": moved.transitions,
         "events": moved.events, "mismatches": [m.to_dict() for m in moved.mismatches]},
        lambda: done + ("; verify: clean" if not moved.mismatches else ""),
    )  # fmt: skip
    if moved.mismatches:
        show_mismatches(moved.mismatches)
        say(f"error: verify found {len(moved.mismatches)} problem(s) in {new.path}", err=True)
        sys.exit(EXIT_CODES[StorageError])


@command()
@click.option("--plan", "plan_path", required=True, type=NonEmptyPath(dir_okay=False, allow_dash=True),
              help="The plan, a JSON file (- reads stdin): the states to map, and the deadlines to keep or"
              " recompute.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Only print what would move; write nothing.")
def migrate(plan_path: str, dry_run: bool) -> None:
    """Move the open claims decided under another lifecycle definition onto this one (--definition), as the
    plan says: checked whole first (exit 2 naming every problem, nothing written), then one transaction."""
    settings = get_settings()
    plan = read_json_object(read_text(plan_path, "--plan"), "plan")
    with settings.service(read_only=dry_run, migrating=not dry_run) as service:
        migration = service.migrate(plan, dry_run=dry_run, now=settings.now)

    def human() -> str:
        verb = "would move" if dry_run else "moved"
        head = f"{verb} {len(migration.moves)} open claim(s) onto definition {short_fingerprint(migration.definition)}"
        if not migration.moves:
            return head + ": nothing to move"
        rows = [(m.claim_id, m.source, m.dest, _when(m.due_before), _when(m.due_after), m.how) for m in migration.moves]
        return head + "\n" + table(rows, ("claim", "from", "to", "deadline before", "deadline after", "deadline"))

    emit(migration.to_dict(), human)


def _when(at: datetime | None) -> str:
    return "-" if at is None else format_time(at)


@command(no_now="it copies the database as it is")
@click.argument("dest", type=NonEmptyPath(readable=False))
@click.option("--overwrite", is_flag=True, help="Replace the SQLite file DEST if there is one (never the database).")
def backup(dest: str, overwrite: bool) -> None:
    """Back the database up into DEST while services go on writing, and check the copy: SQLite's online
    backup into the new file DEST, verified, kept only if clean; on PostgreSQL a base backup into the new
    folder DEST by pg_basebackup, checked by pg_verifybackup (exit 5 when the check finds problems)."""
    with get_settings().service(read_only=True) as service:
        made = service.backup(dest, overwrite=overwrite)
    checked = "verified clean" if made.clean else f"{len(made.problems)} problem(s) found: not kept"
    emit(
        made.to_dict(),
        lambda: (
            f"{made.source} -> {made.where}: {made.claims:,} claims, {made.transitions:,} transitions,"
            f" {_size(made.bytes)}, {checked}"
        ),
    )
    if not made.clean:
        if not get_settings().json:
            show_mismatches(made.problems)
        say(f"error: the copy of {made.source} has {len(made.problems)} problem(s); nothing was written at {dest}",
            err=True)  # fmt: skip
        sys.exit(EXIT_CODES[StorageError])


def _size(count: int) -> str:
    """A size in bytes as people read it: ``812 bytes``, ``1.2 MB``, ``3.4 GB`` (powers of 1000)."""
    if count < 1000:
        return f"{count} bytes"
    size = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.1f} {unit}"
