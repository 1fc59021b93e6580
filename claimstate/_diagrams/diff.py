"""What changed between two exported definitions (`claimstate model --json`), for review: each state and
transition added, removed or changed, with what changed (`details`, the fields as the code names them) and
the same in plain words (`words`, for a product owner); as text, Markdown, and the review page (`review`).

It reads the exports, not code, so a change can be reviewed from two files (the one committed, the one
proposed) without running either. Being files, they are bounded before anything reads them (`within_export_bounds`):
their size (states, arrows), their deadline windows and their text, so that no export makes a number
overflow, a text unprintable or the layout engine run out of stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import attrs

from claimstate._definition import MAX_WINDOW, OUTCOMES
from claimstate._diagrams.graph import window_words
from claimstate._diagrams.graphviz import drawable
from claimstate._diagrams.page import markdown_code, markdown_text
from claimstate._errors import InvalidInput

Key = tuple[str, tuple[str, ...], str]  # a transition: trigger, sources, destination


@attrs.frozen
class Change:
    """What changed in one state or transition: `kind` is added, removed or changed; `details` say how, in
    the fields' names; `touches` are the states whose claims it concerns (the state itself, or the
    transition's sources); `words` say it all in plain sentences, with the titles people read (``Awaiting
    the return: the buyer has 7 days to ship the return, not 10.``)."""

    kind: str
    what: str  # "state" or "transition"
    name: str
    details: tuple[str, ...] = ()
    touches: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


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
    say = _Words(old_states, new_states)
    for name in old_states.keys() - new_states.keys():
        found.append(Change("removed", "state", name, touches=(name,), words=say.state_gone(old_states[name])))
    for name in new_states.keys() - old_states.keys():
        found.append(Change("added", "state", name, words=say.state_new(new_states[name])))
    for name in old_states.keys() & new_states.keys():
        details = _state_differences(old_states[name], new_states[name])
        if details:
            words = say.state_changed(old_states[name], new_states[name])
            found.append(Change("changed", "state", name, details, (name,), words))
    old_moves, new_moves = _transitions(old), _transitions(new)
    gone, came = old_moves.keys() - new_moves.keys(), new_moves.keys() - old_moves.keys()
    for key in gone:
        instead = _counterpart(key, gone, came)
        words = say.step_gone(old_moves[key], None if instead is None else new_moves[instead])
        found.append(Change("removed", "transition", _named(key), touches=key[1], words=words))
    for key in came:
        instead = _counterpart(key, came, gone)
        words = say.step_new(new_moves[key], None if instead is None else old_moves[instead])
        found.append(Change("added", "transition", _named(key), touches=key[1], words=words))
    for key in old_moves.keys() & new_moves.keys():
        details = _transition_differences(old_moves[key], new_moves[key])
        if details:
            words = say.step_changed(old_moves[key], new_moves[key])
            found.append(Change("changed", "transition", _named(key), details, key[1], words))
    return sorted(found, key=lambda c: (("added", "removed", "changed").index(c.kind), c.what, c.name))


def _counterpart(key: Key, these: Iterable[Key], others: Iterable[Key]) -> Key | None:
    """The one transition on the other side that `key`'s replaces: the only one of the same trigger there,
    when `key`'s is the only one of it on this side (a step that now leads elsewhere, or from more states)."""
    mine = [k for k in these if k[0] == key[0]]
    theirs = [k for k in others if k[0] == key[0]]
    return theirs[0] if len(mine) == 1 and len(theirs) == 1 else None


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
    for field in ("title", "meaning", "final", "outcome", "note"):
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
    """The changes as a Markdown review: added, removed, changed, each in plain words and then with its
    details; given `open_claims` (open claims per state, decided under `old`), each change says how many of
    them it touches."""
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
                lines += [f"  - {markdown_text(said)}" for said in change.words]
                lines += [f"  - {markdown_text(detail)}" for detail in change.details]
            lines.append("")
    return "\n".join(lines)


# --- the changes in words ----------------------------------------------------------------------------------

_WHO = {"buyer": "the buyer", "supplier": "the supplier", "agent": "the dispute team", "system": "the clock"}
_LABEL_WHO = (("buyer ", "the buyer "), ("supplier ", "the supplier "), ("team ", "the team "))


