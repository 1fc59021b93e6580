"""The console's overview page: the compact picture on one screen, and beside it what a review asks first.

`console_model` says what the console says about a lifecycle, in plain words, as data the page and its
script both read: each state's meaning, deadline and what happens inside it; each arrow's action, who
acts, its conditions (numbered as in every view) and the deadline it stands for; how each ending is
reached and by whom, and what each deadline does when it passes. `overview_page` writes the page: the
same file in a diagrams folder (no live figures) and under `claimstate serve` (with them). The script and
the style sheet are the package's own files, inlined: nothing is fetched from anywhere but live.json.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson

from claimstate._definition import OUTCOMES
from claimstate._diagrams.compact import TITLE_POINTS, compact_svg
from claimstate._diagrams.dot import LEGEND, OUTCOME_FILL, colour_of
from claimstate._diagrams.graph import Edge, Graph, edge_kind
from claimstate._diagrams.page import (
    _STATE_COLUMNS,
    _TRANSITION_COLUMNS,
    OVERVIEW_PAGE,
    _html_table,
    escape_html,
    nav_html,
)

ROLE_WORDS = {"buyer": "the buyer", "supplier": "the supplier", "agent": "the dispute team", "system": "the clock"}


def who(actors: tuple[str, ...]) -> str:
    """``the buyer``, ``the buyer or the supplier``, ``the clock``: the roles that may act, in words."""
    return " or ".join(ROLE_WORDS.get(role, role) for role in actors) or "no one"


def _arrow(edge: Edge, merged: list[Edge], titles: dict[str, str], conditions: tuple[str, ...]) -> dict[str, Any]:
    sources = [e.source for e in merged]
    return {
        "trigger": edge.trigger,
        "action": edge.action,
        "description": edge.description,
        "from": ", ".join("a new claim" if s is None else titles.get(s, s) for s in sources),
        "dest": edge.dest,
        "to": titles.get(edge.dest, edge.dest),
        "who": who(edge.actors),
        "conditions": [[number, conditions[number - 1]] for number in sorted(set(edge.conditions))],
        "after": edge.timer,
        "data": list(edge.data),
    }


def console_model(graph: Graph) -> dict[str, Any]:
    """The lifecycle as the console shows it: states and arrows by id, the conditions, the endings and the
    deadlines in words, and the legend's entries in use."""
    titles = {n.name: n.title for n in graph.nodes}
    by_transition: dict[int, list[Edge]] = {}
    for edge in graph.edges:
        by_transition.setdefault(edge.transition, []).append(edge)
    arrows = {str(number): _arrow(edges[0], edges, titles, graph.conditions) for number, edges in by_transition.items()}
    states = {}
    for node in graph.nodes:
        inside = [e for e in graph.edges if e.source == node.name == e.dest]
        leaving = [e for e in graph.edges if e.source == node.name != e.dest]
        states[node.name] = {
            "title": node.title,
            "meaning": node.meaning,
            "final": node.final,
            "note": node.note,
            "outcome": OUTCOMES.get(node.outcome, "") if node.final else "",
            "deadline": node.clock and f"{node.clock}, within {node.window}",
            "window": node.window,
            "inside": [str(e.transition) for e in inside],
            "leaving": [str(e.transition) for e in leaving],
            "entering": list(dict.fromkeys(str(e.transition) for e in graph.edges if e.dest == node.name != e.source)),
        }
    kinds = {edge_kind(e) for e in graph.edges if e.source != e.dest}
    used = dict.fromkeys(n.outcome for n in graph.nodes if n.final and n.outcome)
    return {
        "title": graph.title,
        "states": states,
        "arrows": arrows,
        "conditions": list(graph.conditions),
        "legend": [[kind, colour_of(kind), meaning] for kind, _, meaning in LEGEND if kind in kinds],
        "outcomes": [[OUTCOME_FILL[o], OUTCOMES[o]] for o in used],
        "endings": endings(graph),
        "deadlines": deadlines(graph),
    }


def endings(graph: Graph) -> list[dict[str, Any]]:
    """Each final state: its outcome in words and the arrows into it (what happens, from where, by whom)."""
    titles = {n.name: n.title for n in graph.nodes}
    found = []
    for node in (n for n in graph.nodes if n.final):
        ways: dict[int, dict[str, Any]] = {}
        for e in (e for e in graph.edges if e.dest == node.name):
            way = ways.setdefault(e.transition, {"action": e.action, "who": who(e.actors), "from": []})
            way["from"].append("a new claim" if e.source is None else titles.get(e.source, e.source))
        found.append(
            {
                "state": node.name,
                "title": node.title,
                "outcome": OUTCOMES.get(node.outcome, ""),
                "fill": OUTCOME_FILL.get(node.outcome, "#eeeeee"),
                "note": node.note,
                "ways": list(ways.values()),
            }
        )
    return found


