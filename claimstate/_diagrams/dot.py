"""Graphviz DOT text. Arrows are told apart by line style and label, not by colour alone, so the
picture reads in black and white: the clock dashed, the dispute team bold, the supplier dotted, either
party double.

The overview leads with plain words: each state's title, its identifier small, the deadline its clock
runs and what happens inside it (arrows that stay in the state are told there, not drawn as loops); an
arrow from several states is drawn once (from a box around states that share several such arrows, or
from a note naming the states); guards are numbered footnotes in the legend drawn under the picture.
A claim's own diagram and the detail views draw every arrow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import attrs

from claimstate._definition import OUTCOMES
from claimstate._diagrams.graph import Edge, Graph, Node, edge_kind
from claimstate._text import visible

_COLOUR = {"timer": "#6a1b9a", "agent": "#0d47a1", "supplier": "#bf360c", "buyer": "#1b5e20", "parties": "#00695c"}
_LINE = {  # the line of each kind of arrow: it reads without its colour too
    "timer": "style=dashed, penwidth=1.6",
    "agent": "style=bold, penwidth=2.4",
    "supplier": "style=dotted, penwidth=2",
    "buyer": "style=solid, penwidth=1.4",
    "parties": 'style=solid, penwidth=1.2, color="{c}:#ffffff:{c}"',  # two lines
}
STYLE = {
    kind: (line.format(c=_COLOUR[kind]) if "{c}" in line else f'{line}, color="{_COLOUR[kind]}"')
    + f', fontcolor="{_COLOUR[kind]}"'
    for kind, line in _LINE.items()
}
# How to read the arrows: the kind, a sample line drawn in text (for the HTML page), what it means.
LEGEND = (
    ("timer", "- - - - -", "the clock, when a deadline has passed"),
    ("agent", "\u2501\u2501\u2501\u2501\u2501", "the dispute team decides or asks"),
    ("supplier", "\u00b7 \u00b7 \u00b7 \u00b7 \u00b7 \u00b7", "the supplier"),
    ("buyer", "\u2500\u2500\u2500\u2500\u2500", "the buyer"),
    ("parties", "\u2550\u2550\u2550\u2550\u2550", "either party (buyer or supplier)"),
)
FINAL_WORDS = "double border: a final state, the claim is closed"
# A final state's fill by its outcome: greens where money goes back to the buyer, amber to the supplier.
OUTCOME_FILL = {"refund_with_return": "#c8e6c9", "refund_goods_kept": "#b3e5fc", "paid_to_supplier": "#ffe0b2"}
_FADED = 'color="#d0d0d0", fontcolor="#b0b0b0"'
_TAKEN = "penwidth=3"
_LOOP_PORTS = ("e", "w", "n", "s")
START = '":start"'  # the black dot a filing starts from (see _own)
FONT = 'fontname="DejaVu Sans"'  # its own metrics are built into Graphviz: text fits its boxes anywhere


def colour_of(kind: str) -> str:
    """The colour of a kind of arrow (see LEGEND)."""
    return _COLOUR[kind]


def finals_in_a_row(graph: Graph) -> list[str]:
    """The DOT line that lays the final states side by side at the bottom (none when there are none)."""
    finals = " ".join(quote(n.name) + ";" for n in graph.nodes if n.final)
    return [f"  {{ rank=same; {finals} }}"] if finals else []


def team_box(number: int, fontsize: int) -> list[str]:
    """The opening lines of the box drawn around states the team may act from alike (closed by ``}``)."""
    return [f"  subgraph cluster_group_{number} {{",
            f'    label="the dispute team may act from either"; style="rounded,dashed"; {FONT};'
            f' fontsize={fontsize}; color="#0d47a1"; fontcolor="#0d47a1";']  # fmt: skip


def _outcome_fill(node: Node) -> str:
    """The fill of a final state's box by its outcome (nothing when it says none)."""
    return f', fillcolor="{OUTCOME_FILL[node.outcome]}"' if node.outcome in OUTCOME_FILL else ""


def _id(state: str) -> str:
    """A state's node id: quoted, so a name DOT reserves (node, graph, edge...) is an id like any other."""
    return quote(state)


def _own(name: str) -> str:
    """The id of a node of the picture's own (the start dot, the legend, notes, boxes): it starts with a
    colon, which no state name holds, so none can be taken for a state."""
    return quote(f":{name}")


def quote(text: str) -> str:
    return f'"{_escaped(text)}"'


