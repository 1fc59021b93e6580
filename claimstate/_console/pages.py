"""The console's pages for support: a list of claims (what a count on the overview stands for) and one
claim's situation at a glance, who must act next first.

Pages read a claim, its history and what each party may do now (`ClaimService.available`), and say it in
the lifecycle's own words: the transitions' labels, the states' titles, the deadlines' descriptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from claimstate._actor import AGENT, BUYER, SUPPLIER, SYSTEM, Actor
from claimstate._claim import ACCEPTED, Claim, TransitionRecord
from claimstate._console.live import duration
from claimstate._definition import Context, Definition, Policy, Transition
from claimstate._diagrams.console import ROLE_WORDS
from claimstate._diagrams.graph import action
from claimstate._diagrams.page import CLAIMS_PAGE, escape_html, html_page, nav_html
from claimstate._engine import Availability
from claimstate._errors import LifecycleChanged
from claimstate._service import ClaimService


def _a(choice: str) -> str:
    """A choice of the lifecycle's data in words (``full_refund`` -> ``a full refund``), whatever its values."""
    return f"a {choice.replace('_', ' ')}"


def _upper(text: str) -> str:
    """The text with its first letter in upper case, the rest as written (str.capitalize lowers it)."""
    return text[:1].upper() + text[1:]


def when(at: datetime) -> str:
    """``12 Jan 2027, 10:00 UTC``."""
    return f"{at.day} {at.strftime('%b %Y, %H:%M')} UTC"


def _nav(definition: Definition, current: str = CLAIMS_PAGE, *, up: bool = False) -> str:
    return nav_html(definition.views, current, served=True, up=up)


