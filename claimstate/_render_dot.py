"""Graphviz DOT text. Arrows are told apart by line style and label, not by colour alone, so the
picture reads in black and white: the clock dashed, the dispute team bold, the supplier dotted."""

from __future__ import annotations

from claimstate._graph import Edge, Graph, edge_kind

_STYLE = {
    "timer": 'style=dashed, color="#6a1b9a", fontcolor="#6a1b9a"',
    "agent": 'style=bold, penwidth=2, color="#0d47a1", fontcolor="#0d47a1"',
    "supplier": 'style=dotted, penwidth=1.6, color="#bf360c", fontcolor="#bf360c"',
    "buyer": 'style=solid, color="#1b5e20", fontcolor="#1b5e20"',
}
# How to read the arrows, for the pages that show the drawing.
LEGEND = (
    ("dashed, purple", "the clock fires it when a deadline passes (system)"),
    ("bold, blue", "the dispute team decides or asks (agent)"),
    ("dotted, orange", "the supplier acts"),
    ("solid, green", "the buyer acts (or either party, as the label says)"),
    ("double border", "a final state: the claim is closed"),
)
_FADED = 'color="#d0d0d0", fontcolor="#b0b0b0"'
_TAKEN = "penwidth=3"
_LOOP_PORTS = ("e", "w", "n", "s")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(edge: Edge) -> str:
    """The edge label over a few lines: numbered steps, trigger and timer, guards, who."""
    lines = [edge.numbers + edge.trigger + (f" after {edge.timer}" if edge.timer else "")]
    lines += [f"[{g}]" for g in edge.guards]
    lines.append(f"({', '.join(edge.actors)})")
    return "\n".join(lines)


def to_dot(graph: Graph) -> str:
    """The lifecycle as DOT: final states grouped and double-bordered; a claim's path numbered and bold."""
    out = [
        f"digraph {_quote(graph.title)} {{",
        f'  graph [label={_quote(graph.title)}, labelloc=t, fontsize=20, fontname="DejaVu Sans", rankdir=TB,'
        " nodesep=0.7, ranksep=0.8];",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="DejaVu Sans", fontsize=12];',
        '  edge [fontname="DejaVu Sans", fontsize=9];',
        '  start [shape=circle, label="", width=0.25, style=filled, fillcolor="#000000"];',
    ]
    claim = graph.claim_id is not None
    for node in graph.nodes:
        if node.final:
            continue
        out.append(f"  {node.name} [{_node_attrs(node.name, node.current, node.visited, claim)}];")
    out.append("  subgraph cluster_final {")
    out.append('    label="closed: final states (decisions are final)"; style="rounded,dashed"; fontsize=12;')
    for node in graph.nodes:
        if node.final:
            out.append(f"    {node.name} [peripheries=2, {_node_attrs(node.name, node.current, node.visited, claim)}];")
    out.append("  }")
    loops: dict[str, int] = {}
    for edge in graph.edges:
        source = "start" if edge.source is None else edge.source
        attrs = [_FADED if edge.faded else _STYLE[edge_kind(edge)]]
        if edge.steps:
            attrs.append(_TAKEN)
        if edge.source == edge.dest:  # spread a state's loops around it, or their labels pile up
            port = _LOOP_PORTS[loops.setdefault(edge.dest, 0) % len(_LOOP_PORTS)]
            loops[edge.dest] += 1
            attrs.append(f"tailport={port}, headport={port}")
        out.append(f"  {source} -> {edge.dest} [label={_quote(_label(edge))}, {', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _node_attrs(name: str, current: bool, visited: bool, claim: bool) -> str:
    if current:
        return f'label={_quote(name)}, fillcolor="#ffd54f", penwidth=4'
    if visited:
        return f'label={_quote(name)}, fillcolor="#fff3c4"'
    if claim:
        return f'label={_quote(name)}, color="#c0c0c0", fontcolor="#a0a0a0"'
    return f"label={_quote(name)}"