def _escaped(text: str) -> str:
    """Text inside a DOT string: control characters shown as escapes (`visible`); &, < and > as the entities
    Graphviz reads back as those characters, so no markup from a claim stands in the file for a tool to paste
    into a page (as HTML and SVG escape it); backslashes and quotes escaped; line ends as \\n."""
    text = visible(text, keep="\n").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(graph: Graph) -> str:
    """The lifecycle as DOT: the overview at a glance, or every arrow (a claim's path numbered and bold)."""
    out = [
        f"digraph {quote(graph.title)} {{",
        f"  graph [label={quote(graph.title)}, labelloc=t, fontsize=22, {FONT}, rankdir=TB,"
        f" nodesep={1.0 if graph.loops_drawn else 0.6}, ranksep=0.7, newrank=true, compound=true];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", {FONT}, fontsize=13, margin="0.15,0.08"];',
        f"  edge [{FONT}, fontsize=11];",
        *(
            [f'  {START} [shape=circle, label="", width=0.25, style=filled, fillcolor="#000000"];']
            if _filed(graph)
            else []
        ),
    ]
    if graph.overview:
        out += _overview(graph)
    elif graph.steps:
        out += _story(graph)
    else:
        out += _every_arrow(graph)
    out.append("}")
    return "\n".join(out) + "\n"


def _filed(graph: Graph) -> bool:
    """Whether the picture shows a claim being filed (then it starts at a black dot)."""
    return bool(graph.steps) or any(e.source is None for e in graph.edges)


# --- the overview ----------------------------------------------------------------------------------------


@attrs.frozen
class Merged:
    """How the overview draws arrows that leave several states: `groups` of states that several such arrows
    leave together (boxed, each arrow drawn once from the box), and the other such arrows (`noted`: drawn
    once from a note naming their states), by transition."""

    groups: tuple[tuple[str, ...], ...]
    noted: dict[int, tuple[str, ...]]
    sources: dict[int, tuple[str, ...]]

    @classmethod
    def of(cls, edges: Iterable[Edge]) -> Merged:
        sources: dict[int, list[str]] = {}
        for edge in edges:
            if edge.source is not None:
                sources.setdefault(edge.transition, []).append(edge.source)
        shared = Counter(tuple(s) for s in sources.values() if len(s) > 1)
        groups = tuple(group for group, count in shared.items() if count > 1)
        noted = {t: tuple(s) for t, s in sources.items() if len(s) > 1 and tuple(s) not in groups}
        return cls(groups, noted, {t: tuple(s) for t, s in sources.items()})

    def group_of(self, edge: Edge) -> int | None:
        """The index of the group an arrow is drawn from, if it is."""
        sources = self.sources.get(edge.transition)
        return self.groups.index(sources) if sources in self.groups else None


def _overview(graph: Graph) -> list[str]:
    loops = [] if graph.loops_drawn else [e for e in graph.edges if e.source == e.dest]
    crossing = [e for e in graph.edges if e not in loops]
    merged = Merged.of(crossing)
    grouped = {state for group in merged.groups for state in group}

    def box(node: Node) -> str:
        return _state_label(node, [e for e in loops if e.dest == node.name])

    out = [f"  {_id(n.name)} [{box(n)}];" for n in graph.nodes if not n.final and n.name not in grouped]
    for number, members in enumerate(merged.groups):
        out += team_box(number, 12)
        out += [f"    {_id(n.name)} [{box(n)}];" for n in graph.nodes if n.name in members]
        out.append("  }")
    out.append("  subgraph cluster_final {")
    out.append(f'    label="closed: final states"; style="rounded,dashed"; {FONT}; fontsize=12; rank=same;')
    out += [
        f"    {_id(n.name)} [peripheries=2{_outcome_fill(n)}, {_state_label(n, [])}];" for n in graph.nodes if n.final
    ]
    out.append("  }")
    footnotes: dict[str, int] = {}
    titles = {n.name: n.title for n in graph.nodes}
    drawn: set[int] = set()
    for edge in crossing:
        attrs = f"{STYLE[edge_kind(edge)]}, label={_edge_words(edge, footnotes)}"
        group = merged.group_of(edge)
        if edge.transition in merged.noted or group is not None:
            if edge.transition in drawn:
                continue
            drawn.add(edge.transition)
        if edge.transition in merged.noted:
            note = _own(f"note_{edge.transition}")
            froms = ", ".join(titles[s].lower() for s in merged.noted[edge.transition])
            out.append(f'  {note} [shape=note, style=filled, fillcolor="#f5f5f5", fontsize=12,'
                       f" label={quote(wrapped('from any of: ' + froms, 40))}];")  # fmt: skip
            out.append(f"  {note} -> {_id(edge.dest)} [{attrs}];")
        elif group is not None:
            out.append(f"  {_id(merged.groups[group][0])} -> {_id(edge.dest)} [{attrs}, ltail=cluster_group_{group}];")
        elif edge.source == edge.dest:  # a detail view's loop: its words in a small box it points to
            stay, kind = _own(f"stay_{len(out)}"), edge_kind(edge)
            words = wrapped(f"{edge.action}{_marks(edge, footnotes)}", 30) + f"\n(stays: {titles[edge.dest]})"
            out.append(f'  {stay} [style="rounded,dashed", color="#999999", fontsize=11, fontcolor="{_COLOUR[kind]}",'
                       f" label={quote(words)}];")  # fmt: skip
            out.append(f"  {_id(edge.dest)} -> {stay} [{STYLE[kind]}];")
        else:
            out.append(f"  {START if edge.source is None else _id(edge.source)} -> {_id(edge.dest)} [{attrs}];")
    kinds = {edge_kind(e) for e in crossing}
    out += _legend(footnotes, [n for n in graph.nodes if n.final], kinds)
    return out


