"""The console's live figures: what `Stats` and `Flows` read, keyed as the overview's picture is.

Per state: open claims, the oldest and the median time in the state, stuck claims (states without a
deadline) and overdue deadlines; per state over the window, how often claims left it and the median and
90th percentile of the time they spent; per transition and per arrow (a transition from one state), how
often it was taken. Plain JSON for the page's script.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from claimstate._definition import Definition
from claimstate._flows import Flows
from claimstate._service import ClaimService
from claimstate._stats import Stats
from claimstate._time import to_iso


def duration(span: timedelta) -> str:
    """``3.5 days``, ``2 hours``, ``40 minutes``: a span in its largest unit, to a tenth (as the page's script)."""
    seconds = span.total_seconds()
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size, 1)
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    return f"{round(seconds)} seconds"


def _seconds(value: Any) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def figures_of(service: ClaimService, *, days: int, stuck_after: timedelta, claims: str) -> dict[str, Any]:
    """The figures as the console serves them, read from `service` now: `stats` and the last `days` of
    `flows`."""
    stats = service.stats(stuck_after=stuck_after)
    flows = service.flows(stats.now - timedelta(days=days), stats.now)
    window = "day" if days == 1 else f"{days} days"
    return live_figures(service.definition, stats, flows, window=window, claims=claims)


def live_figures(definition: Definition, stats: Stats, flows: Flows, *, window: str, claims: str) -> dict[str, Any]:
    """The figures the overview draws, `window` (``30 days``) naming the flows' window in words and
    `claims` the URL of the claims list."""
    states: dict[str, dict[str, Any]] = {s.name: {} for s in definition.states}
    for found in stats.states:
        figures = states.setdefault(found.state, {})
        figures["claims"] = found.count
        if not found.final:
            figures.update(open=found.count, oldest_age=_seconds(found.oldest_age),
                           median_age=_seconds(found.median_age))  # fmt: skip
    for stuck in stats.stuck:
        states.setdefault(stuck.state, {})["stuck"] = stuck.count
    for overdue in stats.overdue_states:
        states.setdefault(overdue.state, {})["overdue"] = overdue.count
    for spent in flows.states:
        states.setdefault(spent.state, {}).update(
            left=spent.count, time_median=_seconds(spent.median), time_p90=_seconds(spent.p90)
        )
    arrows: dict[str, int] = {}  # by transition, and by transition and source ("N-FROM", as the arrows' ids)
    index = {id(t): number for number, t in enumerate(definition.transitions)}
    for arrow in flows.arrows:
        taken = next((t for t in definition.candidates(arrow.source, arrow.trigger) if t.dest == arrow.dest), None)
        if taken is not None:  # history of a transition this definition no longer has is not drawn
            number = index[id(taken)]
            arrows[str(number)] = arrows.get(str(number), 0) + arrow.count
            arrows[f"{number}-{arrow.source or 'new'}"] = arrow.count
    return {
        "now": to_iso(stats.now).replace("T", " ")[:16] + " UTC",
        "window": window,
        "stuck_after": _seconds(stats.stuck_after),
        "claims": claims,
        "states": states,
        "arrows": arrows,
    }
