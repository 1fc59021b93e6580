"""The console in a real browser at 1440x900: the whole lifecycle on the first screen, readable, nothing over
anything, the four review questions answered there or one click away, words on hover and click, and the
live figures on the picture. A control page, broken on purpose, shows that every check can fail.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from console_helpers import screenshot
from page_checks import boxes_outside, clipped, overlaps, small_titles, text_on_screen
from seeding import EXPECTED

from claimstate import CLAIM_LIFECYCLE, Diagrams
from claimstate.definition import Definition, State, Transition

pytestmark = pytest.mark.slow

ARROWS = {t.trigger + ":" + t.dest: str(n) for n, t in enumerate(CLAIM_LIFECYCLE.transitions)}


@pytest.fixture(scope="module")
def static_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The overview as `claimstate diagram --all` writes it (no live figures), as a file URL."""
    path = tmp_path_factory.mktemp("console") / "lifecycle.html"
    path.write_text(Diagrams().html(), encoding="utf-8")
    return path.as_uri()


def _first_screen_problems(page: Any) -> list[str]:
    return [*boxes_outside(page), *small_titles(page), *overlaps(page), *clipped(page)]


def _answers(page: Any) -> list[str]:
    """The four review questions, each answered on the first screen (the summary beside the picture)."""
    endings = "#summary ul.endings"
    return [
        # what happens after a buyer asks for a full refund? the goods go back first, then the money
        *text_on_screen(page, f"{endings} li[data-state=refunded_full]", "goods go back to the supplier",
                        "only after a return shipment is recorded", "supplier confirms receipt"),
        # when does the buyer get money back without returning the goods?
        *text_on_screen(page, f"{endings} li[data-state=refunded_partial]", "the buyer keeps the goods",
                        "team decides a partial refund", "supplier silent: partial refund paid",
                        "team approves: partial refund"),
        # who can end a claim?
        *text_on_screen(page, endings, "(the buyer)", "(the supplier)", "(the dispute team)", "(the clock)"),
        # when do deadlines fire?
        *text_on_screen(page, "#summary ul.deadlines", "Awaiting evidence: after 7 days there",
                        "Awaiting the return: after 10 days there", "Return on its way: after 15 days there",
                        "Supplier asked to respond: after 5 days there"),
    ]  # fmt: skip


def test_the_whole_lifecycle_is_readable_on_the_first_screen(page: Any, static_page: str, tmp_path: Path) -> None:
    """On load at 1440x900 every state's box is inside the window, every title 11 px or more, no text over
    another or over a box, nothing cut off, and the page fetched nothing from anywhere."""
    page.goto(static_page)
    assert _first_screen_problems(page) == []
    assert _answers(page) == []
    assert page.outside == []
    screenshot(page, "overview", tmp_path)


def test_one_click_on_a_state_says_what_happens_there(page: Any, static_page: str, tmp_path: Path) -> None:
    """Clicking "Awaiting the return" says what it means, its deadline, what can happen next with who and
    the conditions, and what the clock does; Escape goes back to the summary."""
    page.goto(static_page)
    page.click("#state-awaiting_return")
    assert text_on_screen(page, "#details", "the buyer returns the goods at their own cost", "within 10 days",
                          "buyer ships the return", "the supplier confirmed the return address",
                          "no return shipped in time", "Payment released to the supplier") == []  # fmt: skip
    assert page.locator("#summary").is_hidden()
    screenshot(page, "state-clicked", tmp_path)
    page.keyboard.press("Escape")
    assert page.locator("#summary").is_visible()


def test_hovering_an_arrow_says_who_acts_and_when(page: Any, static_page: str) -> None:
    """Hovering the clock's arrow from "Supplier asked to respond" to "Awaiting the return" names the clock,
    the deadline, and the condition that picks it (the buyer asked a full refund)."""
    page.goto(static_page)
    page.hover(f"#arrow-{ARROWS['response_deadline:awaiting_return']}-awaiting_supplier_response text")
    assert text_on_screen(page, "#details", "supplier silent: full refund goes ahead", "Who: the clock",
                          "the buyer asked a full refund", "after 5 days") == []  # fmt: skip
    page.mouse.move(5, 895)
    assert page.locator("#summary").is_visible()


def test_code_names_only_on_demand(page: Any, static_page: str) -> None:
    """No code name is shown until asked for; then every box carries its state's."""
    page.goto(static_page)
    names = [s.name for s in CLAIM_LIFECYCLE.states]
    picture = page.locator("#picture svg").text_content()
    assert not [n for n in names if n in picture]
    page.check("#codes")
    picture = page.locator("#picture svg").text_content()
    assert [n for n in names if n not in picture] == []


def test_zoom_and_fit(page: Any, static_page: str) -> None:
    """Zooming in takes boxes off the screen (the check sees it); fit brings the whole lifecycle back."""
    page.goto(static_page)
    for _ in range(4):
        page.click("#zoom-in")
    assert boxes_outside(page)  # 2.4 times as large: the outer states leave the window
    page.click("#zoom-fit")
    assert boxes_outside(page) == []


