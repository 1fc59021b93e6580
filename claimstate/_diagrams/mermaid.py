"""Mermaid ``stateDiagram-v2`` text: renders on GitHub and GitLab with nothing installed."""

from __future__ import annotations

import json

from claimstate._diagrams.graph import Graph
from claimstate._text import visible

_CLASSES = (
    "classDef final fill:#e8e8e8,stroke:#333,stroke-width:3px",
    "classDef current fill:#ffd54f,stroke:#000,stroke-width:4px",
    "classDef visited fill:#fff3c4,stroke:#333",
    "classDef faded fill:#fafafa,stroke:#bbb,color:#999",
)


def _words(text: str) -> str:
    """Mermaid reads ; as a statement end, # as an entity and : as a label start: keep them out. Control
    characters are shown as escapes (`visible`), and &, < and > written as Mermaid's entity codes, so no
    markup from a claim stands in the text (as HTML and SVG escape it)."""
    text = visible(text).replace(";", ",").replace("#", "No.").replace(":", " -")
    return text.replace("&", "#amp;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graph: Graph) -> str:
    """The lifecycle as a Mermaid state diagram; on a claim's diagram, its path is numbered."""
    title = json.dumps(_words(graph.title))  # a JSON string is a YAML string: the title may hold colons
    lines = ["---", f"title: {title}", "---", "stateDiagram-v2", "    direction TB"]
    for node in graph.nodes:
        lines.append(f"    {node.name} : {node.name}")
    for edge in graph.edges:
        label = edge.trigger if edge.faded else _words(edge.label)  # a path's untaken arrows: names only
        source = "[*]" if edge.source is None else edge.source
        lines.append(f"    {source} --> {edge.dest} : {label}")
    for node in graph.nodes:
        if node.final:
            lines.append(f"    {node.name} --> [*]")
    lines.extend(f"    {c}" for c in _CLASSES)
    finals = [n.name for n in graph.nodes if n.final]
    if finals:  # a detail view may hold none
        lines.append(f"    class {','.join(finals)} final")
    if graph.claim_id is not None:
        for style, names in (
            ("faded", [n.name for n in graph.nodes if not n.visited]),
            ("visited", [n.name for n in graph.nodes if n.visited and not n.current]),
            ("current", [n.name for n in graph.nodes if n.current]),
        ):
            if names:
                lines.append(f"    class {','.join(names)} {style}")
    return "\n".join(lines) + "\n"
