"""What a person sees on the console's first screen, measured in the browser: each check returns the
problems it finds (empty: none), so a control page can show that each one can fail.
"""

from __future__ import annotations

from typing import Any

MIN_TITLE_PX = 11  # a state's title, in CSS pixels as drawn

_RECTS = """
(() => {
  const svg = document.querySelector('#picture svg');
  const rect = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const owner = (t) => {
    const g = t.closest('g.state, g.arrow, g.cluster, g.live, g.node');
    return g ? (g.id || g.className.baseVal) : 'svg';
  };
  return {
    view: [0, 0, window.innerWidth, window.innerHeight],
    picture: rect(document.getElementById('picture')),
    states: [...svg.querySelectorAll('g.state')].map((g) => [g.id, rect(g.querySelector('path, polygon'))]),
    titles: [...svg.querySelectorAll('g.state text')].map((t) => [t.textContent,
      parseFloat(t.getAttribute('font-size')) * svg.getScreenCTM().a]),
    texts: [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim())
      .map((t) => [owner(t), t.textContent, rect(t)]),
    aside: [document.querySelector('aside').scrollHeight, document.querySelector('aside').clientHeight],
    width: [document.documentElement.scrollWidth, window.innerWidth],
  };
})()
"""


def measured(page: Any) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(_RECTS)
    return found


def _inside(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack and inner[2] <= outer[2] + slack
            and inner[3] <= outer[3] + slack)  # fmt: skip


def _meet(a: list[float], b: list[float], slack: float = 1.0) -> bool:
    """Two rectangles overlap by more than `slack` pixels both ways (glyph boxes of neighbouring lines touch)."""
    return min(a[2], b[2]) - max(a[0], b[0]) > slack and min(a[3], b[3]) - max(a[1], b[1]) > slack


def boxes_outside(page: Any) -> list[str]:
    """States whose box is not wholly inside the window."""
    found = measured(page)
    return [name for name, box in found["states"] if not _inside(box, found["view"])]


def small_titles(page: Any) -> list[str]:
    """State titles drawn smaller than MIN_TITLE_PX."""
    return [f"{text} ({size:.1f} px)" for text, size in measured(page)["titles"] if size < MIN_TITLE_PX]


def overlaps(page: Any) -> list[str]:
    """Texts drawn over another element's text, and texts that are not a state's drawn over a state's box."""
    found = measured(page)
    texts, problems = found["texts"], []
    for i, (owner, words, box) in enumerate(texts):
        for other, other_words, other_box in texts[i + 1 :]:
            if owner != other and _meet(box, other_box):
                problems.append(f"{words!r} ({owner}) over {other_words!r} ({other})")
        for state, shape in found["states"]:
            if owner != state and _meet(box, shape) and not (owner == "live" and words):
                problems.append(f"{words!r} ({owner}) over the box of {state}")
    return problems


def clipped(page: Any) -> list[str]:
    """Text cut off by the picture's edge, a panel that needs scrolling, a page wider than the window."""
    found = measured(page)
    problems = [f"{words!r} cut by the picture's edge" for _, words, box in found["texts"]
                if not _inside(box, found["picture"])]  # fmt: skip
    height, shown = found["aside"]
    if height > shown + 1:
        problems.append(f"the panel needs scrolling ({height} px in {shown})")
    wide, window = found["width"]
    if wide > window:
        problems.append(f"the page is wider than the window ({wide} px in {window})")
    return problems


def text_on_screen(page: Any, selector: str, *words: str) -> list[str]:
    """Each of `words` that is not inside the element `selector` as shown within the window."""
    element = page.locator(selector).first
    if element.count() == 0 or not element.is_visible():
        return [f"{selector} is not shown"]
    box = element.bounding_box()
    view = measured(page)["view"]
    problems = []
    if not _inside([box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]], view):
        problems.append(f"{selector} is not inside the first screen")
    text = element.inner_text()
    problems += [f"{selector} does not say {w!r}" for w in words if w not in text]
    return problems
