"""Definition fingerprints: which part of a definition decides a claim's path, its hash, and how people see it.

A fingerprint is SHA-256 over the canonical JSON of an export's rules, so two definitions share one exactly
when they decide every claim alike; the words (titles, labels) and the limits stay out of it. Every row a
claim writes records the fingerprint it was decided under (see "Changing the lifecycle" in the docs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

# What decides a claim's path, by the export's keys: a fingerprint covers these and nothing else, so
# rewording a title or a description is no change of the rules.
_STATE_RULES = ("name", "final", "deadline")
_DEADLINE_RULES = ("name", "trigger", "window_seconds")
_TRANSITION_RULES = ("trigger", "sources", "dest", "actors", "guards", "data", "on_deadline")
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
SHOWN_DIGITS = 12  # hex digits of a fingerprint shown to people (and the fewest a plan may give)


def rules_of(exported: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an export (`Definition.to_dict`) that decides a claim's path: states with their
    finality and deadlines (window included), transitions with who fires them, their guards by code, their
    data and the deadline they stand for. Not the words (titles, meanings, labels), not the limits (abuse
    bounds, checked at each fire and never replayed), not the state order. KeyError or TypeError: not an
    export."""
    states = []
    for state in exported["states"]:
        rule = {key: state[key] for key in _STATE_RULES}
        if rule["deadline"] is not None:
            rule["deadline"] = {key: state["deadline"][key] for key in _DEADLINE_RULES}
        states.append(rule)
    transitions = []
    for t in exported["transitions"]:
        rule = {key: t[key] for key in _TRANSITION_RULES}
        rule["sources"] = sorted(rule["sources"])
        rule["guards"] = [g["code"] for g in t["guards"]]
        rule["data"] = [{"name": f["name"], "required": f["required"]} for f in t["data"]]
        transitions.append(rule)
    return {"states": sorted(states, key=lambda s: str(s["name"])), "transitions": transitions}


def fingerprint_of(exported: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an export's rules (`rules_of`): equal for two definitions exactly
    when they decide every claim alike. A guard is known by its code: one whose meaning changes needs a
    new code. Transition order stays in (the first of several that pass is taken)."""
    return hashlib.sha256(_CANONICAL.encode(["claimstate-definition-1", rules_of(exported)]).encode()).hexdigest()


def windows_of(exported: Mapping[str, Any]) -> dict[str, timedelta]:
    """Each deadline's window in an export (`Definition.to_dict`), by deadline name. KeyError or TypeError:
    not an export."""
    return {
        state["deadline"]["name"]: timedelta(seconds=int(state["deadline"]["window_seconds"]))
        for state in exported["states"]
        if state.get("deadline")
    }


def short(fingerprint: str | None) -> str:
    """The first hex digits of a fingerprint, as people are shown it."""
    return "(none recorded)" if fingerprint is None else fingerprint[:SHOWN_DIGITS]
