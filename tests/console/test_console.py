"""The served console without a browser: the live figures are exactly the seeded claims' on both stores, the
lists and a claim's page say the right things, only GETs are served and they write nothing, and beyond
loopback a viewer token is needed.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import orjson
import pytest
from changed_lifecycle import INSPECTION
from console_helpers import Served
from helpers import filing
from seeding import EXPECTED, NOW, PLAN, seed
from starlette.testclient import TestClient

from claimstate import CLAIM_LIFECYCLE, ClaimService, InvalidInput
from claimstate.http import create_app, viewer_tokens

ARROWS = {str(n): t for n, t in enumerate(CLAIM_LIFECYCLE.transitions)}


@pytest.fixture(scope="module")
def client(seeded: ClaimService) -> Any:
    with TestClient(create_app(seeded, actor_from=None), base_url="http://127.0.0.1") as opened:
        yield opened


def test_the_live_figures_are_the_seeded_claims(client: Any) -> None:
    """Per state the open claims, stuck and overdue ones, closed ones, and over 30 days how often claims left
    it with the median and 90th percentile of their stay; per arrow how often it was taken: the numbers the
    seeding plan says, on each store."""
    answer = client.get("/console/live.json?window=30")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    live = answer.json()
    states = live["states"]
    assert {s: f["open"] for s, f in states.items() if f.get("open")} == EXPECTED["open"]
    assert {s: f["claims"] for s, f in states.items() if f.get("claims") and "open" not in f} == EXPECTED["closed"]
    assert {s: f["stuck"] for s, f in states.items() if f.get("stuck")} == EXPECTED["stuck"]
    assert {s: f["overdue"] for s, f in states.items() if f.get("overdue")} == EXPECTED["overdue"]
    for state, left in EXPECTED["left"].items():
        if left is None:
            assert "left" not in states[state]
        else:
            count, median, p90 = left
            assert (states[state]["left"], states[state]["time_median"], states[state]["time_p90"]) == (
                count, median.total_seconds(), p90.total_seconds()), state  # fmt: skip
    taken: dict[str, int] = {}
    for number, count in live["arrows"].items():
        if "-" not in number:  # per transition; "N-FROM" counts the arrow from one state
            taken[ARROWS[number].trigger] = taken.get(ARROWS[number].trigger, 0) + count
    submitted = next(str(n) for n, t in enumerate(CLAIM_LIFECYCLE.transitions) if t.trigger == "submit_evidence")
    assert live["arrows"][f"{submitted}-awaiting_evidence"] == EXPECTED["arrows"]["submit_evidence"]
    assert taken == EXPECTED["arrows"]
    assert states["in_mediation"]["oldest_age"] == timedelta(days=3).total_seconds()
    assert live["now"] == "2026-12-01 12:00 UTC" and live["window"] == "30 days"


def test_a_shorter_window_counts_less(client: Any) -> None:
    """Over the last day only the steps of the last day count."""
    live = client.get("/console/live.json?window=1").json()
    assert live["window"] == "day"
    filed = sum(n for k, n in live["arrows"].items() if "-" not in k and ARROWS[k].trigger == "file_claim")
    recent = sum(1 for _, steps in PLAN if steps[0][3] < timedelta(days=1))
    assert filed == recent


@pytest.mark.parametrize("window", ["0", "367", "x", "-1", "1.5"])
def test_a_bad_window_is_refused_saying_why(client: Any, window: str) -> None:
    answer = client.get(f"/console/live.json?window={window}")
    assert answer.status_code == 400
    assert answer.json()["field"] == "window" and "from 1 to 366" in answer.json()["detail"]


def test_the_lists_behind_the_counts(client: Any) -> None:
    """Each list holds exactly the claims its count stands for."""

    def ids(query: str) -> set[str]:
        page = client.get(f"/console/claims?{query}")
        assert page.status_code == 200
        return {cid for cid, _ in PLAN if f">{cid}</a>" in page.text}

    assert ids("state=awaiting_evidence&filter=open") == {"c-ev-1", "c-ev-2", "c-ev-3"}
    assert ids("state=in_mediation&filter=stuck") == {"c-med-old"}
    assert ids("state=awaiting_supplier_response&filter=overdue") == {"c-late"}
    assert ids("filter=overdue") == {"c-late"}
    assert ids("state=refunded_partial&filter=all") == {"c-done"}


def test_a_claims_page_for_support(client: Any) -> None:
    """The late claim's page says first who must act and by when, and what the clock does if nobody does;
    then what the buyer asked and why, the evidence, and a timeline with how long each step took."""
    page = client.get("/console/claims/c-late").text
    first = page.index("Who must act next")
    assert first < page.index("What the buyer asked for") < page.index("Timeline")
    assert "The party asked must respond by 30 Nov 2026, 12:00 UTC" in page
    assert "It passed 1 day ago and the clock has not acted yet" in page
    assert "the clock acts (supplier silent: full refund goes ahead): the claim moves to: “Awaiting the return”" in page
    assert "The buyer (buyer5)</b>, steps open now: withdraws." in page
    assert "A full refund: 25.00 USD (the order amount). Why: “arrived broken”" in page
    assert "the lid arrived cracked" in page
    assert "The dispute team (kim)" in page and "6 days so far" in page
    agreed = client.get("/console/claims/c-agreed").text
    assert "The supplier offered a partial refund of 10.00 USD" in agreed and "(the agreement)" in agreed
    assert "No deadline runs here" in agreed
    assert "The dispute team</b>, steps open now: approves: partial refund; rejects the cancellation." in agreed
    waiting = client.get("/console/claims/c-ev-1").text
    assert "The buyer must present evidence (FAQ: seven days) by 8 Dec 2026, 11:00 UTC</b> (in 7 days)" in waiting
    assert (
        "If nobody does, the clock acts (no evidence in time): the claim ends: “Payment released to the supplier”"
        in waiting
    )


def test_a_missing_claim_or_filter_is_a_page_saying_what(client: Any) -> None:
    missing = client.get("/console/claims/c-nope")
    assert missing.status_code == 404 and "c-nope" in missing.text and "<nav>" in missing.text
    bad = client.get("/console/claims?filter=bogus")
    assert bad.status_code == 400 and "unknown filter" in bad.text


def test_the_console_only_reads(client: Any, seeded: ClaimService) -> None:
    """Every page of the console answers GET; nothing else is served there, and reading every page writes
    nothing (each claim's version and the history stay as they were)."""
    before = [(c.id, c.version) for c in seeded.list_claims(limit=500)]
    pages = ["/console/", "/console/lifecycle.html", "/console/live.json", "/console/lifecycle-offers.html",
             "/console/claims", "/console/claims/c-late", "/console/changes.html"]  # fmt: skip
    for path in pages:
        assert client.get(path).status_code == 200, path
        assert client.post(path).status_code == 405, path
    assert [(c.id, c.version) for c in seeded.list_claims(limit=500)] == before
    assert sum(len(seeded.history(c)) for c, _ in before) == sum(len(steps) for _, steps in PLAN)


def test_the_console_alone_serves_no_api(client: Any) -> None:
    """Served without `actor_from`, the API's routes are not there."""
    assert client.get("/claims").status_code == 404
    assert client.get("/healthz").status_code == 200
    landed = client.get("/", follow_redirects=False)
    assert landed.status_code == 308 and landed.headers["location"].endswith("/console/")


def test_beyond_loopback_a_viewer_token_is_needed(seeded: ClaimService) -> None:
    """With viewer tokens, no token is 401 everywhere under /console/; the token once in the address is kept
    as an HttpOnly cookie and taken out of the address; a bearer header works for scripts."""
    token = "v" * 24
    app = create_app(seeded, actor_from=None, viewer_from=viewer_tokens({token}))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/console/").status_code == 401
        assert client.get("/console/live.json").status_code == 401
        assert client.get("/console/?token=wrong-token-of-a-stranger", follow_redirects=False).status_code == 303
        assert client.get("/console/").status_code == 401  # a wrong token kept in the cookie still lets no one in
        client.cookies.clear()
        kept = client.get(f"/console/claims?state=in_mediation&token={token}", follow_redirects=False)
        assert kept.status_code == 303 and token not in kept.headers["location"]
        assert "state=in_mediation" in kept.headers["location"]
        assert (
            "httponly" in kept.headers["set-cookie"].lower() and "samesite=strict" in kept.headers["set-cookie"].lower()
        )
        assert client.get("/console/").status_code == 200
        client.cookies.clear()
        assert client.get("/console/live.json", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_create_app_refuses_a_bad_console_setting(seeded: ClaimService) -> None:
    with pytest.raises(InvalidInput) as refused:
        create_app(seeded, actor_from=None, stuck_after=timedelta(0))
    assert refused.value.field == "stuck_after"
    with pytest.raises(InvalidInput) as refused:
        create_app(seeded, actor_from=None, viewer_from="everyone")  # type: ignore[arg-type]
    assert refused.value.field == "viewer_from"


def test_a_real_server_serves_the_page_with_its_script(seeded: ClaimService) -> None:
    """Over a real socket the overview carries its model and script inline, with a policy that lets the page
    fetch nothing but its own address."""
    import urllib.request  # noqa: PLC0415

    with Served(create_app(seeded, actor_from=None)) as served, urllib.request.urlopen(served.url + "/console/") as got:
        page = got.read().decode()
        policy = got.headers["Content-Security-Policy"]
    assert '<script type="application/json" id="model">' in page and '"live":"live.json"' in page
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    model = orjson.loads(page.split('id="model">')[1].split("</script>")[0])
    assert set(model["states"]) == {s.name for s in CLAIM_LIFECYCLE.states}


def test_seeding_is_what_the_plan_says(tmp_path: Any) -> None:
    """The seeded file holds exactly the plan's claims and steps (the figures above rest on it)."""
    with ClaimService(str(tmp_path / "c.db"), clock=lambda: NOW) as service:
        seed(service)
    rows = sqlite3.connect(tmp_path / "c.db").execute("SELECT claim_id, count(*) FROM transitions GROUP BY claim_id")
    assert dict(rows.fetchall()) == {cid: len(steps) for cid, steps in PLAN}


def test_the_console_on_loopback_answers_only_to_loopback_names(seeded: ClaimService) -> None:
    """Without viewer tokens the console answers requests addressed to 127.0.0.1, localhost or [::1] alone:
    a page elsewhere that rebinds its own name to 127.0.0.1 gets 403; with viewer tokens any name is fine, and
    the token's redirect stays on the server (a relative address)."""
    with TestClient(create_app(seeded, actor_from=None), base_url="http://127.0.0.1") as client:
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000", "LOCALHOST:80"):
            assert client.get("/console/live.json", headers={"Host": host}).status_code == 200, host
        for host in ("rebind.attacker.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
            answer = client.get("/console/claims/c-late", headers={"Host": host})
            assert answer.status_code == 403 and "arrived broken" not in answer.text, host
    token = "t" * 20
    with TestClient(create_app(seeded, actor_from=None, viewer_from=viewer_tokens([token])),
                    base_url="http://claims.example") as client:  # fmt: skip
        moved = client.get(f"/console/claims?filter=stuck&token={token}", headers={"Host": "evil.example"},
                           follow_redirects=False)  # fmt: skip
        assert moved.status_code == 303 and moved.headers["location"] == "/console/claims?filter=stuck"
        assert client.get("/console/live.json").status_code == 200


def test_lists_hold_exactly_their_claims_page_after_page(tmp_path: Any) -> None:
    """Open claims are listed however many closed ones were filed before them; a full page links to the next,
    which goes on where it stopped; stuck claims are open ones in states without a deadline alone."""
    with ClaimService(str(tmp_path / "c.db"), clock=lambda: NOW) as service:
        for number in range(130):  # closed, their ids first
            service.file_claim(filing(order_id=f"w-{number}"), claim_id=f"a-{number:03}", now=NOW - timedelta(days=3))
            service.fire(f"a-{number:03}", "withdraw", "buyer:alice", now=NOW - timedelta(days=3))
        seed(service)
        with TestClient(create_app(service, actor_from=None), base_url="http://127.0.0.1") as client:
            first = client.get("/console/claims").text
            assert {cid for cid, _ in PLAN if f">{cid}</a>" in first} == {
                "c-ev-1", "c-ev-2", "c-ev-3", "c-med-old", "c-med-new", "c-late", "c-agreed"}  # fmt: skip
            assert "The next" not in first
            everything = client.get("/console/claims?filter=all").text
            assert everything.count("<tr>") == 1 + 100 and "after=a-099" in everything
            rest = client.get("/console/claims?filter=all&after=a-099").text
            assert rest.count("<tr>") == 1 + 30 + len(PLAN) and "The next" not in rest
            stuck = client.get("/console/claims?filter=stuck").text
            assert {cid for cid, _ in PLAN if f">{cid}</a>" in stuck} == {"c-med-old"}
            assert ">a-000</a>" not in stuck


def test_served_with_a_changed_lifecycle_the_review_and_the_waiting_claims(tmp_path: Any) -> None:
    """Claims decided under the built-in lifecycle, served under a changed one: the change review lists the
    changes with the open claims they touch and check's verdict on the served lifecycle; a waiting claim's
    page says no one can act until it is migrated, rather than failing."""
    path = str(tmp_path / "c.db")
    with ClaimService(path, clock=lambda: NOW) as old:
        seed(old)
    with (
        ClaimService(path, definition=INSPECTION, read_only=True, migrating=True, clock=lambda: NOW) as service,
        TestClient(create_app(service, actor_from=None), base_url="http://127.0.0.1") as client,
    ):
        review = client.get("/console/changes.html")
        assert review.status_code == 200
        assert "Check: every rule holds in the new lifecycle" in review.text
        assert "Open claims decided under the old lifecycle: 7;" in review.text
        page = client.get("/console/claims/c-agreed")
        assert page.status_code == 200 and "No one yet:" in page.text and "migrate it first" in page.text
