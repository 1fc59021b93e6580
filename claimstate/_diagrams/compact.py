"""The console's picture: the whole lifecycle small enough for one screen, every element named for a script.

Each box holds only its state's title and its deadline; each arrow only its action in a few words. The
rest (who acts, the conditions, what a deadline does, what happens inside a state) is the console's to
show on hover and click, so the picture stays about 1,350 by 1,000 points for the built-in lifecycle, where
the printed overview (`dot`) is 2,100 by 2,000. An arrow is drawn from each state it leaves (no box
around states, whose clipped arrows Graphviz draws as stubs), but from a note naming them when it leaves
NOTED_FROM states or more. Every box is a `<g id="state-NAME">` and every arrow a `<g id="arrow-N-FROM">`
(N the transition's index in the definition, FROM its source state, ``new`` for the filing, ``any`` for
a note's), which the console's script finds; Graphviz's own `<title>` elements are taken out, or the
browser would show code names as tooltips.
"""

from __future__ import annotations

import re

from claimstate._diagrams.dot import (
    FONT,
    OUTCOME_FILL,
    START,
    STYLE,
    Merged,
    finals_in_a_row,
    quote,
    wrapped,
)
from claimstate._diagrams.graph import Edge, Graph, Node, edge_kind
from claimstate._diagrams.graphviz import draw_svg, drawable

NOTED_FROM = 3  # a transition from this many states or more is drawn once, from a note naming them
TITLE_POINTS = 14  # a state's title; the console keeps it at 11 CSS pixels or more (a scale of 0.79)
_TITLES = re.compile(r"<title>[^<]*</title>\n?")


def state_id(name: str) -> str:
    """The id of a state's box in the SVG (and in the console's script)."""
    return f"state-{name}"


def arrow_id(transition: int, source: str | None) -> str:
    """The id of a transition's arrow from `source` (``new``: the filing; ``any``: the one arrow drawn from a
    note naming its many sources)."""
    return f"arrow-{transition}-{source or 'new'}"


def _box(node: Node, loops: int) -> str:
    lines = [wrapped(node.title, 20)]
    if node.window:
        lines.append(f"deadline: {node.window}")
    if loops:
        lines.append(f"\u21bb {loops} step{'s' if loops != 1 else ''} inside")
    look = f'peripheries=2, fillcolor="{OUTCOME_FILL.get(node.outcome, "#eeeeee")}"' if node.final else ""
    classes = "state final" if node.final else "state"
    return (
        f"{quote(node.name)} [id={quote(state_id(node.name))}, class={quote(classes)},"
        f" label={quote(chr(10).join(lines))}{', ' + look if look else ''}];"
    )


def to_compact_dot(graph: Graph) -> str:
    """The compact DOT of a lifecycle graph (its loops counted inside their states, not drawn)."""
    loops = [e for e in graph.edges if e.source == e.dest]
    crossing = [e for e in graph.edges if e.source != e.dest]
    noted = {t: sources for t, sources in Merged.of(crossing).sources.items() if len(sources) >= NOTED_FROM}
    inside = {n.name: len({e.transition for e in loops if e.dest == n.name}) for n in graph.nodes}
    out = [
        "digraph lifecycle {",
        f"  graph [rankdir=TB, nodesep=0.3, ranksep=0.4, newrank=true, compound=true, {FONT}];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", {FONT}, fontsize={TITLE_POINTS},'
        ' margin="0.1,0.05"];',
        f"  edge [{FONT}, fontsize=11];",
    ]
    if any(e.source is None for e in graph.edges):
        out.append(f'  {START} [id="start", shape=circle, label="", width=0.2, style=filled, fillcolor="#000000"];')
    out += [f"  {_box(n, inside[n.name])}" for n in graph.nodes]
    out += finals_in_a_row(graph)
    titles = {n.name: n.title for n in graph.nodes}
    drawn: set[int] = set()
    for edge in crossing:
        if edge.transition in noted:
            if edge.transition in drawn:
                continue
            drawn.add(edge.transition)
        look = _arrow(edge, "any" if edge.transition in noted else edge.source)
        if edge.transition in noted:
            note = quote(f":note_{edge.transition}")
            froms = ", ".join(titles[s].lower() for s in noted[edge.transition])
            out.append(f'  {note} [shape=note, style=filled, fillcolor="#f5f5f5", fontsize=11,'
                       f" label={quote(wrapped('from any of: ' + froms, 30))}];")  # fmt: skip
            out.append(f"  {note} -> {quote(edge.dest)} [{look}];")
        else:
            tail = START if edge.source is None else quote(edge.source)
            out.append(f"  {tail} -> {quote(edge.dest)} [{look}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _arrow(edge: Edge, source: str | None) -> str:
    """An arrow's look: its kind's line, its words, and the id the script finds it by."""
    kind = edge_kind(edge)
    return (
        f"id={quote(arrow_id(edge.transition, source))}, class={quote(f'arrow {kind}')}, {STYLE[kind]},"
        f" label={quote(wrapped(edge.action, 14))}"
    )


def compact_svg(graph: Graph) -> str:
    """The compact picture as SVG, without Graphviz's `<title>` tooltips."""
    drawable(len(graph.nodes), len(graph.edges), "definition")
    return _TITLES.sub("", draw_svg(to_compact_dot(graph)))
