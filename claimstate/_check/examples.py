"""The sample data `check` fires each trigger with: one default for the library and the command line.

The default is the examples the definition carries (`check_settings.examples`), fitted to it: each
trigger's examples keep only the fields that trigger takes (so a filing without a `resolution` still files,
and a definition may borrow another's), and a trigger they do not name gets one example that gives its
required fields the values the examples give fields of those names elsewhere. What no example can supply
is named (`lacking`), never left to explore nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from claimstate._definition import Definition
from claimstate._money import Money

Examples = Mapping[str, Sequence[Mapping[str, Any]]]


def default_examples(definition: Definition) -> dict[str, tuple[dict[str, Any], ...]]:
    """The examples `check(definition)` fires with when given none: the ones it carries, fitted to it."""
    carried = definition.check_settings.examples
    by_name: dict[str, Any] = {}
    for samples in carried.values():
        for sample in samples:
            for name, value in sample.items():
                by_name.setdefault(name, value)
    fitted: dict[str, tuple[dict[str, Any], ...]] = {}
    for trigger in definition.triggers:
        fields = definition.fields(trigger)
        takes = {f.name for f in fields}
        if trigger in carried:
            kept = [{k: v for k, v in sample.items() if k in takes} for sample in carried[trigger]]
        else:
            kept = [{f.name: by_name[f.name] for f in fields if f.required and f.name in by_name}]
        unique: list[dict[str, Any]] = []
        for sample in kept:
            if sample not in unique:
                unique.append(sample)
        if unique != [{}]:
            fitted[trigger] = tuple(unique)
    return fitted


def lacking(definition: Definition, examples: Examples) -> dict[str, tuple[str, ...]]:
    """Each trigger of `definition` that no example gives every required field of, with the fields the
    fullest example still misses: firing it could only ever be refused as invalid input."""
    missing: dict[str, tuple[str, ...]] = {}
    for trigger in definition.triggers:
        required = [f.name for f in definition.fields(trigger) if f.required]
        if not required:
            continue
        gaps = [tuple(n for n in required if n not in sample) for sample in examples.get(trigger, ({},))]
        fewest = min(gaps, key=len, default=tuple(required))
        if fewest:
            missing[trigger] = fewest
    return missing


def with_amounts(data: Mapping[str, Any], order: Money) -> dict[str, Any]:
    """Example data with its money placeholders ("{below}", "{order}", "{above}") made amounts in the order's
    currency, against the order amount."""
    amounts = {"{below}": order.minor // 2, "{order}": order.minor, "{above}": order.minor + 100}
    return {k: str(Money(amounts[v], order.currency)) if isinstance(v, str) and v in amounts else v
            for k, v in data.items()}  # fmt: skip