def test_a_control_page_fails_every_check(page: Any, static_page: str) -> None:
    """The same page broken on purpose, one way per check: each check reports it."""
    page.goto(static_page)
    page.evaluate("document.querySelector('#picture svg').setAttribute('viewBox', '0 0 300 200')")
    assert boxes_outside(page) and clipped(page)
    page.goto(static_page)
    page.evaluate("document.querySelectorAll('g.state text').forEach(t => t.setAttribute('font-size', '7'))")
    assert small_titles(page)
    page.goto(static_page)
    page.evaluate("""(() => { const [a, b] = document.querySelectorAll('g.arrow');
        const t = b.querySelector('text'), u = a.querySelector('text');
        t.setAttribute('x', u.getAttribute('x')); t.setAttribute('y', u.getAttribute('y')); })()""")
    assert overlaps(page)
    page.goto(static_page)
    page.evaluate("document.querySelector('#summary').insertAdjacentHTML('afterbegin', '<p>x</p>'.repeat(80))")
    assert clipped(page) and _answers(page)
    page.goto(static_page)
    page.evaluate("document.querySelector('ul.deadlines').remove()")
    assert _answers(page)


def test_live_figures_are_drawn_on_the_picture(page: Any, console: str, tmp_path: Path) -> None:
    """Served over the seeded database: each state's badge shows its open claims, the stuck and overdue ones
    are flagged in red, each arrow says how often it was taken, and the first screen still passes."""
    page.goto(f"{console}/console/")
    page.wait_for_selector("g.live")
    badges: dict[str, list[str]] = {}
    for state, text in page.evaluate(
        "[...document.querySelectorAll('g.live')].map(b => [b.dataset.state, b.textContent])"
    ):
        badges.setdefault(state, []).append(text)
    for state, count in EXPECTED["open"].items():
        assert str(count) in badges[state], state
    assert "1 stuck" in badges["in_mediation"]
    assert "1 overdue" in badges["awaiting_supplier_response"]
    taken = page.locator(f"#arrow-{ARROWS['file_claim:awaiting_evidence']}-new text.taken").text_content()
    assert taken == f"\u00d7{EXPECTED['arrows']['file_claim']}"  # the multiplication sign
    assert _first_screen_problems(page) == []
    assert page.outside == []
    screenshot(page, "live", tmp_path)


def test_a_count_leads_to_the_claims_and_a_claim_to_its_page(page: Any, console: str, tmp_path: Path) -> None:
    """Clicking the stuck badge lists the stuck claim; clicking it opens its page, which says who must act."""
    page.goto(f"{console}/console/")
    page.click("g.live[data-state=in_mediation][data-href*=stuck] rect")
    page.wait_for_url("**/console/claims?state=in_mediation&filter=stuck")
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 1 and "c-med-old" in rows.first.inner_text()
    page.click("text=c-med-old")
    page.wait_for_url("**/console/claims/c-med-old")
    assert "Who must act next" in page.locator(".next").inner_text()
    assert "No deadline runs here" in page.locator(".next").inner_text()
    screenshot(page, "claim", tmp_path)
    page.click("nav >> text=Overview")
    page.wait_for_url("**/console/lifecycle.html")
    assert page.locator("#state-in_mediation").count() == 1


def _chain(states: int) -> Definition:
    """A lifecycle of `states` states in a row, each step the team's: too long to read whole on one screen."""
    creation = CLAIM_LIFECYCLE.creation
    names = [f"step_{n:02}" for n in range(states)]
    return Definition(
        "long",
        (*(State(name=n, meaning=f"stage {n}") for n in names[:-1]), State(name=names[-1], meaning="done", final=True)),
        (
            Transition(trigger=creation.trigger, sources=(), dest=names[0], actors=creation.actors, description="file",
                       fields=creation.fields, effect=creation.effect),
            *(Transition(trigger=f"go_{n}", sources=(a,), dest=b, actors="agent", description="on")
              for n, (a, b) in enumerate(itertools.pairwise(names))),
        ),
    )  # fmt: skip


def test_a_lifecycle_too_long_for_one_screen_opens_readable_and_fits_on_demand(page: Any, tmp_path: Path) -> None:
    """Forty states in a row cannot be read whole at 1440x900: the page opens at its top left with titles of
    11 px or more, the first state in view, and "fit" then shows the whole of it."""
    path = tmp_path / "long.html"
    path.write_text(Diagrams(_chain(40)).html(), encoding="utf-8")
    page.goto(path.as_uri())
    assert small_titles(page) == []
    assert "state-step_00" not in boxes_outside(page)
    assert len(boxes_outside(page)) > 20
    page.click("#zoom-fit")
    assert boxes_outside(page) == [] and small_titles(page)
