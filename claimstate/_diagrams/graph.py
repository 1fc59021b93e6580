"""Diagrams as a pipeline, step one: the definition (and optionally one claim's history) is extracted into a small
graph of plain words, which one renderer per format turns into text or bytes.

Renderers know their syntax and nothing of the lifecycle; this module knows the lifecycle's words and
nothing of any syntax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import attrs

from claimstate._actor import SYSTEM
from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import ROLES, Definition, Policy, View
from claimstate._errors import InvalidInput
from claimstate._lifecycle import CLAIM_LIFECYCLE
from claimstate._time import to_iso


@attrs.frozen
class Node:
    """A state as people read it; `current` and `visited` only on a claim's own diagram."""

    name: str
    meaning: str
    final: bool
    deadline: str | None
    current: bool = False
    visited: bool = False
    title: str = ""
    note: str = ""
    window: str | None = None  # the deadline's window in words (``7 days``), when the state sets one
    outcome: str = ""  # a final state's outcome for money and goods (a key of OUTCOMES), if it says one
    clock: str = ""  # the deadline's description alone (``the buyer must ship the return``)


@attrs.frozen
class Edge:
    """One arrow: a transition from one source (None: the filing arrow into the lifecycle).

    `data` names what the trigger takes (``amount``, ``note (optional)``); `steps` numbers the times a
    claim took it, in order; `faded` marks an arrow a claim did not take.
    """

    source: str | None
    dest: str
    trigger: str
    transition: int
    description: str
    guards: tuple[str, ...]
    actors: tuple[str, ...]
    timer: str | None
    data: tuple[str, ...] = ()
    steps: tuple[int, ...] = ()
    faded: bool = False
    action: str = ""  # the transition's label: a few plain words
    conditions: tuple[int, ...] = ()  # its guards' numbers among the graph's `conditions`, in order

    @property
    def numbers(self) -> str:
        """``(3, 5) `` for the claim's steps along this arrow, else nothing."""
        return f"({', '.join(map(str, self.steps))}) " if self.steps else ""

    @property
    def label(self) -> str:
        """``trigger [guard] (who)``, numbered with the claim's steps when it has any."""
        guard = f" [{' and '.join(self.guards)}]" if self.guards else ""
        timer = f" after {self.timer}" if self.timer else ""
        return f"{self.numbers}{self.trigger}{timer}{guard} ({', '.join(self.actors)})"


@attrs.frozen
class Step:
    """One transition a claim took, told with its facts: who, what, when, and the data given."""

    seq: int
    source: str | None
    dest: str
    words: str  # ``supplier acme: either party offers a refund (kind partial_refund, amount 5.00), 5 Jan 11:00``
    at: str
    actor: str
    trigger: str


@attrs.frozen
class Graph:
    """The whole picture: title, states, arrows, and whose claim it is if it is one claim's diagram."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    claim_id: str | None = None
    overview: bool = False  # the whole lifecycle at a glance: repeated arrows merged, loops told inside states
    steps: tuple[Step, ...] = ()  # a claim's path, in order
    loops_drawn: bool = False  # a detail view: an arrow that stays in its state is drawn, not told inside it
    facts: str = ""  # a claim's order, parties, amount and running deadline, in words
    # Every guard's words, numbered from 1 in definition order: the same numbers in every view of it.
    conditions: tuple[str, ...] = ()
    views: tuple[View, ...] = ()  # the definition's detail views, for the pages' links
    view: str | None = None  # the name of the view this graph draws, if it is one

    def transition_rows(self) -> list[dict[str, str]]:
        """One row per transition of the definition, in plain words, for the pages' tables."""
        rows: dict[int, dict[str, str]] = {}
        for e in self.edges:
            row = rows.setdefault(
                e.transition,
                {
                    "trigger": e.trigger,
                    "from": "",
                    "to": e.dest,
                    "who": ", ".join(e.actors),
                    "guard": "; ".join(e.guards) or "-",
                    "deadline": f"after {e.timer}" if e.timer else "-",
                    "data": ", ".join(e.data) or "-",
                    "what": e.description,
                },
            )
            row["from"] = ", ".join(filter(None, [row["from"], e.source or "(new claim)"]))
        return list(rows.values())

    def state_rows(self) -> list[dict[str, str]]:
        return [
            {
                "state": n.name,
                "meaning": n.meaning,
                "final": "final" if n.final else "-",
                "deadline": n.deadline or "-",
            }
            for n in self.nodes
        ]


