"""Diagrams, generated from the definition, never drawn by hand: one pipeline, one module per step.

`graph` extracts the definition (and optionally one claim's history, or one detail view) into a small
graph of plain words; one renderer per format draws it (`dot`, `mermaid`, `graphviz` for SVG and PNG,
`page` for the Markdown and HTML pages); `drawing` is the `Diagrams` API over them; `diff` reviews what
changed between two exported definitions. Renderers know their syntax and nothing of the lifecycle.
"""

from claimstate._diagrams.diff import to_markdown as diff_markdown
from claimstate._diagrams.drawing import FORMATS, REGENERATE, VIEW_FORMATS, Diagrams
from claimstate._diagrams.review import review_page as diff_html

__all__ = ["FORMATS", "REGENERATE", "VIEW_FORMATS", "Diagrams", "diff_html", "diff_markdown"]
