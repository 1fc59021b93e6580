"""A marketplace's own small lifecycle, with views and filing fields of its own (the CLI tests load it with
`--definition own_lifecycle:OWN`):

- a claim is always for a full refund, so filing takes no `resolution` (nor `refund_amount`), and takes an
  optional `channel` the built-in filing does not know;
- the supplier refunds, or the team decides for either party; a silent supplier is decided by the team,
  and the clock closes a claim the team leaves alone for two weeks;
- two detail views, `intake` and `closing`, none of the built-in lifecycle's.

`NEEDY` is the same lifecycle needing data no default example gives: a required `channel` to file, and
a `grade` to close on inspection.

Each carries the built-in lifecycle's examples for `check` (fitted to it: the filing's samples lose
`resolution`, and the team's decisions take the first `rationale` given), and no refund states or party
moves of the built-in one.
"""

from __future__ import annotations

from datetime import timedelta

import attrs

from claimstate import CLAIM_LIFECYCLE, Claim
from claimstate.definition import CheckSettings, Context, DeadlineRule, Definition, Field, State, Transition, View, text

_BUILT_IN = CLAIM_LIFECYCLE.creation
_GUARDS = {g.code: g for t in CLAIM_LIFECYCLE.transitions for g in t.guards}
_FIELDS = {f.name: f for f in _BUILT_IN.fields}
CHANNEL = text("channel", "where the buyer filed: web, app or phone", required=False)
FILING_FIELDS = (*(f for name, f in _FIELDS.items() if name not in {"resolution", "refund_amount"}), CHANNEL)
RATIONALE = (text("rationale", "why the team decided so"),)


def _file_full_refund(ctx: Context) -> Claim:
    """The built-in filing's claim, always asking a full refund."""
    assert _BUILT_IN.effect is not None
    return _BUILT_IN.effect(attrs.evolve(ctx, data={**ctx.data, "resolution": "full_refund"}))


STALE = DeadlineRule(
    name="stale_after", trigger="close_stale", window=timedelta(days=14), description="the team has two weeks"
)
STATES = (
    State(name="open", meaning="filed; the supplier may refund, or the team decides", deadline=STALE),
    State(name="refunded", meaning="the supplier or the team refunded the buyer", final=True),
    State(name="rejected", meaning="the team decided for the supplier", final=True),
)


def _transitions(
    filing_fields: tuple[Field, ...] = FILING_FIELDS, inspect: tuple[Field, ...] = ()
) -> tuple[Transition, ...]:
    return (
        Transition(
            trigger="file_claim", sources=(), dest="open", actors="buyer", description="the buyer files a claim",
            guards=(_GUARDS["files_own_claim"], _GUARDS["order_amount_positive"], _GUARDS["buyer_is_not_supplier"],
                    _GUARDS["no_open_claim_on_order"]),
            fields=filing_fields, effect=_file_full_refund,
        ),
        Transition(trigger="refund", sources=("open",), dest="refunded", actors="supplier",
                   description="the supplier refunds the buyer"),
        Transition(trigger="decide_refund", sources=("open",), dest="refunded", actors="agent",
                   description="the team refunds the buyer", fields=RATIONALE),
        Transition(trigger="decide_reject", sources=("open",), dest="rejected", actors="agent",
                   description="the team decides for the supplier", fields=RATIONALE),
        Transition(trigger="close_stale", sources=("open",), dest="refunded", actors="system",
                   description="two weeks without a decision: the buyer is refunded",
                   guards=(_GUARDS["deadline_reached"],), on_deadline="stale_after"),
        *(
            [Transition(trigger="inspect", sources=("open",), dest="rejected", actors="agent",
                        description="the team inspects the goods", fields=inspect)]
            if inspect else []
        ),
    )  # fmt: skip


VIEWS = (
    View(name="intake", title="Filing and the supplier's answer", triggers=("file_claim", "refund")),
    View(name="closing", title="How the team and the clock close it",
         triggers=("decide_refund", "decide_reject", "close_stale")),
)  # fmt: skip
BORROWED = CheckSettings(examples=CLAIM_LIFECYCLE.check_settings.examples)
OWN = Definition("own claim", STATES, _transitions(), VIEWS, check_settings=BORROWED)

NEEDY = Definition(
    "needy claim",
    STATES,
    _transitions(
        filing_fields=(*FILING_FIELDS[:-1], attrs.evolve(CHANNEL, required=True)),
        inspect=(text("grade", "the goods' grade, A to D"),),
    ),
    check_settings=BORROWED,
)
# NEEDY's filing can be made; only the inspection lacks its data.
NEEDY_INSPECTION = Definition(
    "needy inspection", STATES, _transitions(inspect=(text("grade", "A to D"),)), check_settings=BORROWED
)