def people(actors: Iterable[str]) -> str:
    """``the buyer``, ``the buyer and the supplier``: the roles in words, joined by and."""
    said = [_WHO.get(str(role), str(role)) for role in actors]
    return "no one" if not said else said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def sentence(text: str) -> str:
    """`text` as a sentence: its first letter a capital, a full stop at its end."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _quoted(text: str) -> str:
    return f"\u201c{text}\u201d"


def _window(deadline: Mapping[str, Any]) -> timedelta:
    return timedelta(seconds=int(deadline.get("window_seconds", 0)))


def clock_words(deadline: Mapping[str, Any], before: timedelta | None = None) -> str:
    """A deadline in words: ``the buyer has 7 days to ship the return`` (from its description, ``the buyer must
    ship the return``, and its window), with ``, not 10`` when it had another window (`before`)."""
    window = window_words(_window(deadline))
    description = re.sub(r"\s*\([^()]*\)\s*$", "", str(deadline.get("description", ""))).strip()
    if before is None:
        was = ""
    else:
        old = window_words(before)
        same_unit = old.split(" ", 1)[1].rstrip("s") == window.split(" ", 1)[1].rstrip("s")
        was = f", not {old.split(' ', 1)[0] if same_unit else old}"
    if window in description and not was:
        return description
    who, must, what = description.partition(" must ")
    if must and who and what:
        return f"{who} has {window} to {what}{was}"
    return f"the clock runs {window}{was}" + (f" ({description})" if description else "")


class _Words:
    """Each change in plain sentences, naming states by their titles (the new definition's, or the old's for
    what it alone has) and steps by their labels."""

    def __init__(self, old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> None:
        self.titles = {name: _title(state) for states in (old, new) for name, state in states.items()}

    def title(self, name: str) -> str:
        return self.titles.get(name, name)

    def state_new(self, state: Mapping[str, Any]) -> tuple[str, ...]:
        said = [f"New state {_quoted(_title(state))}" + (f": {state['meaning']}." if state.get("meaning") else ".")]
        if state.get("deadline"):
            said.append(sentence(clock_words(state["deadline"])))
        if state.get("final"):
            said.append(sentence(f"a claim ends here: {OUTCOMES.get(str(state.get('outcome')), 'it is closed')}"))
        return tuple(said)

    def state_gone(self, state: Mapping[str, Any]) -> tuple[str, ...]:
        meaning = f" ({state['meaning']})" if state.get("meaning") else ""
        return (
            f"Removed state {_quoted(_title(state))}{meaning}.",
            "Open claims in it must be moved to another state by the migration plan.",
        )

    def state_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
        title, said = _title(new), []
        if _title(old) != title:
            said.append(f"Renamed: {_quoted(_title(old))} is now called {_quoted(title)}.")
        if old.get("meaning") != new.get("meaning"):
            said.append(f"{title} now means: {new.get('meaning')} (before: {old.get('meaning')}).")
        if bool(old.get("final")) != bool(new.get("final")):
            said.append(
                f"{title} now closes the claim." if new.get("final") else f"{title} no longer closes the claim."
            )
        if old.get("outcome") != new.get("outcome"):
            after, before = (OUTCOMES.get(str(s.get("outcome")), "not said") for s in (new, old))
            said.append(f"{title}: a claim that ends here now means {after} (before: {before}).")
        if old.get("note") != new.get("note"):
            said.append(f"{title}: the note now reads {_quoted(str(new.get('note')))}." if new.get("note")
                        else f"{title}: the note {_quoted(str(old.get('note')))} is gone.")  # fmt: skip
        said += self._clock(title, old.get("deadline") or {}, new.get("deadline") or {})
        return tuple(said)

    @staticmethod
    def _clock(title: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
        if not any(before.get(k) != after.get(k) for k in ("window_seconds", "trigger", "name", "description")):
            return []
        if not before:
            return [f"{title} now runs a clock: {clock_words(after)}."]
        if not after:
            return [f"{title} runs no clock any more (before: {clock_words(before)})."]
        same = all(before.get(k) == after.get(k) for k in ("trigger", "name", "description"))
        if same:
            return [f"{title}: {clock_words(after, _window(before))}."]
        now, was = clock_words(after), clock_words(before)
        if now == was:
            return [f"{title}: the clock says the same in words; its names in the code change."]
        return [f"{title}: the clock changes: {now} (before: {was})."]

    def step(self, move: Mapping[str, Any]) -> str:
        """``the supplier passes the inspection, from Awaiting inspection to Refunded in full``."""
        label = _label(move)
        label = next((label.replace(short, long, 1) for short, long in _LABEL_WHO if label.startswith(short)), label)
        sources = [self.title(s) for s in move["sources"]]
        where = f"from {' or '.join(sources)}" if sources else "filing a claim,"
        return f"{label}, {where} to {self.title(move['dest'])}"

    def _ref(self, move: Mapping[str, Any]) -> str:
        return f"{_quoted(_label(move))} (from {self._sources(move)} to {self.title(move['dest'])})"

    def step_new(self, move: Mapping[str, Any], instead: Mapping[str, Any] | None) -> tuple[str, ...]:
        said = [f"New step: {self.step(move)}."]
        conditions = [str(g["description"]) for g in move.get("guards", ()) if g.get("kind") != "permission"]
        if conditions:
            said.append(f"Only when: {'; '.join(conditions)}.")
        if "system" in move.get("actors", ()):
            said.append("The clock takes it when the deadline has passed.")
        if instead is not None and instead["dest"] == move["dest"]:
            said.append(f"Before: from {self._sources(instead)} only.")
        elif instead is not None:
            said.append(f"It replaces {self._ref(instead)}.")
        return tuple(said)

    def step_gone(self, move: Mapping[str, Any], instead: Mapping[str, Any] | None) -> tuple[str, ...]:
        said = [f"Removed step: {self.step(move)}."]
        if instead is not None and instead["dest"] == move["dest"]:
            said.append(f"It now leaves from {self._sources(instead)} (a new step).")
        elif instead is not None:
            said.append(f"Replaced by {self._ref(instead)}.")
        return tuple(said)

    def _sources(self, move: Mapping[str, Any]) -> str:
        return " or ".join(self.title(s) for s in move["sources"]) or "a new claim"

    def step_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
        ref, said = self._ref(new), []
        before, after = list(old.get("actors", ())), list(new.get("actors", ()))
        if before != after:
            only = "only " if len(before) == 1 else ""
            said.append(f"Who may take the step {ref}: now {people(after)}, before {only}{people(before)}.")
        if _label(old) != _label(new):
            said.append(f"The step {_quoted(_label(old))} is now called {_quoted(_label(new))}.")
        was = {g["code"]: str(g["description"]) for g in old.get("guards", ())}
        now = {g["code"]: str(g["description"]) for g in new.get("guards", ())}
        said += [f"A new condition on {ref}: {now[c]}." for c in now if c not in was]
        said += [f"A condition dropped from {ref}: {was[c]}." for c in was if c not in now]
        said += [f"A condition on {ref} now reads: {now[c]} (before: {was[c]})." for c in now
                 if c in was and now[c] != was[c]]  # fmt: skip
        if old.get("description") != new.get("description"):
            said.append(f"The step {ref} now means: {new.get('description')} (before: {old.get('description')}).")
        if old.get("on_deadline") != new.get("on_deadline"):
            said.append(f"The clock now takes the step {ref} when the deadline has passed." if new.get("on_deadline")
                        else f"The clock no longer takes the step {ref}.")  # fmt: skip
        fields = [[f.get("name"), f.get("required")] for f in old.get("data", ())]
        if fields != [[f.get("name"), f.get("required")] for f in new.get("data", ())]:
            taken = ", ".join(str(f.get("name")) + ("" if f.get("required", True) else " (optional)")
                              for f in new.get("data", ()))  # fmt: skip
            said.append(f"The step {ref} now takes: {taken or 'nothing'}.")
        return tuple(said)


def _title(state: Mapping[str, Any]) -> str:
    return str(state.get("title") or str(state["name"]).replace("_", " ").capitalize())


def _label(move: Mapping[str, Any]) -> str:
    return str(move.get("label") or move.get("description") or move["trigger"])
