"""Pages for product owners: the picture, then every state and transition in plain words.

Markdown (with the Mermaid diagram, for the repository) and a self-contained HTML page (with the SVG
inline; no script, font or file is loaded from anywhere, and it prints).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from claimstate._definition import View
from claimstate._diagrams.dot import FINAL_WORDS, LEGEND, colour_of
from claimstate._diagrams.graph import Graph
from claimstate._diagrams.graphviz import to_svg
from claimstate._diagrams.mermaid import to_mermaid
from claimstate._text import visible

_TRANSITION_COLUMNS = (
    ("trigger", "trigger"),
    ("what", "what it means"),
    ("from", "from"),
    ("to", "to"),
    ("who", "who may fire it"),
    ("guard", "only when"),
    ("data", "data it takes"),
    ("deadline", "deadline"),
)
_STATE_COLUMNS = (("state", "state"), ("meaning", "meaning"), ("final", "final"), ("deadline", "deadline set on entry"))
_INTRO = (
    "Generated from the lifecycle definition that the engine runs; never drawn by hand. "
    "Each arrow reads trigger [guard] (who may fire it)."
)
_OVERVIEW_INTRO = (
    "Generated from the lifecycle definition that the engine runs; never drawn by hand. Each box is a state"
    " (its title and the deadline its clock runs; its name in the code is in the tables below); each arrow"
    " says what happens, the numbers in brackets are the conditions listed under Only when (numbered alike"
    " on every page), and the line says who acts."
)


def markdown_text(text: str) -> str:
    """Text as Markdown shows it and nothing more, as HTML and SVG escape theirs: on one line (control
    characters and line ends shown as escapes), < and & as HTML entities (Markdown passes a tag through),
    and the marks that make a link, an image, code or a table cell escaped with a backslash."""
    text = visible(text).replace("&", "&amp;").replace("<", "&lt;")
    return re.sub(r"([\\`\[\]|])", r"\\\1", text)


def markdown_code(text: str) -> str:
    """Text as inline code, on one line: fenced by more backticks than it holds in a row, as CommonMark
    reads it (inside code nothing else is markup)."""
    text = visible(text)
    fence = "`" * (1 + max((len(run) for run in re.findall("`+", text)), default=0))
    padding = " " if "`" in text else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def escape_html(text: str) -> str:
    """Text in HTML: control characters shown as escapes (`visible`), line ends kept, then HTML's own
    characters escaped."""
    return html.escape(visible(text, keep="\n"))


def _md_table(rows: list[dict[str, str]], columns: tuple[tuple[str, str], ...]) -> list[str]:
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_text(row[key]) for key, _ in columns) + " |" for row in rows]
    return lines


def to_markdown(graph: Graph) -> str:
    """The Mermaid diagram, then the states and the transitions as tables."""
    lines = [f"# {markdown_text(graph.title)}", "", _INTRO, "", "```mermaid", to_mermaid(graph).rstrip(), "```", ""]
    lines += ["## States", "", *_md_table(graph.state_rows(), _STATE_COLUMNS), ""]
    lines += ["## Transitions", "", *_md_table(graph.transition_rows(), _TRANSITION_COLUMNS), ""]
    return "\n".join(lines)


_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.5em; }
.picture { overflow-x: auto; border: 1px solid #ddd; }
.picture svg { display: block; max-width: none; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin-bottom: 1em; }
th, td { border: 1px solid #999; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #eee; }
code { font-family: "DejaVu Sans Mono", monospace; }
.next { border: 2px solid #ff6f00; background: #fff8e1; padding: 4px 14px; border-radius: 6px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; padding-bottom: 6px; border-bottom: 1px solid #ccc; }
nav a { color: #0d47a1; } nav a[aria-current] { font-weight: bold; color: #111; }
@media print {
  body { margin: 0; } .picture { border: none; page-break-after: always; }
  .picture { overflow: visible; } .picture svg { width: 100%; } tr { page-break-inside: avoid; }
}
"""