def _state_label(node: Node, loops: Iterable[Edge]) -> str:
    """A state's box: its title, the deadline it runs, the rule it keeps, what happens in it (its code name is
    in the page's tables, not in the picture).

    Plain text lines: the built-in Graphviz has no HTML-like labels (it is built without expat)."""
    lines = [node.title]
    if node.window:
        lines.append(f"deadline: {node.window}")
    if node.note:
        lines.append(node.note.upper())
    actions = list(dict.fromkeys(e.action for e in loops))
    if actions:
        lines.append("here: " + actions[0])
        lines += [f"      {a}" for a in actions[1:]]
    return f"label={quote(chr(10).join(lines))}"


def _edge_words(edge: Edge, footnotes: dict[str, int]) -> str:
    """The arrow's action in words, the clock's window, and its guards as footnote numbers."""
    words = edge.action + (f" ({edge.timer})" if edge.timer else "")
    return quote(wrapped(words + _marks(edge, footnotes)))


def _marks(edge: Edge, footnotes: dict[str, int]) -> str:
    """`` [1, 4]``: the edge's condition numbers, sorted (the same in every view), noting them for the legend."""
    numbers = edge.conditions or tuple(footnotes.setdefault(g, len(footnotes) + 1) for g in edge.guards)
    footnotes.update(zip(edge.guards, numbers, strict=True))
    return f" [{', '.join(map(str, sorted(set(numbers))))}]" if numbers else ""