def deadlines(graph: Graph) -> list[dict[str, Any]]:
    """Each state that runs a clock: how long, and what the clock does when it runs out (each way, with
    the conditions that pick it)."""
    titles = {n.name: n.title for n in graph.nodes}
    found = []
    for node in (n for n in graph.nodes if n.window):
        fired = [e for e in graph.edges if e.source == node.name and e.timer]
        found.append(
            {
                "state": node.name,
                "title": node.title,
                "window": node.window,
                "then": [
                    {
                        "action": e.action,
                        "to": titles.get(e.dest, e.dest),
                        "when": [graph.conditions[n - 1] for n in e.conditions if n <= len(graph.conditions)],
                    }
                    for e in fired
                ],
            }
        )
    return found


def _asset(name: str) -> str:
    return (files("claimstate._diagrams") / "assets" / name).read_text(encoding="utf-8")


def _clock(clock: dict[str, Any]) -> str:
    """One state's deadline: how long after a claim enters it, and what the clock then does (each way, with
    the condition that picks it when there are several)."""
    thens = "; ".join(
        f"{then['action']}: {then['to'].lower()}"
        + (f" (if {' and '.join(w for w in then['when'] if 'deadline' not in w)})" if len(clock["then"]) > 1 else "")
        for then in clock["then"]
    )
    return (
        f'<li data-state="{escape_html(clock["state"])}"><b>{escape_html(clock["title"])}</b>: after'
        f" {escape_html(clock['window'])} there, {escape_html(thens)}.</li>"
    )


def _summary(model: dict[str, Any]) -> str:
    """The panel's first content: how each ending is reached and by whom, what each deadline does, and how
    to read the picture (only the kinds of line and the outcomes it draws)."""
    out = ['<h2>How a claim ends, and who ends it</h2><ul class="endings">']
    for end in model["endings"]:
        ways = "; ".join(f"{way['action']} ({way['who']})" for way in end["ways"])
        note = f" <i>{escape_html(end['note'])}.</i>" if end["note"] else ""
        out.append(
            f'<li data-state="{escape_html(end["state"])}"><span class="swatch" style="background:{end["fill"]}">'
            f"</span><b>{escape_html(end['title'])}</b>: {escape_html(end['outcome'] or 'closed')}.{note}"
            f' <span class="muted">When: {escape_html(ways)}.</span></li>'
        )
    out.append("</ul>")
    if model["deadlines"]:
        out.append('<h2>When deadlines fire</h2><ul class="deadlines">')
        out += [_clock(clock) for clock in model["deadlines"]]
        out.append("</ul>")
    out.append('<h2>How to read it</h2><ul class="legend">')
    out += [
        f'<li><span class="line {kind}" style="color:{colour}"></span>{escape_html(meaning)}</li>'
        for kind, colour, meaning in model["legend"]
    ]
    out += [
        f'<li><span class="swatch" style="background:{fill}"></span>{escape_html(words)}</li>'
        for fill, words in model["outcomes"]
    ]
    out.append("</ul>")
    return "".join(out)


def overview_page(graph: Graph, *, live: str | None = None, claims: str | None = None) -> str:
    """The console's overview of a lifecycle graph. With `live` (the URL of its figures) and `claims` (the
    claims list's), the served console: the figures are drawn on the picture and the links lead to claims."""
    model = {**console_model(graph), "live": live, "claims": claims, "title_points": TITLE_POINTS}
    data = orjson.dumps(model).decode().replace("<", "\\u003c")  # no tag, comment or "</script>" in the script
    controls = '<label><input type="checkbox" id="codes"> code names</label>'
    if live:
        controls += (
            '<label>over the last <select id="window"><option value="1">day</option><option value="7">7 days</option>'
            '<option value="30" selected>30 days</option><option value="90">90 days</option></select></label>'
            '<label>colour <select id="colour"><option value="claims">claims now</option><option value="time">time'
            ' spent</option><option value="arrows">arrows taken</option><option value="none">nothing</option>'
            '</select></label><span id="asof" class="muted"></span>'
        )
    tables = (
        f"<h2>States</h2>{_html_table(graph.state_rows(), _STATE_COLUMNS, {'state'})}"
        f"<h2>Transitions</h2>{_html_table(graph.transition_rows(), _TRANSITION_COLUMNS, {'trigger', 'from', 'to'})}"
    )
    svg = compact_svg(graph)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{escape_html(graph.title)}</title><style>{_asset('console.css')}</style></head>\n"
        f'<body class="codes-off"><div class="screen"><header><h1>{escape_html(graph.title)}</h1>'
        f"{nav_html(graph.views, OVERVIEW_PAGE, served=bool(live))}</header>\n"
        f'<main class="console"><div id="picture">{svg[svg.index("<svg") :]}'
        '<div id="zoom"><button type="button" id="zoom-in" title="zoom in">+</button>'
        '<button type="button" id="zoom-out" title="zoom out">\u2212</button>'
        '<button type="button" id="zoom-fit" title="the whole lifecycle">fit</button>'
        "<span>Hover or click a state or an arrow for its words; drag to move, scroll to zoom.</span></div></div>"
        f'<aside><div class="controls">{controls}</div><section id="details"></section>'
        f'<section id="summary">{_summary(model)}</section></aside></main></div>\n'
        f'<div class="page">{tables}</div>\n'
        f'<script type="application/json" id="model">{data}</script>\n'
        f"<script>{_asset('console.js')}</script></body></html>\n"
    )