def claims_page(
    definition: Definition, claims: Sequence[Claim], *, heading: str, now: datetime, links: str, more: str | None
) -> str:
    """A table of claims, each linked to its page: where it is, since when, and its running deadline; `more`,
    the address of the next page, when there is one."""
    titles = {s.name: s.title for s in definition.states}
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            f'<a href="{links}{escape_html(quote(c.id, safe=""))}">{escape_html(c.id)}</a>',
            escape_html(c.order_id),
            f"{escape_html(c.buyer_id)} against {escape_html(c.supplier_id)}",
            escape_html(c.amount.format()),
            escape_html(titles.get(c.state, c.state)),
            duration(now - c.updated_at),
            "-" if c.deadline is None else escape_html(when(c.deadline.due)),
        )) + "</tr>"
        for c in claims
    )  # fmt: skip
    table = (
        '<table class="list"><thead><tr><th>claim</th><th>order</th><th>parties</th><th>amount</th><th>state</th>'
        f"<th>in it for</th><th>deadline</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    body = table if claims else "<p>No claims.</p>"
    if more:
        body += f'<p><a href="{escape_html(more)}">The next {len(claims)}</a></p>'
    return html_page(heading, f"As of {when(now)}; in the order they were filed.", body, nav=_nav(definition))


def _next_steps(
    definition: Definition, policy: Policy, claim: Claim, options: dict[str, tuple[Availability, ...]], now: datetime
) -> str:
    """Who may act now (each role's allowed steps, in words) and what the clock does if nobody does."""
    state = definition.state(claim.state)
    if state.final:
        return f"<p>Nobody: the claim is closed. {escape_html(_upper(state.meaning))}.</p>"
    said = []
    ids = {"buyer": claim.buyer_id, "supplier": claim.supplier_id}
    for role, allowed in options.items():
        actor = Actor(role, ids.get(role, "console") if role != SYSTEM else None)
        steps = [
            t.label for a in allowed if (t := _taken(definition, policy, claim, trigger=a.trigger, actor=actor, at=now))
        ]
        if steps:
            who = _upper(ROLE_WORDS.get(role, role)) + (f" ({ids[role]})" if role in ids else "")
            words = "; ".join(dict.fromkeys(action(s) for s in steps))
            said.append(f"<li><b>{escape_html(who)}</b>, steps open now: {escape_html(words)}.</li>")
    if claim.deadline is not None:
        due = claim.deadline.due
        taken = _taken(definition, policy, claim, trigger=claim.deadline.trigger, actor=Actor(SYSTEM), at=due)
        rule = state.deadline
        then = "" if taken is None else f" the clock acts ({taken.label}): {_goes(definition, taken.dest)}"
        must = "" if rule is None else f"{_upper(rule.description)} by "
        if due <= now:
            late = (f"It passed {duration(now - due)} ago and the clock has not acted yet: it acts when a tick runner"
                    " next runs (claimstate tick).")  # fmt: skip
            said.insert(0, f"<li><b>{escape_html(must + when(due))}</b>. {late} Then{escape_html(then)}.</li>")
        else:
            left = f"in {duration(due - now)}"
            said.insert(
                0, f"<li><b>{escape_html(must + when(due))}</b> ({left}). If nobody does,{escape_html(then)}.</li>"
            )
    else:
        waited = duration(now - claim.updated_at)
        said.append(
            f"<li><b>No deadline runs here</b>: nothing happens until someone acts (unchanged for {waited}).</li>"
        )
    return f"<ul>{''.join(said)}</ul>"


def _goes(definition: Definition, dest: str) -> str:
    """``the claim ends: “Payment released to the supplier”`` or ``the claim moves to “Awaiting the return”``."""
    state = definition.state(dest)
    return f"the claim {'ends' if state.final else 'moves to'}: “{state.title}”"


def _taken(
    definition: Definition, policy: Policy, claim: Claim, *, trigger: str, actor: Actor, at: datetime
) -> Transition | None:
    """The transition `trigger` would take from the claim's state for `actor` at `at`: the first whose guards
    hold, leaving out those that judge data the trigger has not been given."""
    context = Context(claim.id, claim, actor, {}, at, policy)
    for t in definition.candidates(claim.state, trigger):
        if all(g.uses_data or g.check(context) for g in t.guards):
            return t
    return None


def _asked(claim: Claim) -> str:
    asked = _a(claim.resolution)
    amount = claim.refund_amount.format() if claim.refund_amount is not None else claim.amount.format()
    of = f" of the {claim.amount.format()} order" if claim.refund_amount is not None else " (the order amount)"
    return f"<p>{escape_html(f'{_upper(asked)}: {amount}{of}. Why: “{claim.reason}”')}</p>"


def _agreement(claim: Claim) -> str:
    if not claim.offers:
        return "<p>No offer made.</p>"
    items = "".join(
        f"<li>The {escape_html(o.by)} offered {escape_html(_a(o.kind))} of"
        f" {escape_html(o.amount.format())}, {escape_html(when(o.at))}: {escape_html(o.status)}"
        f"{' (the agreement)' if o.status == ACCEPTED else ''}.</li>"
        for o in claim.offers
    )
    return f"<ul>{items}</ul>"


def _evidence(claim: Claim) -> str:
    if not claim.evidence:
        return "<p>None yet.</p>"
    items = "".join(
        f"<li>{escape_html(f'{_upper(e.by)}, {when(e.at)}: {e.kind}, “{e.description}”')}"
        + (f" ({escape_html(e.document)})" if e.document else "")
        + "</li>"
        for e in claim.evidence
    )
    return f"<ul>{items}</ul>"


def _timeline(definition: Definition, history: Sequence[TransitionRecord], now: datetime, current: str) -> str:
    titles = {s.name: s.title for s in definition.states}
    rows = []
    for number, record in enumerate(history):
        until = history[number + 1].at if number + 1 < len(history) else None
        stayed = duration((until or now) - record.at) + ("" if until else " so far" if record.dest == current else "")
        who = _upper(ROLE_WORDS.get(record.actor.role, record.actor.role))
        who += f" ({record.actor.id})" if record.actor.id else ""
        what = action(definition.label(record.source, record.trigger, record.dest))
        rows.append(f"<tr><td>{escape_html(when(record.at))}</td><td>{escape_html(who)}</td><td>{escape_html(what)}</td>"
                    f"<td>{escape_html(titles.get(record.dest, record.dest))}</td><td>{stayed}</td></tr>")  # fmt: skip
    return (
        '<table class="list"><thead><tr><th>when</th><th>who</th><th>what</th><th>then</th><th>stayed there</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def page_of_claim(service: ClaimService, claim_id: str) -> str:
    """A claim's page as the console serves it, read from `service` now: the claim, its history, and what the
    buyer, the supplier and the dispute team may each do."""
    claim, history, now = service.get(claim_id), service.history(claim_id), service.now()
    actors = {"buyer": Actor(BUYER, claim.buyer_id), "supplier": Actor(SUPPLIER, claim.supplier_id),
              "agent": Actor(AGENT, "console")}  # fmt: skip
    try:
        options = {role: tuple(a for a in service.available(claim_id, actor, now) if a.allowed)
                   for role, actor in actors.items()}  # fmt: skip
    except LifecycleChanged as changed:  # decided under an earlier lifecycle: no one acts until it is migrated
        return claim_page(service.definition, service.engine.policy, claim, history=history, options={}, now=now,
                          waiting=str(changed))  # fmt: skip
    return claim_page(service.definition, service.engine.policy, claim, history=history, options=options, now=now)


def claim_page(
    definition: Definition,
    policy: Policy,
    claim: Claim,
    *,
    history: Sequence[TransitionRecord],
    options: dict[str, tuple[Availability, ...]],
    now: datetime,
    waiting: str = "",
) -> str:
    """One claim for support: who must act next and by when, what the buyer asked and why, the offers and
    the agreement, the evidence, the return, and a timeline with how long each step took. `options` are
    each role's allowed steps now (`available`, allowed ones only); `waiting`, why no one can act (the claim
    was decided under an earlier lifecycle and waits for a migration)."""
    known = {s.name: s for s in definition.states}
    state = known.get(claim.state)  # None: a state of the earlier lifecycle the claim waits in
    now_in = f"{state.title} ({state.meaning})" if state else f"{claim.state} (a state this lifecycle no longer has)"
    shipment = (
        ""
        if claim.shipment is None
        else f"<h2>Return</h2><p>Shipped with {escape_html(claim.shipment.carrier)}, tracking"
        f" {escape_html(claim.shipment.tracking_number)}, {escape_html(when(claim.shipment.shipped_at))}.</p>"
    )
    address = (
        "" if claim.return_address is None else f"<p>Return address confirmed: {escape_html(claim.return_address)}</p>"
    )
    nexts = (
        f"<p>No one yet: {escape_html(waiting)}</p>"
        if waiting
        else _next_steps(definition, policy, claim, options, now)
    )
    body = (
        f'<div class="next"><h2>Who must act next</h2>{nexts}</div>'
        f"<h2>What the buyer asked for</h2>{_asked(claim)}"
        f"<h2>Offers and agreement</h2>{_agreement(claim)}"
        f"<h2>Evidence</h2>{_evidence(claim)}{shipment}{address}"
        f"<h2>Timeline</h2>{_timeline(definition, history, now, claim.state)}"
    )
    intro = (
        f"Now: {now_in}. Order {claim.order_id}, {claim.buyer_id} (buyer) against"
        f" {claim.supplier_id} (supplier), {claim.amount.format()}; filed {when(claim.filed_at)}."
    )
    return html_page(f"Claim {claim.id}", intro, body, nav=_nav(definition, "", up=True))