def window_words(window: timedelta) -> str:
    """``7 days``, ``36 hours``, ``90 minutes``: the largest whole unit."""
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def extract(
    definition: Definition = CLAIM_LIFECYCLE,
    *,
    policy: Policy | None = None,
    claim: Claim | None = None,
    history: Sequence[TransitionRecord] = (),
    view: View | None = None,
) -> Graph:
    """The graph of `definition` under `policy`; with a claim and its history, that claim's path on it;
    with a view, the detail of one phase."""
    policy = policy or definition.policy()
    if (claim is None) != (not history):
        raise InvalidInput("a claim's diagram needs both the claim and its history", field="history")
    steps: dict[tuple[str | None, str, str], list[int]] = {}
    for record in history:
        steps.setdefault((record.source, record.dest, record.trigger), []).append(record.seq)
    visited = {r.dest for r in history}
    nodes = tuple(
        Node(
            s.name,
            s.meaning,
            s.final,
            None
            if s.deadline is None
            else f"{s.deadline.name}: {s.deadline.description}, within {window_words(policy.window(s.deadline.name))}",
            current=claim is not None and claim.state == s.name,
            visited=s.name in visited,
            title=s.title,
            note=s.note,
            window=None if s.deadline is None else window_words(policy.window(s.deadline.name)),
            outcome=s.outcome,
            clock="" if s.deadline is None else s.deadline.description,
        )
        for s in definition.states
    )
    windows = {s.name: s.deadline for s in definition.states}
    conditions = tuple(dict.fromkeys(g.description for t in definition.transitions for g in t.guards))
    numbers = {words: number for number, words in enumerate(conditions, 1)}
    views = definition.views
    edges = []
    for index, t in enumerate(definition.transitions):
        for source in t.sources or (None,):
            rule = windows.get(source) if source else None
            taken = tuple(steps.get((source, t.dest, t.trigger), ()))
            edges.append(
                Edge(
                    source,
                    t.dest,
                    t.trigger,
                    index,
                    t.description,
                    tuple(g.description for g in t.guards),
                    tuple(r for r in ROLES if r in t.actors),
                    window_words(policy.window(rule.name)) if t.on_deadline and rule else None,
                    tuple(f.name if f.required else f"{f.name} (optional)" for f in t.fields),
                    taken,
                    faded=claim is not None and not taken,
                    action=t.label,
                    conditions=tuple(numbers[g.description] for g in t.guards),
                )
            )
    if view is not None:
        shown = [e for e in edges if e.trigger in view.triggers]
        touched = {e.dest for e in shown} | {e.source for e in shown}
        title = f"{view.title}: a detail of the {definition.name} lifecycle"
        return Graph(title, tuple(n for n in nodes if n.name in touched), tuple(shown), overview=True, loops_drawn=True,
                     conditions=conditions, views=views, view=view.name)  # fmt: skip
    if claim is None:
        return Graph(f"The {definition.name} lifecycle", nodes, tuple(edges), overview=True, conditions=conditions,
                     views=views)  # fmt: skip
    titles = {s.name: s.title for s in definition.states}
    story = tuple(
        Step(r.seq, r.source, r.dest, _told(r, definition.label(r.source, r.trigger, r.dest)),
             to_iso(r.at), str(r.actor), r.trigger)
        for r in history
    )  # fmt: skip
    title = f"Claim on order {claim.order_id}: {claim.buyer_id} against {claim.supplier_id}, {claim.amount.format()}"
    deadline = "" if claim.deadline is None else f"; its clock runs until {_when(claim.deadline.due)} UTC"
    facts = f"Claim {claim.id}, now {titles.get(claim.state, claim.state)} ({claim.state}){deadline}."
    return Graph(title, nodes, tuple(edges), claim.id, steps=story, facts=facts, conditions=conditions, views=views)


