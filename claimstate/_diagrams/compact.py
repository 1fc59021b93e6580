"""The console's picture: the whole lifecycle small enough for one screen, every element named for a script.

Each box holds only its state's title and its deadline; each arrow only its action in a few words. The
rest (who acts, the conditions, what a deadline does, what happens inside a state) is the console's to
show on hover and click, so the picture stays about 1,300 by 750 points for the built-in lifecycle, where
the printed overview (`dot`) is 2,100 by 2,000. Arrows leaving several states are drawn once, as the
overview draws them. Every box is a `<g id="state-NAME">` and every arrow a `<g id="arrow-N">` (N the
transition's index in the definition), which the console's script finds; Graphviz's own `<title>`
elements are taken out, or the browser would show code names as tooltips.
"""

from __future__ import annotations

import re

from claimstate._diagrams.dot import (
    _FONT,
    _STYLE,
    OUTCOME_FILL,
    START,
    _Merged,
    _wrapped,
    quote,
)
from claimstate._diagrams.graph import Edge, Graph, Node, edge_kind
from claimstate._diagrams.graphviz import draw_svg, drawable

TITLE_POINTS = 14  # a state's title; the console keeps it at 11 CSS pixels or more (a scale of 0.79)
_TITLES = re.compile(r"<title>[^<]*</title>\n?")


def state_id(name: str) -> str:
    """The id of a state's box in the SVG (and in the console's script)."""
    return f"state-{name}"


def arrow_id(transition: int) -> str:
    """The id of a transition's arrow (one per transition: arrows from several states are drawn once)."""
    return f"arrow-{transition}"


def _box(node: Node, loops: int) -> str:
    lines = [_wrapped(node.title, 20)]
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
    merged = _Merged.of(crossing)
    grouped = {state for group in merged.groups for state in group}
    inside = {n.name: len({e.transition for e in loops if e.dest == n.name}) for n in graph.nodes}
    out = [
        "digraph lifecycle {",
        f"  graph [rankdir=TB, nodesep=0.3, ranksep=0.4, newrank=true, compound=true, {_FONT}];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", {_FONT}, fontsize={TITLE_POINTS},'
        ' margin="0.1,0.05"];',
        f"  edge [{_FONT}, fontsize=11];",
    ]
    if any(e.source is None for e in graph.edges):
        out.append(f'  {START} [id="start", shape=circle, label="", width=0.2, style=filled, fillcolor="#000000"];')
    out += [f"  {_box(n, inside[n.name])}" for n in graph.nodes if n.name not in grouped]
    for number, members in enumerate(merged.groups):
        out.append(f"  subgraph cluster_group_{number} {{")
        out.append(f'    label="the team may act from either"; style="rounded,dashed"; {_FONT}; fontsize=11;'
                   ' color="#0d47a1"; fontcolor="#0d47a1";')  # fmt: skip
        out += [f"    {_box(n, inside[n.name])}" for n in graph.nodes if n.name in members]
        out.append("  }")
    finals = " ".join(quote(n.name) + ";" for n in graph.nodes if n.final)
    if finals:
        out.append(f"  {{ rank=same; {finals} }}")
    titles = {n.name: n.title for n in graph.nodes}
    drawn: set[int] = set()
    for edge in crossing:
        group = merged.group_of(edge)
        if edge.transition in merged.noted or group is not None:
            if edge.transition in drawn:
                continue
            drawn.add(edge.transition)
        look = _arrow(edge)
        if edge.transition in merged.noted:
            note = quote(f":note_{edge.transition}")
            froms = ", ".join(titles[s].lower() for s in merged.noted[edge.transition])
            out.append(f'  {note} [shape=note, style=filled, fillcolor="#f5f5f5", fontsize=11,'
                       f" label={quote(_wrapped('from any of: ' + froms, 30))}];")  # fmt: skip
            out.append(f"  {note} -> {quote(edge.dest)} [{look}];")
        elif group is not None:
            tail = quote(merged.groups[group][0])
            out.append(f"  {tail} -> {quote(edge.dest)} [{look}, ltail=cluster_group_{group}];")
        else:
            tail = START if edge.source is None else quote(edge.source)
            out.append(f"  {tail} -> {quote(edge.dest)} [{look}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _arrow(edge: Edge) -> str:
    kind = edge_kind(edge)
    return (
        f"id={quote(arrow_id(edge.transition))}, class={quote('arrow ' + kind)}, {_STYLE[kind]},"
        f" label={quote(_wrapped(edge.action, 14))}"
    )


def compact_svg(graph: Graph) -> str:
    """The compact picture as SVG, without Graphviz's `<title>` tooltips."""
    drawable(len(graph.nodes), len(graph.edges), "definition")
    return _TITLES.sub("", draw_svg(to_compact_dot(graph)))