def wrapped(text: str, width: int = 26) -> str:
    """Break a label into lines of about `width` characters, so arrows' labels stay narrow."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _legend(footnotes: dict[str, int], finals: list[Node], kinds: set[str]) -> list[str]:
    """How to read the picture, drawn in it under the final states: a sample of each kind of line drawn
    with what it means, the final states' double border and the colours of their outcomes, and the numbered
    guards in number order."""
    out = ["  subgraph cluster_legend {", f'    label="How to read it"; style=rounded; color="#999999"; {FONT};'
           " fontsize=14; labeljust=l;"]  # fmt: skip
    previous = None
    for kind, _sample, meaning in (row for row in LEGEND if row[0] in kinds):
        tail, head = _own(f"legend_{kind}_from"), _own(f"legend_{kind}_to")
        out.append(f'    {tail} [shape=point, width=0.05, color="#ffffff"]; {head} [shape=point, width=0.05,'
                   f' color="#ffffff"]; {{ rank=same; {tail}; {head}; }}')  # fmt: skip
        out.append(f"    {tail} -> {head} [{STYLE[kind]}, label={quote(meaning)}, minlen=4];")
        if previous is not None:
            out.append(f"    {previous} -> {tail} [style=invis];")
        previous = tail
    out.append(
        f'    {_own("legend_final")} [shape=box, style="rounded", peripheries=2, fontsize=12,'
        f" label={quote(FINAL_WORDS)}];"
    )
    if previous is not None:
        out.append(f"    {previous} -> {_own('legend_final')} [style=invis];")
    previous = _own("legend_final")
    for outcome in dict.fromkeys(n.outcome for n in finals if n.outcome):
        box = _own(f"legend_{outcome}")
        out.append(f'    {box} [shape=box, style="rounded,filled", peripheries=2, fontsize=12,'
                   f' fillcolor="{OUTCOME_FILL[outcome]}", label={quote(OUTCOMES[outcome])}];')  # fmt: skip
        out.append(f"    {previous} -> {box} [style=invis];")
        previous = box
    if footnotes:
        ordered = sorted(footnotes.items(), key=lambda item: item[1])
        words = "".join(f"[{number}] {_escaped(guard)}\\l" for guard, number in ordered)
        out.append(f'    {_own("legend_guards")} [shape=box, style="rounded", color="#ffffff", fontsize=12,'
                   f' label="Only when:\\l{words}"];')  # fmt: skip
        out.append(f"    {previous} -> {_own('legend_guards')} [style=invis];")
    out.append("  }")
    first = next((_own(f"legend_{kind}_from") for kind, _, _ in LEGEND if kind in kinds), _own("legend_final"))
    out += [f"  {_id(final.name)} -> {first} [style=invis];" for final in finals[len(finals) // 2 :][:1]]
    return out


# --- a claim's own story -------------------------------------------------------------------------------

_ROLE_STYLE = {"system": "timer", "agent": "agent", "supplier": "supplier", "buyer": "buyer"}


def _story(graph: Graph) -> list[str]:
    """A claim's path as a line from top to bottom: a box for each state it entered (one per visit, so
    no arrow loops back), each arrow numbered and told with who acted, what, the data given and when."""
    nodes = {n.name: n for n in graph.nodes}
    out, previous = [], START
    for number, step in enumerate(graph.steps, 1):
        node = nodes.get(step.dest)
        title = step.dest if node is None else node.title
        last = number == len(graph.steps)
        lines = [title] + (["now", *graph.facts.split("; ")[1:]] if last else [])
        look = 'fillcolor="#ffd54f", penwidth=3' if last else 'fillcolor="#fff3c4"'
        if node is not None and node.final:
            look += ", peripheries=2"
        box = _own(f"step_{number}")
        out.append(f"  {box} [label={quote(chr(10).join(lines).rstrip('.'))}, {look}];")
        kind = _ROLE_STYLE.get(step.actor.split(":")[0], "buyer")
        words = quote(wrapped(f"{number}. {step.words}", 34))
        out.append(f"  {previous} -> {box} [{STYLE[kind]}, label={words}];")
        previous = box
    return out


# --- every arrow (the detail views) ---------------------------------------------------------------------


def _label(edge: Edge) -> str:
    """The edge label over a few lines: numbered steps, trigger and timer, guards, who."""
    lines = [edge.numbers + edge.trigger + (f" after {edge.timer}" if edge.timer else "")]
    lines += [f"[{g}]" for g in edge.guards]
    lines.append(f"({', '.join(edge.actors)})")
    return "\n".join(lines)


def _every_arrow(graph: Graph) -> list[str]:
    out = []
    claim = graph.claim_id is not None
    for node in graph.nodes:
        if node.final:
            continue
        out.append(f"  {_id(node.name)} [{_node_attrs(node, claim)}];")
    out.append("  subgraph cluster_final {")
    out.append('    label="closed: final states (decisions are final)"; style="rounded,dashed"; fontsize=12;')
    for node in graph.nodes:
        if node.final:
            out.append(f"    {_id(node.name)} [peripheries=2, {_node_attrs(node, claim)}];")
    out.append("  }")
    loops: dict[str, int] = {}
    for edge in graph.edges:
        source = START if edge.source is None else _id(edge.source)
        attrs = [_FADED if edge.faded else STYLE[edge_kind(edge)]]
        if edge.steps:
            attrs.append(_TAKEN)
        if edge.source == edge.dest:  # spread a state's loops around it, or their labels pile up
            port = _LOOP_PORTS[loops.setdefault(edge.dest, 0) % len(_LOOP_PORTS)]
            loops[edge.dest] += 1
            attrs.append(f"tailport={port}, headport={port}")
        out.append(f"  {source} -> {_id(edge.dest)} [label={quote(_label(edge))}, {', '.join(attrs)}];")
    return out


def _node_attrs(node: Node, claim: bool) -> str:
    label = f"label={quote(node.title)}"
    if node.current:
        return f'{label}, fillcolor="#ffd54f", penwidth=4'
    if node.visited:
        return f'{label}, fillcolor="#fff3c4"'
    if claim:
        return f'{label}, color="#c0c0c0", fontcolor="#a0a0a0"'
    return label
