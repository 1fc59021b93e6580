"""The change review page: what a product owner reads to sign off a lifecycle change.

The old and the new lifecycle side by side, laid out alike: the union of both is laid out once by
Graphviz and drawn twice, each side hiding what it lacks (hidden, so it keeps its place) and saying its
own words where they differ (a title, a deadline's window, an arrow's action), so a state stands in the
same place on both sides. What goes is red on the old side, what comes green on the new one, what changes
orange on both; the rest is grey. Under the pictures, each change in plain words (`Change.words`), the
open claims it touches, what a migration plan's dry run would do, and what `check` found in the new
lifecycle. The page loads nothing from anywhere, as every page does.

Both pictures are drawn to the width of their column: at 1440 CSS pixels that is `COLUMN_PX`, and a
title of `TITLE_POINTS` is `TITLE_POINTS * COLUMN_PX / width` pixels high in a picture `width` points
wide. The review's layout is narrower than the console's (arrows' words wrapped short, states and arrows
packed closer) to keep titles at `MIN_TITLE_PX` or more in a lifecycle the size of the built-in one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from claimstate._diagrams.compact import TITLE_POINTS
from claimstate._diagrams.diff import Change, changes, people, sentence, touched
from claimstate._diagrams.dot import (
    FONT,
    LEGEND,
    OUTCOME_FILL,
    START,
    STYLE,
    Merged,
    finals_in_a_row,
    quote,
    team_box,
    wrapped,
)
from claimstate._diagrams.graph import Edge, Graph, Node, edge_kind, graph_of_export
from claimstate._diagrams.graphviz import draw_svg, drawable
from claimstate._diagrams.page import escape_html, html_page
from claimstate._errors import InvalidInput, PlanRefused
from claimstate._fingerprints import short

if TYPE_CHECKING:
    from claimstate._migration import Migration

SCREEN_PX = 1440  # the width of the screen the page is made for
_MARGIN_PX, _GAP_PX, _SCROLLBAR_PX = 16, 12, 17  # the page's margins, the gap between the columns, a scrollbar
# Each picture's column on that screen (its 1-pixel borders aside), a vertical scrollbar showing: 687 pixels.
COLUMN_PX = (SCREEN_PX - _SCROLLBAR_PX - 2 * _MARGIN_PX - _GAP_PX) // 2 - 2
MIN_TITLE_PX = 11  # the smallest a state's title is drawn at: a picture is never narrower than that allows
KIND_COLOUR = {"removed": "#c62828", "added": "#2e7d32", "changed": "#ef6c00"}
KIND_WORD = {"removed": "removed", "added": "new", "changed": "changed"}
_UNCHANGED = "#9e9e9e"
_TITLES = re.compile(r"<title>[^<]*</title>\n?")
_GROUP = re.compile(r'<g id="(u[san]\d+)" class="([^"]*)">(.*?)</g>', re.S)
_TEXT = re.compile(r"(<text\b[^>]*>)(.*?)(</text>)", re.S)
SIDES = ("old", "new")
_TITLE_WRAP = 16


# --- the pictures ------------------------------------------------------------------------------------------


@attrs.frozen
class _Element:
    """A state, an arrow or a note of the union picture: its DOT id (``us3``, ``ua7``, ``un7``), the id each
    side's SVG gives it, the sides it is on, its change (added, removed, changed or ""), each side's lines of
    words in the picture and each side's words on hover."""

    dot_id: str
    ids: tuple[str, str]
    sides: frozenset[str]
    kind: str
    lines: tuple[tuple[str, ...], tuple[str, ...]]
    tips: tuple[str, str] = ("", "")

    @property
    def label(self) -> str:
        """The words the union is laid out with: line by line the longer of the two sides' (each side then
        says its own in that room)."""
        old, new = self.lines
        size = max(len(old), len(new))
        padded = [(*side, *([""] * (size - len(side)))) for side in (old, new)]
        return "\n".join(max(a, b, key=len) for a, b in zip(*padded, strict=True))