def _html_table(rows: list[dict[str, str]], columns: tuple[tuple[str, str], ...], code: set[str]) -> str:
    head = "".join(f"<th>{escape_html(title)}</th>" for _, title in columns)

    def cell(key: str, text: str) -> str:
        body = escape_html(text)
        return f"<td><code>{body}</code></td>" if key in code and text != "-" else f"<td>{body}</td>"

    body = "".join("<tr>" + "".join(cell(k, row[k]) for k, _ in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STEP_COLUMNS = (("step", "step"), ("when", "when (UTC)"), ("who", "who"), ("trigger", "trigger"),
                 ("from", "from"), ("to", "to"), ("what", "what happened"))  # fmt: skip


# The pages' names, the same in a diagrams folder and under `claimstate serve`'s /console/.
OVERVIEW_PAGE = "lifecycle.html"
STORIES_PAGE = "stories.html"
CHANGES_PAGE = "changes.html"
CLAIMS_PAGE = "claims"  # served only: it reads the database


def view_page(view: str) -> str:
    return f"lifecycle-{view}.html"


def nav_html(views: Iterable[View], current: str, *, served: bool = False, up: bool = False) -> str:
    """The links every page carries, to the overview, each phase view, the stories and (served, with a
    database) the claims and the change review; the page itself marked as the current one. `up`: the page
    sits one folder below the others (a claim's, at claims/ID)."""
    links = [
        (OVERVIEW_PAGE, "Overview"),
        *((view_page(v.name), v.title) for v in views),
        (STORIES_PAGE, "Stories"),
    ]
    if served:
        links += [(CLAIMS_PAGE, "Claims"), (CHANGES_PAGE, "Change review")]
    marked, prefix = ' aria-current="page"', "../" if up else ""
    return (
        "<nav>"
        + "".join(
            f'<a href="{escape_html(prefix + href)}"{marked if href == current else ""}>{escape_html(words)}</a>'
            for href, words in links
        )
        + "</nav>"
    )


def html_page(title: str, intro: str, body: str, *, nav: str = "") -> str:
    """A self-contained page (no script, font or file loaded from anywhere; it prints): the house style,
    the links to the other pages (`nav`, HTML), `title` and `intro` as text, then `body`, which is HTML."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape_html(title)}</title><style>{_CSS}</style></head>\n'
        f"<body>{nav}<h1>{escape_html(title)}</h1><p>{escape_html(intro)}</p>\n{body}</body></html>\n"
    )


def picture(svg: str) -> str:
    """An SVG to put in a page: without its XML prolog and DOCTYPE (inline SVG needs neither), in a box that
    scrolls rather than cut it off."""
    return f'<div class="picture">{svg[svg.index("<svg") :]}</div>\n'


def to_html(graph: Graph) -> str:
    """One self-contained page: the SVG inline, a legend, then the lifecycle's states and transitions, or
    (a claim's own page) its facts and every step it took."""
    legend = (
        "".join(
            f'<li><b style="color:{colour_of(kind)}">{escape_html(sample)}</b> {escape_html(meaning)}</li>'
            for kind, sample, meaning in LEGEND
        )
        + f"<li>{escape_html(FINAL_WORDS)}</li>"
    )
    if graph.steps:
        rows = [{"step": str(s.seq), "when": s.at.replace("T", " ")[:16], "who": s.actor, "trigger": s.trigger,
                 "from": s.source or "-", "to": s.dest, "what": s.words} for s in graph.steps]  # fmt: skip
        intro = graph.facts
        tables = f"<h2>Every step</h2>{_html_table(rows, _STEP_COLUMNS, {'trigger', 'from', 'to'})}\n"
    else:
        intro = _OVERVIEW_INTRO if graph.overview else _INTRO
        tables = (
            f"<h2>States</h2>{_html_table(graph.state_rows(), _STATE_COLUMNS, {'state'})}\n"
            "<h2>Transitions</h2>"
            f"{_html_table(graph.transition_rows(), _TRANSITION_COLUMNS, {'trigger', 'from', 'to'})}\n"
        )
    body = f"{picture(to_svg(graph))}<h2>How to read the arrows</h2><ul>{legend}</ul>\n{tables}"
    current = view_page(graph.view) if graph.view else "" if graph.claim_id else OVERVIEW_PAGE
    return html_page(graph.title, intro, body, nav=nav_html(graph.views, current))
