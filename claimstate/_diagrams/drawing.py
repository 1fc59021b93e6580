"""The diagram API: the graph is extracted once, then each format's renderer draws it.

`Diagrams().write_all(folder)` writes the lifecycle in every format under the names committed in `diagrams/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from claimstate._claim import Claim, TransitionRecord
from claimstate._definition import Definition, Policy
from claimstate._diagrams import diff
from claimstate._diagrams.console import overview_page
from claimstate._diagrams.dot import to_dot
from claimstate._diagrams.graph import Graph, extract
from claimstate._diagrams.graphviz import drawable, to_png, to_svg
from claimstate._diagrams.mermaid import to_mermaid
from claimstate._diagrams.page import to_html, to_markdown
from claimstate._diagrams.review import review_page
from claimstate._errors import InvalidInput
from claimstate._files import make_folder, write_file
from claimstate._lifecycle import CLAIM_LIFECYCLE


def to_page(graph: Graph) -> str:
    """The HTML page of a graph: the console's overview for the whole lifecycle, else the printable page (a
    phase view, a claim's path)."""
    return overview_page(graph) if graph.overview and graph.view is None else to_html(graph)


# format -> (renderer, file name in diagrams/, what the file is, for diagrams/README.md)
FORMATS: dict[str, tuple[Callable[[Graph], str | bytes], str, str]] = {
    "mermaid": (to_mermaid, "lifecycle.mmd", "Mermaid stateDiagram-v2 text (GitHub and GitLab draw it)"),
    "dot": (to_dot, "lifecycle.dot", "Graphviz DOT text"),
    "svg": (to_svg, "lifecycle.svg", "the picture, drawn by Graphviz (built in: no program needed)"),
    "png": (to_png, "lifecycle.png", "the same picture as an image, drawn from the SVG (built in too)"),
    "md": (to_markdown, "lifecycle.md", "a page: the Mermaid diagram, then every state and transition in plain words"),
    "html": (
        to_page,
        "lifecycle.html",
        "the console: the whole lifecycle on one screen, its words on hover and click, links to every page; then"
        " the same tables",
    ),
}
REGENERATE = "claimstate diagram --all diagrams"
VIEW_FORMATS = ("svg", "html")  # each detail view's files, beside the overview's
STORIES = "claimstate check --stories diagrams"  # writes stories.md and stories.html beside them


class Diagrams:
    """The diagrams of a definition (or of one claim's path on it, given its history): one method per format."""

    FORMATS: ClassVar[tuple[str, ...]] = tuple(FORMATS)
    """The formats `render` takes (and `claimstate diagram --format`), in the order `write_all` writes them."""
    REGENERATE: ClassVar[str] = REGENERATE
    """The command that writes every format into a folder, as the files written say."""

    @staticmethod
    def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[diff.Change]:
        """Each state and transition added, removed or changed between two exported definitions (`to_dict()`)."""
        return diff.changes(old, new)

    @staticmethod
    def diff_markdown(
        old: Mapping[str, Any], new: Mapping[str, Any], *, open_claims: Mapping[str, int] | None = None
    ) -> str:
        """The review of a change between two exported definitions, as Markdown (`claimstate diff --format md`);
        given `open_claims` (open claims per state under `old`, `ClaimService.open_claims`), each change's count."""
        return diff.to_markdown(old, new, open_claims=open_claims)

    # The change review page between two exports (`claimstate diff --format html`): see review.review_page.
    diff_html = staticmethod(review_page)

    def __init__(
        self,
        definition: Definition = CLAIM_LIFECYCLE,
        *,
        policy: Policy | None = None,
        claim: Claim | None = None,
        history: Sequence[TransitionRecord] = (),
        view: str | None = None,
    ) -> None:
        """`view` names one of the definition's detail views (``offers``, ``return``...) to draw instead."""
        chosen = None
        if view is not None:
            chosen = next((v for v in definition.views if v.name == view), None)
            if chosen is None:
                known = ", ".join(v.name for v in definition.views) or "none"
                raise InvalidInput(f"unknown view {view!r}; known: {known}", field="view")
        self.definition = definition
        self.graph = extract(definition, policy=policy, claim=claim, history=history, view=chosen)

    def mermaid(self) -> str:
        return to_mermaid(self.graph)

    def dot(self) -> str:
        return to_dot(self.graph)

    def svg(self) -> str:
        return to_svg(self.graph)

    def png(self) -> bytes:
        """The SVG as an image, drawn in-process (resvg, with the DejaVu Sans claimstate ships): no program needed."""
        return to_png(self.graph)

    def markdown(self) -> str:
        return to_markdown(self.graph)

    def html(self) -> str:
        return to_page(self.graph)

    def render(self, fmt: str) -> str | bytes:
        """The diagram in format `fmt`, one of FORMATS."""
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown diagram format {fmt!r}; known: {', '.join(FORMATS)}", field="format")
        return FORMATS[fmt][0](self.graph)

    def write_all(self, folder: str | Path) -> list[Path]:
        """Write every format under the names committed in diagrams/, and a README saying what each file is.

        A README.md there that is not the one this writes (a project's own, say, with ``--all .``) is
        InvalidInput, before anything is written.
        """
        drawable(len(self.graph.nodes), len(self.graph.edges), "definition")  # refused before anything is written
        folder = make_folder(Path(folder))
        readme = folder / "README.md"
        if readme.is_file():
            with readme.open("rb") as existing:
                ours = existing.read(len(_README_TITLE.encode())) == _README_TITLE.encode()
            if not ours:
                raise InvalidInput(
                    f"{readme} is not the README of a diagrams folder: the lifecycle's files go in a folder of their"
                    " own",
                    field="folder",
                )
        written = [write_file(folder / name, self.render(fmt)) for fmt, (_, name, _) in FORMATS.items()]
        for view in self.definition.views:
            detail = Diagrams(self.definition, view=view.name)
            for fmt in VIEW_FORMATS:
                written.append(write_file(folder / f"lifecycle-{view.name}.{fmt}", detail.render(fmt)))
        written.append(write_file(folder / "README.md", _readme(self.definition)))
        return written


_README_TITLE = "# Diagrams of the claim lifecycle\n"


def _readme(definition: Definition) -> str:
    rows = "\n".join(f"| `{name}` | {what} |" for _, name, what in FORMATS.values())
    rows += "".join(
        f"\n| `lifecycle-{v.name}.{fmt}` | the detail view {v.title.lower()!r}, every arrow of it ({fmt}) |"
        for v in definition.views
        for fmt in VIEW_FORMATS
    )
    rows += "".join(
        f"\n| `stories.{fmt}` | one story per outcome, from `{STORIES}` ({fmt}) |" for fmt in ("md", "html")
    )
    return (
        f"{_README_TITLE}\n"
        "Every file here is generated from the lifecycle definition the engine runs "
        "(`claimstate/_lifecycle.py`); none is drawn by hand, and a test fails when one is out of date.\n\n"
        f"| file | what it is |\n|---|---|\n{rows}\n\n"
        f"Regenerate them all with:\n\n```sh\n{REGENERATE}\n```\n\n"
        "A claim's own diagram (its path numbered, its state highlighted): "
        "`claimstate diagram --claim ID --format html -o claim.html`.\n"
    )
