"""What changed between two exported definitions (`claimstate model --json`), for review: in words
(Markdown) and as a picture of the new lifecycle with what was added marked and what was removed kept,
struck (HTML).

It reads the exports, not code, so a change can be reviewed from two files (the one committed, the one
proposed) without running either. Being files, they are bounded before anything reads them (`within_export_bounds`):
their size (states, arrows), their deadline windows and their text, so that no export makes a number
overflow, a text unprintable or the layout engine run out of stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs

from claimstate._definition import MAX_WINDOW
from claimstate._diagrams.dot import quote
from claimstate._diagrams.graph import window_words
from claimstate._diagrams.graphviz import draw_svg, drawable
from claimstate._diagrams.page import escape_html, html_page, markdown_code, markdown_text, picture
from claimstate._errors import InvalidInput

Key = tuple[str, tuple[str, ...], str]  # a transition: trigger, sources, destination


@attrs.frozen
class Change:
    """What changed in one state or transition: `kind` is added, removed or changed; `details` say how;
    `touches` are the states whose claims it concerns (the state itself, or the transition's sources)."""

    kind: str
    what: str  # "state" or "transition"
    name: str
    details: tuple[str, ...] = ()
    touches: tuple[str, ...] = ()


def within_export_bounds(exported: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """`exported` if it is within the bounds of an export (`to_dict()`); else InvalidInput naming `field`
    and what is wrong: more states or arrows than a picture holds (`drawable`), a deadline window that is not a
    whole number of seconds above zero and at most MAX_WINDOW, or a text holding a NUL or a lone
    surrogate (which no definition's text holds, and nothing can print or draw)."""
    states, transitions = (exported.get(key) for key in ("states", "transitions"))
    states, transitions = (part if isinstance(part, list) else [] for part in (states, transitions))  # see _states
    arrows = sum(max(1, len(t["sources"])) if isinstance(t, dict) and isinstance(t.get("sources"), list) else 1
                 for t in transitions)  # fmt: skip
    drawable(len(states), arrows, field)
    for state in states:
        deadline = state.get("deadline") if isinstance(state, dict) else None
        window = deadline.get("window_seconds") if isinstance(deadline, dict) else 1
        if isinstance(window, bool) or not isinstance(window, int) or not 0 < window <= MAX_WINDOW.total_seconds():
            raise InvalidInput(
                f"state {state.get('name')!r}: a deadline window of {window!r} seconds; it is a whole number of seconds"
                f" above zero, at most {int(MAX_WINDOW.total_seconds()):,} ({MAX_WINDOW.days:,} days)",
                field=field,
            )
    for text in _texts(exported):
        if "\x00" in text or not _encodes(text):
            raise InvalidInput(
                f"the text {text[:60]!r} holds a NUL or a lone surrogate, which no definition's text holds", field=field
            )
    return exported


def _encodes(text: str) -> bool:
    """Whether `text` is UTF-8 text (no lone surrogate, as a JSON escape such as \\udcff can give)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _texts(value: Any) -> list[str]:
    """Every string in a JSON value, keys included (walked without recursion: any depth is read)."""
    found, left = [], [value]
    while left:
        item = left.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            left += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            left += item
    return found


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every state and transition added, removed or changed from `old` to `new` (two `to_dict()` exports,
    `within_export_bounds`); InvalidInput names a file that is not one."""
    within_export_bounds(old, "old")
    within_export_bounds(new, "new")
    try:
        return _changes(old, new)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInput(f"not an exported definition: {error!r}", field="definition") from None


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    found: list[Change] = []
    old_states, new_states = _states(old), _states(new)
    for name in old_states.keys() - new_states.keys():
        found.append(Change("removed", "state", name, touches=(name,)))
    for name in new_states.keys() - old_states.keys():
        found.append(Change("added", "state", name))
    for name in old_states.keys() & new_states.keys():
        details = _state_differences(old_states[name], new_states[name])
        if details:
            found.append(Change("changed", "state", name, details, (name,)))
    old_moves, new_moves = _transitions(old), _transitions(new)
    for key in old_moves.keys() - new_moves.keys():
        found.append(Change("removed", "transition", _named(key), touches=key[1]))
    for key in new_moves.keys() - old_moves.keys():
        found.append(Change("added", "transition", _named(key), touches=key[1]))
    for key in old_moves.keys() & new_moves.keys():
        details = _transition_differences(old_moves[key], new_moves[key])
        if details:
            found.append(Change("changed", "transition", _named(key), details, key[1]))
    return sorted(found, key=lambda c: (("added", "removed", "changed").index(c.kind), c.what, c.name))


def _states(definition: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    try:
        return {s["name"]: s for s in definition["states"]}
    except (KeyError, TypeError) as error:
        raise InvalidInput(f"not an exported definition (no states list): {error!r}", field="definition") from None


def _transitions(definition: Mapping[str, Any]) -> dict[Key, Mapping[str, Any]]:
    try:
        moves = {(str(t["trigger"]), tuple(t["sources"]), str(t["dest"])): t for t in definition["transitions"]}
    except (KeyError, TypeError) as error:
        raise InvalidInput(f"not an exported definition (no transitions list): {error!r}", field="definition") from None
    if not all(isinstance(s, str) for key in moves for s in key[1]) or any(
        isinstance(t["sources"], str) for t in definition["transitions"]
    ):
        raise InvalidInput(
            "not an exported definition: a transition's sources are not a list of names", field="definition"
        )
    return moves


def _named(key: Key) -> str:
    trigger, sources, dest = key
    return f"{trigger}: {', '.join(sources) or '(new claim)'} -> {dest}"


def _state_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    said = []
    for field in ("title", "meaning", "final", "note"):
        if old.get(field) != new.get(field):
            said.append(f"{field}: {old.get(field)!r} -> {new.get(field)!r}")
    before, after = old.get("deadline") or {}, new.get("deadline") or {}
    if any(before.get(k) != after.get(k) for k in ("window_seconds", "trigger", "name")):
        said.append(f"deadline: {_deadline(before)} -> {_deadline(after)}")
    return tuple(said)


def _deadline(deadline: Mapping[str, Any]) -> str:
    if not deadline:
        return "none"
    window = window_words(timedelta(seconds=int(deadline.get("window_seconds", 0))))
    return f"{deadline.get('name')}: {deadline.get('trigger')} after {window}"


def _transition_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    said = []
    if list(old.get("actors", ())) != list(new.get("actors", ())):
        said.append(f"who: {', '.join(old.get('actors', ()))} -> {', '.join(new.get('actors', ()))}")
    before = {g["code"]: g["description"] for g in old.get("guards", ())}
    after = {g["code"]: g["description"] for g in new.get("guards", ())}
    said += [f"guard removed: {before[code]}" for code in before.keys() - after.keys()]
    said += [f"guard added: {after[code]}" for code in after.keys() - before.keys()]
    said += [f"guard {code}: {before[code]!r} -> {after[code]!r}" for code in before.keys() & after.keys()
             if before[code] != after[code]]  # fmt: skip
    for field in ("label", "description", "on_deadline"):
        if old.get(field) != new.get(field):
            said.append(f"{field}: {old.get(field)!r} -> {new.get(field)!r}")
    fields = [[f.get("name"), f.get("required")] for f in old.get("data", ())]
    if fields != [[f.get("name"), f.get("required")] for f in new.get("data", ())]:
        said.append("data it takes: " + ", ".join(str(f.get("name")) for f in new.get("data", ())))
    return tuple(sorted(said))


def touched(change: Change, open_claims: Mapping[str, int]) -> int:
    """How many of `open_claims` (open claims per state, decided under the old definition) `change` touches."""
    return sum(open_claims.get(state, 0) for state in change.touches)


def _count(change: Change, open_claims: Mapping[str, int] | None) -> str:
    return "" if open_claims is None else f" ({touched(change, open_claims)} open claim(s))"


def to_markdown(old: Mapping[str, Any], new: Mapping[str, Any], *, open_claims: Mapping[str, int] | None = None) -> str:
    """The changes as a Markdown review: added, removed, changed, each with its details; given `open_claims`
    (open claims per state, decided under `old`), each change says how many of them it touches."""
    found = changes(old, new)
    lines = [f"# Lifecycle changes: {markdown_text(str(old.get('name')))} -> {markdown_text(str(new.get('name')))}", ""]
    if not found:
        return "\n".join([*lines, "No state or transition changed.", ""])
    if open_claims is not None:
        lines += ["In parentheses: the open claims decided under the old definition each change touches.", ""]
    for kind in ("added", "removed", "changed"):
        these = [c for c in found if c.kind == kind]
        if these:
            lines += [f"## {kind.capitalize()}", ""]
            for change in these:
                lines.append(f"- {change.what} {markdown_code(change.name)}{_count(change, open_claims)}")
                lines += [f"  - {markdown_text(detail)}" for detail in change.details]
            lines.append("")
    return "\n".join(lines)


def to_html(old: Mapping[str, Any], new: Mapping[str, Any], *, open_claims: Mapping[str, int] | None = None) -> str:
    """The picture of the new lifecycle with the changes marked (added green and bold, removed grey, dashed
    and struck), then the same list as the Markdown (with `open_claims`, each change's count of them)."""
    found = changes(old, new)
    svg = draw_svg(_dot(old, new, found))
    items = "".join(
        f"<li><b>{c.kind}</b> {c.what} <code>{escape_html(c.name)}</code>{_count(c, open_claims)}"
        + ("<ul>" + "".join(f"<li>{escape_html(d)}</li>" for d in c.details) + "</ul>" if c.details else "")
        + "</li>"
        for c in found
    )
    body = f"{picture(svg)}<h2>Every change</h2><ul>{items or '<li>none</li>'}</ul>\n"
    return html_page(
        f"Lifecycle changes: {old.get('name')} -> {new.get('name')}",
        "Green and bold: added. Grey, dashed and struck: removed. Orange: changed.",
        body,
    )


_ADDED = 'color="#2e7d32", fontcolor="#2e7d32", penwidth=3'
_REMOVED = 'color="#9e9e9e", fontcolor="#9e9e9e", style="dashed"'
_CHANGED = 'color="#ef6c00", fontcolor="#ef6c00", penwidth=2'


def _dot(old: Mapping[str, Any], new: Mapping[str, Any], found: Sequence[Change]) -> str:
    """Both lifecycles in one picture: the new one, with what the old one had and the new one has not."""
    kinds = {(c.what, c.name): c.kind for c in found}
    states = {**_states(old), **_states(new)}
    moves = {**_transitions(old), **_transitions(new)}
    drawable(len(states), sum(max(1, len(key[1])) for key in moves), "definition")
    out = [
        "digraph changes {",
        '  graph [rankdir=TB, fontname="DejaVu Sans", nodesep=0.6, ranksep=0.7];',
        '  node [shape=box, style="rounded", fontname="DejaVu Sans", fontsize=13];',
        '  edge [fontname="DejaVu Sans", fontsize=11];',
        '  start [shape=circle, label="", width=0.25, style=filled, fillcolor="#000000"];',
    ]
    for name, state in states.items():
        kind = kinds.get(("state", name))
        title = state.get("title", name)
        label = _struck(title) if kind == "removed" else title
        look = {"added": _ADDED, "removed": _REMOVED, "changed": _CHANGED}.get(kind or "", "")
        words = f"{label}\n({name})" + (f"\n{kind}" if kind else "")
        out.append(f"  {_id(name)} [label={quote(words)}{', ' + look if look else ''}];")
    for key, move in moves.items():
        kind = kinds.get(("transition", _named(key)))
        look = {"added": _ADDED, "removed": _REMOVED, "changed": _CHANGED}.get(kind or "", 'color="#555555"')
        words = move.get("label") or key[0]
        if kind == "removed":
            words = _struck(words)
        label = quote(words + (f" ({kind})" if kind else ""))
        for source in key[1] or ("start",):
            out.append(f"  {_id(source) if source != 'start' else 'start'} -> {_id(key[2])} [label={label}, {look}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _struck(text: str) -> str:
    """Text with a line through it (combining long stroke overlay), as the picture cannot strike text."""
    return "".join(f"{c}\u0336" for c in text)


def _id(name: str) -> str:
    return quote(f"s_{name}")