def _when(at: datetime) -> str:
    """``5 Jan 11:00``: enough of a time for a step's label."""
    return f"{at.day} {at.strftime('%b %H:%M')}"


# The words a transition's label starts with to say who acts; a step says who acted instead.
_WHO = ("the other party ", "either party ", "buyer ", "supplier ", "team ")


def action(label: str) -> str:
    """A transition's label without the words that say who acts (a story says who acted)."""
    return next((label.removeprefix(w) for w in _WHO if label.startswith(w)), label)


def _told(record: TransitionRecord, label: str) -> str:
    """A step in words: who, what (the transition's label), the short data values given, when (a filing's
    data is the page's title already)."""
    given = ", ".join(
        f"{k} {v}"
        for k, v in record.data.items()
        if record.seq > 1 and isinstance(v, str | int) and not isinstance(v, bool) and len(str(v)) <= 24
    )
    who = "the clock" if record.actor.role == SYSTEM else f"{record.actor.role} {record.actor.id}"
    return f"{who}: {action(label)}" + (f" ({given})" if given else "") + f", {_when(record.at)}"


def edge_kind(edge: Edge) -> str:
    """How an arrow is drawn, besides its colour: by the clock, by the team, by one party, by either."""
    if SYSTEM in edge.actors:
        return "timer"
    if "agent" in edge.actors:
        return "agent"
    if edge.actors == ("supplier",):
        return "supplier"
    if edge.actors == ("buyer",):
        return "buyer"
    return "parties"


def graph_of_export(exported: object) -> Graph:
    """The graph `extract` gives for a definition, built from its export (`Definition.to_dict()`, `claimstate
    model --export`), so a lifecycle can be drawn from a file with no Python definition behind it: a change
    review draws both sides so. An export has no detail views (`views` is empty); a hand-edited one may leave
    out what a definition fills in by default (a state's title, a transition's label, its guards and data).
    KeyError or TypeError: not an export."""
    data = cast(Mapping[str, Any], exported)
    states = {s["name"]: s for s in data["states"]}

    def window(state: Mapping[str, Any] | None) -> str | None:
        deadline = None if state is None else state.get("deadline")
        return None if not deadline else window_words(timedelta(seconds=int(deadline["window_seconds"])))

    nodes = tuple(
        Node(
            s["name"],
            s.get("meaning", ""),
            bool(s.get("final", False)),
            None
            if not s.get("deadline")
            else f"{s['deadline']['name']}: {s['deadline'].get('description', '')}, within {window(s)}",
            title=s.get("title") or s["name"].replace("_", " ").capitalize(),
            note=s.get("note", ""),
            window=window(s),
            outcome=s.get("outcome", ""),
            clock=s["deadline"].get("description", "") if s.get("deadline") else "",
        )
        for s in data["states"]
    )
    transitions = data["transitions"]
    conditions = tuple(dict.fromkeys(g["description"] for t in transitions for g in t.get("guards", ())))
    numbers = {words: number for number, words in enumerate(conditions, 1)}
    edges = []
    for index, t in enumerate(transitions):
        actors = set(t.get("actors", ()))
        fields = tuple(f["name"] if f.get("required", True) else f"{f['name']} (optional)" for f in t.get("data", ()))
        for source in t["sources"] or (None,):
            edges.append(
                Edge(
                    source,
                    t["dest"],
                    t["trigger"],
                    index,
                    t.get("description", ""),
                    tuple(g["description"] for g in t.get("guards", ())),
                    tuple(r for r in ROLES if r in actors),
                    window(states.get(source)) if t.get("on_deadline") and source else None,
                    fields,
                    action=t.get("label") or t.get("description", ""),
                    conditions=tuple(numbers[g["description"]] for g in t.get("guards", ())),
                )
            )
    return Graph(f"The {data['name']} lifecycle", nodes, tuple(edges), overview=True, conditions=conditions)