@attrs.frozen
class _Union:
    """Both lifecycles as one graph: every state and arrow of either (arrows numbered anew), each with its
    change and its sides."""

    graph: Graph
    states: dict[str, _Element]
    arrows: dict[int, _Element]  # by the union's transition number
    notes: dict[int, _Element]  # the note an arrow from several states is drawn from, by the same number


Key = tuple[str, tuple[str, ...], str]  # a transition, as `diff` knows it: trigger, sources, destination


def _moves(graph: Graph) -> dict[Key, list[Edge]]:
    """A graph's transitions by key, each with its edges (one per source), in the definition's order."""
    found: dict[int, list[Edge]] = {}
    for edge in graph.edges:
        found.setdefault(edge.transition, []).append(edge)
    return {(es[0].trigger, tuple(e.source for e in es if e.source is not None), es[0].dest): es
            for es in found.values()}  # fmt: skip


def _named(key: Key) -> str:
    trigger, sources, dest = key
    return f"{trigger}: {', '.join(sources) or '(new claim)'} -> {dest}"


def _shown_on(kind: str) -> tuple[str, ...]:
    """The sides a change shows on: a removal on the old one, an addition on the new one, a change on both."""
    return {"removed": ("old",), "added": ("new",)}.get(kind, SIDES)


def _plural(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def _union(old: Graph, new: Graph, found: Sequence[Change], open_claims: Mapping[str, int] | None) -> _Union:
    """The union of two lifecycle graphs, each state and arrow with its change from `found`; with
    `open_claims`, the old side's boxes say how many open claims each holds."""
    kinds = {(c.what, c.name): c.kind for c in found}
    sides_moves = (_moves(old), _moves(new))
    keys = [*sides_moves[1], *(k for k in sides_moves[0] if k not in sides_moves[1])]
    sides_nodes = ({n.name: n for n in old.nodes}, {n.name: n for n in new.nodes})
    titles = {**{n.name: n.title for n in old.nodes}, **{n.name: n.title for n in new.nodes}}
    edges: list[Edge] = []
    arrows: dict[int, _Element] = {}
    notes: dict[int, _Element] = {}
    loop_kinds: dict[str, list[str]] = {}
    for number, key in enumerate(keys):
        kind = kinds.get(("transition", _named(key)), "")
        there = [moves[key] for moves in sides_moves if key in moves]
        edges += [attrs.evolve(e, transition=number) for e in there[-1]]
        if key[1] == (key[2],):
            loop_kinds.setdefault(key[2], []).append(kind)
        lines, tips = [], []
        for moves in sides_moves:
            action = moves[key][0].action or key[0] if key in moves else ""
            word = [f"({KIND_WORD[kind]})"] if kind else []
            lines.append((*wrapped(action, 13).split("\n"), *word) if key in moves else ())
            froms = " or ".join(titles.get(s, s) for s in key[1]) or "a new claim"
            who = people(moves[key][0].actors) if key in moves else ""
            tips.append(f"{action} ({who}), from {froms} to {titles.get(key[2], key[2])}" if key in moves else "")
        sides = frozenset(side for side, moves in zip(SIDES, sides_moves, strict=True) if key in moves)
        arrows[number] = _Element(f"ua{number}", (f"old-arrow-{number}", f"new-arrow-{number}"), sides, kind,
                                  (lines[0], lines[1]), (tips[0], tips[1]))  # fmt: skip
        notes[number] = attrs.evolve(arrows[number], dot_id=f"un{number}", ids=(f"old-note-{number}",
                                     f"new-note-{number}"), lines=((), ()))  # fmt: skip
    names = [*sides_nodes[1], *(n for n in sides_nodes[0] if n not in sides_nodes[1])]
    states: dict[str, _Element] = {}
    nodes: list[Node] = []
    for index, name in enumerate(names):
        kind = kinds.get(("state", name), "")
        these = tuple(nodes_of.get(name) for nodes_of in sides_nodes)
        lines = [
            ()
            if node is None
            else _box(node, graph, side, kind, loop_kinds=loop_kinds.get(name, []), open_claims=open_claims)
            for side, node, graph in zip(SIDES, these, (old, new), strict=True)
        ]
        tips = ["" if node is None else f"{node.title}: {node.meaning}" for node in these]
        sides = frozenset(side for side, node in zip(SIDES, these, strict=True) if node is not None)
        states[name] = _Element(f"us{index}", (f"old-state-{name}", f"new-state-{name}"), sides, kind,
                                (lines[0], lines[1]), (tips[0], tips[1]))  # fmt: skip
        nodes.append(next(n for n in reversed(these) if n is not None))
    return _Union(Graph(new.title, tuple(nodes), tuple(edges), overview=True), states, arrows, notes)


def _box(
    node: Node, graph: Graph, side: str, kind: str, *, loop_kinds: list[str], open_claims: Mapping[str, int] | None
) -> tuple[str, ...]:
    """A state's words on one side: its title, its deadline, the steps inside it (and how many of them change
    on this side), its change, and on the old side the open claims in it."""
    said = [*wrapped(node.title, _TITLE_WRAP).split("\n")]
    if node.window:
        said.append(f"deadline: {node.window}")
    loops = {e.transition for e in graph.edges if e.source == node.name == e.dest}
    if loops:
        marked = [k for k in loop_kinds if k and side in _shown_on(k)]
        word = "" if not marked else KIND_WORD[marked[0]] if len(set(marked)) == 1 else "changed"
        said.append(f"\u21bb {_plural(len(loops), 'step')} inside" + (f" ({len(marked)} {word})" if marked else ""))
    if kind:
        said.append(f"({KIND_WORD[kind]})")
    if open_claims is not None and side == "old" and open_claims.get(node.name):
        said.append(f"\u25cf {open_claims[node.name]:,} open")
    return tuple(said)


def _arrow_look(edge: Edge, kind: str) -> str:
    """An arrow's line as the console draws it for who acts (dashed, bold, dotted, solid, double), in the
    colour of its change, grey when it does not change."""
    colour = KIND_COLOUR.get(kind, _UNCHANGED)
    look = re.sub(r"#(?!ffffff)[0-9a-f]{6}", colour, STYLE[edge_kind(edge)])
    return look + (", penwidth=3" if kind else "")


def union_dot(union: _Union) -> str:
    """The DOT of the union, laid out once for both sides: the console's boxes and arrows, packed closer, an
    arrow's words written only when it changes (the others' are told on hover)."""
    graph = union.graph
    crossing = [e for e in graph.edges if e.source != e.dest]
    merged = Merged.of(crossing)
    grouped = {state for group in merged.groups for state in group}
    out = [
        "digraph review {",
        f"  graph [rankdir=TB, nodesep=0.05, ranksep=0.25, newrank=true, compound=true, {FONT}];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", {FONT}, fontsize={TITLE_POINTS},'
        ' margin="0.06,0.03"];',
        f"  edge [{FONT}, fontsize=11];",
    ]
    if any(e.source is None for e in graph.edges):
        out.append(f'  {START} [id="start", shape=circle, label="", width=0.2, style=filled, fillcolor="#000000"];')

    def box(node: Node) -> str:
        element = union.states[node.name]
        look = f'color="{KIND_COLOUR.get(element.kind, "#616161")}"' + (", penwidth=3" if element.kind else "")
        if node.final:
            look += f', peripheries=2, fillcolor="{OUTCOME_FILL.get(node.outcome, "#eeeeee")}"'
        return f"{quote(node.name)} [id={quote(element.dot_id)}, label={quote(element.label)}, {look}];"

    out += [f"  {box(n)}" for n in graph.nodes if n.name not in grouped]
    for number, members in enumerate(merged.groups):
        out += team_box(number, 11)
        out += [f"    {box(n)}" for n in graph.nodes if n.name in members]
        out.append("  }")
    out += finals_in_a_row(graph)
    titles = {n.name: n.title for n in graph.nodes}
    drawn: set[int] = set()
    for edge in crossing:
        group = merged.group_of(edge)
        if edge.transition in merged.noted or group is not None:
            if edge.transition in drawn:
                continue
            drawn.add(edge.transition)
        element = union.arrows[edge.transition]
        look = f"id={quote(element.dot_id)}, {_arrow_look(edge, element.kind)}"
        if element.kind:  # an arrow that does not change is told on hover: its words would widen the picture
            look += f", label={quote(element.label)}"
        if edge.transition in merged.noted:
            note = quote(f":note_{edge.transition}")
            froms = ", ".join(titles[s].lower() for s in merged.noted[edge.transition])
            out.append(f"  {note} [id={quote(union.notes[edge.transition].dot_id)}, shape=note, style=filled,"
                       f' fillcolor="#f5f5f5", color="{KIND_COLOUR.get(element.kind, _UNCHANGED)}", fontsize=11,'
                       f" label={quote(wrapped('from any of: ' + froms, 26))}];")  # fmt: skip
            out.append(f"  {note} -> {quote(edge.dest)} [{look}];")
        elif group is not None:
            tail = quote(merged.groups[group][0])
            out.append(f"  {tail} -> {quote(edge.dest)} [{look}, ltail=cluster_group_{group}];")
        else:
            tail = START if edge.source is None else quote(edge.source)
            out.append(f"  {tail} -> {quote(edge.dest)} [{look}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _side(svg: str, union: _Union, side: str) -> str:
    """One side's SVG from the union's: what the side lacks hidden (it keeps its room), each element's
    words this side's own, a tooltip of its words, and ids of this side (``old-state-NAME``, ``new-arrow-N``);
    drawn to its column's width (see the module's words)."""
    elements = {e.dot_id: e for group in (union.states, union.arrows, union.notes) for e in group.values()}
    at = SIDES.index(side)

    def one(found: re.Match[str]) -> str:
        element = elements[found[1]]
        classes = f"{found[2]} {element.kind}".strip()
        if side not in element.sides:
            return f'<g id="{escape_html(element.ids[at])}" class="{classes}" visibility="hidden" aria-hidden="true">' \
                   f"{found[3]}</g>"  # fmt: skip
        body = found[3]
        if element.lines[at] and element.lines[0] != element.lines[1]:
            said = iter(element.lines[at])
            body = _TEXT.sub(lambda t: f"{t[1]}{escape_html(next(said, ''))}{t[3]}", body)
        tip = f"<title>{escape_html(element.tips[at])}</title>" if element.tips[at] else ""
        return f'<g id="{escape_html(element.ids[at])}" class="{classes}">{tip}{body}</g>'

    drawn = _GROUP.sub(one, svg)
    width = float(_VIEWBOX.search(drawn)[1])  # type: ignore[index]
    style = f"width:min(100%,{width * 4 / 3:.0f}px);min-width:{width * MIN_TITLE_PX / TITLE_POINTS:.0f}px;height:auto"
    return _SIZE.sub(f'<svg style="{style}" class="side-{side}"', drawn, count=1)


_VIEWBOX = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"')
_SIZE = re.compile(r'<svg width="[^"]*" height="[^"]*"')


def pictures(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    found: Sequence[Change],
    open_claims: Mapping[str, int] | None = None,
) -> tuple[str, str]:
    """The old and the new lifecycle as two SVGs of one layout (see the module's words)."""
    union = _union(graph_of_export(old), graph_of_export(new), found, open_claims)
    drawable(len(union.graph.nodes), len(union.graph.edges), "definition")
    svg = _TITLES.sub("", draw_svg(union_dot(union)))
    svg = svg[svg.index("<svg") :]
    return _side(svg, union, "old"), _side(svg, union, "new")


def viewbox_width(svg: str) -> float:
    """The width of an SVG's viewBox, in points (Graphviz draws a point a unit)."""
    found = _VIEWBOX.search(svg)
    if found is None:
        raise ValueError("no viewBox")
    return float(found[1])


# --- the page ----------------------------------------------------------------------------------------------

_CSS = f"""
body {{ margin: 8px {_MARGIN_PX}px; }}
h1 {{ font-size: 1.4em; margin: 0.3em 0; }} body > p {{ margin: 0.3em 0; }}
.verdict {{ margin: 0.3em 0 0.5em; padding-left: 1.2em; columns: 2; column-gap: 2.5em; }}
.verdict li {{ margin: 2px 0; }}
.sides {{ display: grid; grid-template-columns: 1fr 1fr; gap: {_GAP_PX}px; }}
.side {{ border: 1px solid #ddd; overflow-x: auto; min-width: 0; }}
.side h2 {{ font-size: 1em; margin: 6px 8px; }}
.side svg {{ display: block; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; font-size: 0.9em; }}
.swatch {{ display: inline-block; width: 1.6em; height: 0; border-top: 3px solid; vertical-align: middle;
  margin-right: 4px; }}
.changes {{ list-style: none; padding: 0; }}
.changes > li {{ border-left: 5px solid #9e9e9e; padding: 2px 0 2px 10px; margin: 0 0 10px; }}
.changes > li.added {{ border-color: #2e7d32; }} .changes > li.removed {{ border-color: #c62828; }}
.changes > li.changed {{ border-color: #ef6c00; }}
.changes p {{ margin: 2px 0; }}
.claims {{ color: #0d47a1; }}
.code {{ color: #666; font-size: 0.8em; }}
.fails {{ color: #c62828; }} .holds {{ color: #2e7d32; }}
"""


def review_page(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    open_claims: Mapping[str, int] | None = None,
    migration: Migration | PlanRefused | None = None,
    report: Mapping[str, Any] | str | None = None,
    nav: str = "",
) -> str:
    """The change review page from `old` to `new` (two exports, `Definition.to_dict()`), self-contained.

    `open_claims`: the open claims decided under `old`, per state (`ClaimService.open_claims(fingerprint)`):
    each change says how many it touches, and the old side's boxes how many each holds. `migration`: a
    plan's dry run (`ClaimService.migrate(plan, dry_run=True)`), or the PlanRefused it raised: what it would
    move, or why it cannot. `report`: `check(definition).to_dict()` of the new definition, or words saying
    why it was not checked. `nav`: the pages' links (`page.nav_html`), at the top. InvalidInput: not two exports.
    """
    found = changes(old, new)
    try:
        before, after = pictures(old, new, found, open_claims)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInput(f"not an exported definition: {error!r}", field="definition") from None
    titles = {**_titles(old), **_titles(new)}
    names = (str(old.get("name")), str(new.get("name")))
    verdict = _verdict(found, open_claims, migration, report)
    body = [
        f"<style>{_CSS}</style>",
        '<ul class="verdict">' + "".join(f"<li>{escape_html(line)}</li>" for line in verdict) + "</ul>",
        '<div class="sides">',
        _side_html("old", "Before", old, before),
        _side_html("new", "After", new, after),
        "</div>",
        _legend(),
        "<h2>Each change</h2>",
        _changes_html(found, open_claims, titles),
        "<h2>The migration plan</h2>",
        _migration_html(migration, titles),
        "<h2>Check of the new lifecycle</h2>",
        _check_html(report, new, titles),
    ]
    intro = (
        "Before on the left, after on the right, laid out alike: red goes, green comes, orange changes, grey"
        " stays (hover for words)."
    )
    return html_page(f"Change review: {names[0]} \u2192 {names[1]}", intro, "\n".join(body) + "\n", nav=nav)


def _side_html(side: str, label: str, exported: Mapping[str, Any], svg: str) -> str:
    """One column: which lifecycle it draws (its name and fingerprint), then the picture."""
    fingerprint = exported.get("fingerprint")
    code = f' <span class="code">{escape_html(short(fingerprint))}</span>' if isinstance(fingerprint, str) else ""
    return (
        f'<section class="side" id="{side}"><h2>{label}: {escape_html(str(exported.get("name")))}{code}</h2>'
        f"{svg}</section>"
    )


def _titles(exported: Mapping[str, Any]) -> dict[str, str]:
    return {str(s["name"]): str(s.get("title") or str(s["name"]).replace("_", " ").capitalize())
            for s in exported.get("states", ())}  # fmt: skip


def _verdict(
    found: Sequence[Change],
    open_claims: Mapping[str, int] | None,
    migration: Migration | PlanRefused | None,
    report: Mapping[str, Any] | str | None,
) -> list[str]:
    """The page's first lines: how much changes, the open claims it touches, check's and the plan's verdicts."""
    kinds = Counter(c.kind for c in found)
    counted = f"{kinds['added']} new, {kinds['removed']} removed, {kinds['changed']} changed"
    lines = [f"{_plural(len(found), 'change')}: {counted}." if found else "Nothing changes: no state or step differs."]
    if open_claims is not None:
        total = sum(open_claims.values())
        states = {s for c in found for s in c.touches}
        hit = sum(n for s, n in open_claims.items() if s in states)
        lines.append(f"Open claims decided under the old lifecycle: {total:,}; the changes touch {hit:,} of them.")
    if isinstance(report, str) or report is None:
        lines.append("Check: not run on the new lifecycle (see below).")
    elif report["held"]:
        lines.append(f"Check: every rule holds in the new lifecycle ({report['situations']:,} situations explored).")
    else:
        failed = sum(not r["held"] for r in report["properties"])
        incomplete = not report["complete"] or report["untried"]
        lines.append(f"Check: {_plural(failed, 'rule')} fail{'s' if failed == 1 else ''} in the new lifecycle"
                     + (", and it did not explore everything" if incomplete else "")
                     + " (see below).")  # fmt: skip
    if migration is None:
        lines.append("Migration plan: none given.")
    elif isinstance(migration, PlanRefused):
        lines.append(f"Migration plan: it cannot be applied as written ({_plural(len(migration.problems), 'problem')};"
                     " see below).")  # fmt: skip
    else:
        lines.append(f"Migration plan (dry run): would move {_plural(len(migration.moves), 'open claim')}, and leave"
                     " none behind.")  # fmt: skip
    return lines


def _legend() -> str:
    kinds = [(KIND_COLOUR["removed"], "removed: on the left only"), (KIND_COLOUR["added"], "new: on the right only"),
             (KIND_COLOUR["changed"], "changed: on both sides"), (_UNCHANGED, "the same on both sides")]  # fmt: skip
    lines = {"timer": "dashed", "agent": "bold", "supplier": "dotted", "buyer": "solid", "parties": "double"}
    items = [f'<li><span class="swatch" style="border-color:{colour}"></span>{escape_html(words)}</li>'
             for colour, words in kinds]  # fmt: skip
    items += [f"<li>{lines[kind]}: {escape_html(meaning)}</li>" for kind, _, meaning in LEGEND]
    items.append("<li>\u25cf open claims in a state now (left)</li>")
    return f'<ul class="legend">{"".join(items)}</ul>'


def claims_words(change: Change, open_claims: Mapping[str, int], titles: Mapping[str, str]) -> str:
    """``Touches 3 open claims: 2 in In mediation, 1 in Return on its way.``"""
    count = touched(change, open_claims)
    if not count:
        return "Touches no open claim."
    where = [(titles.get(s, s), open_claims[s]) for s in change.touches if open_claims.get(s)]
    if len(where) == 1:
        return f"Touches {_plural(count, 'open claim')}, in {where[0][0]}."
    return f"Touches {_plural(count, 'open claim')}: " + ", ".join(f"{n:,} in {t}" for t, n in where) + "."


def _changes_html(found: Sequence[Change], open_claims: Mapping[str, int] | None, titles: Mapping[str, str]) -> str:
    if not found:
        return "<p>No state or step changed.</p>"
    items: list[str] = []
    for change in found:
        first, *rest = change.words or (f"{change.kind} {change.what} {change.name}",)
        said = f"<b>{escape_html(first)}</b>" + "".join(f" {escape_html(s)}" for s in rest)
        claims = (
            ""
            if open_claims is None
            else f'<p class="claims">{escape_html(claims_words(change, open_claims, titles))}</p>'
        )
        details = "".join(f"; {escape_html(d)}" for d in change.details)
        code = f'<p class="code">{change.what} <code>{escape_html(change.name)}</code> ({change.kind}){details}</p>'
        items.append(f'<li class="{change.kind}"><p>{said}</p>{claims}{code}</li>')
    return f'<ul class="changes">{"".join(items)}</ul>'


_HOW = {  # what becomes of a moved claim's deadline, for one claim and for several
    "kept": ("its deadline stays as it was", "their deadlines stay as they were"),
    "recomputed": (
        "its deadline is recomputed with the new window, from when its clock started",
        "their deadlines are recomputed with the new window, from when their clocks started",
    ),
    "started": ("a new deadline starts at the migration", "new deadlines start at the migration"),
    "none": ("no deadline runs there", "no deadline runs there"),
}


def migration_words(migration: Migration | PlanRefused, titles: Mapping[str, str]) -> list[str]:
    """What a plan's dry run would do, in sentences: per old state, new state and deadline, how many open
    claims; or, refused, that nothing would move and each problem."""
    if isinstance(migration, PlanRefused):
        return ["The plan cannot be applied as it is written: nothing would move until each problem is fixed.",
                *(sentence(_titled(p, titles)) for p in migration.problems)]  # fmt: skip
    if not migration.moves:
        return ["The plan would move no claim: no open claim was decided under another lifecycle."]
    lines = [f"The plan would move {_plural(len(migration.moves), 'open claim')} onto the new lifecycle"
             f" ({short(migration.definition)}), and leave none behind:"]  # fmt: skip
    groups = Counter((m.source, m.dest, m.how) for m in migration.moves)
    for (source, dest, how), count in sorted(groups.items()):
        verb = "stays" if count == 1 else "stay"
        where = f"{verb} there" if source == dest else f"{verb.replace('stay', 'move')} to {titles.get(dest, dest)}"
        where = f"{_plural(count, 'claim')} in {titles.get(source, source)} {where}"
        lines.append(f"{where}; {_HOW.get(how, (how, how))[count > 1]}.")
    return lines


def _titled(problem: str, titles: Mapping[str, str]) -> str:
    """A plan's problem with each state's name as its title, but where it is quoted (what the plan must
    write): ``1 open claim(s) in Cancellation being checked ...: map 'cancellation_pending' in the plan's
    states``."""
    if not titles:
        return problem
    names = re.compile(
        r"(?<!['\w])(" + "|".join(re.escape(n) for n in sorted(titles, key=len, reverse=True)) + r")(?![\w'])"
    )
    return names.sub(lambda found: titles[found[1]], problem)


def _migration_html(migration: Migration | PlanRefused | None, titles: Mapping[str, str]) -> str:
    if migration is None:
        return ("<p>No plan was given. A plan (see Changing the lifecycle) says where the open claims of each"
                " old state go; its dry run shows here what it would move, and what it cannot.</p>")  # fmt: skip
    first, *rest = migration_words(migration, titles)
    items = "".join(f"<li>{escape_html(line)}</li>" for line in rest)
    table = ""
    if not isinstance(migration, PlanRefused) and migration.moves:
        rows = "".join(
            f"<tr><td><code>{escape_html(m.claim_id)}</code></td><td>{escape_html(titles.get(m.source, m.source))}"
            f"</td><td>{escape_html(titles.get(m.dest, m.dest))}</td><td>{_due(m.due_before)}</td>"
            f"<td>{_due(m.due_after)}</td><td>{escape_html(m.how)}</td></tr>"
            for m in migration.moves
        )
        table = ("<details><summary>Each claim</summary><table><thead><tr><th>claim</th><th>from</th><th>to</th>"
                 "<th>deadline before (UTC)</th><th>deadline after (UTC)</th><th>deadline</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table></details>")  # fmt: skip
    kind = "fails" if isinstance(migration, PlanRefused) else ""
    return f'<p class="{kind}">{escape_html(first)}</p><ul>{items}</ul>{table}'


def _due(at: Any) -> str:
    return "-" if at is None else escape_html(at.strftime("%d %b %Y %H:%M"))


def check_words(
    report: Mapping[str, Any], labels: Mapping[tuple[str | None, str, str], str], titles: Mapping[str, str]
) -> list[str]:
    """What check found in a lifecycle (its report as JSON, `Report.to_dict()`), in sentences: how much it
    explored, then each rule, held or broken (with the shortest way to break it, step by step)."""
    lines = [
        f"Check explored {report['situations']:,} situations and {report['transitions']:,} steps of the new"
        " lifecycle" + (": every rule holds." if report["held"] else ".")
    ]
    if not report["complete"]:
        lines.append("It stopped at its bound: it did not explore everything, so what it found is not complete.")
    lines += [f"It could not try {trigger}: no example gives its {', '.join(fields)}." for trigger, fields in
              report["untried"].items()]  # fmt: skip
    for result in report["properties"]:
        if result["held"]:
            lines.append(f"Holds: {result['description']}.")
            continue
        lines.append(f"FAILS: {result['description']}: {result['reason'] or ''}.")
        for number, step in enumerate(result["counterexample"], 1):
            source, dest, actor = step["from"], step["to"], step["actor"]
            label = labels.get((source, step["trigger"], dest), step["trigger"])
            start = titles.get(source, source) if source else "a new claim"
            lines.append(f"    {number}. {actor}: {label}, from {start} to {titles.get(dest, dest)}")
    return lines


def _check_html(report: Mapping[str, Any] | str | None, new: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    if report is None:
        return ("<p>Not checked here: check explores a lifecycle's Python definition, which an export alone does"
                " not carry. Give <code>claimstate diff</code> the definition the new export was made from"
                " (<code>--new-definition MODULE:NAME</code>) to see its results here, or run"
                " <code>claimstate --definition MODULE:NAME check</code>.</p>")  # fmt: skip
    if isinstance(report, str):
        return f"<p>{escape_html(report)}</p>"
    labels = {(source or None, str(t["trigger"]), str(t["dest"])): str(t.get("label") or t["trigger"])
              for t in new.get("transitions", ()) for source in (t["sources"] or [""])}  # fmt: skip
    first, *rest = check_words(report, labels, titles)
    items: list[str] = []
    for line in rest:
        if line.startswith("    "):
            items[-1] = items[-1].removesuffix("</li>") + f"<br>{escape_html(line.strip())}</li>"
        else:
            kind = "fails" if line.startswith(("FAILS", "It ")) else "holds"
            items.append(f'<li class="{kind}">{escape_html(line)}</li>')
    return f'<p class="{"holds" if report["held"] else "fails"}">{escape_html(first)}</p><ul>{"".join(items)}</ul>'
