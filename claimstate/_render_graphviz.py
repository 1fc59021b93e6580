"""SVG and PNG, drawn by Graphviz's `dot` from the DOT text; the only renderers that need a program."""

from __future__ import annotations

import shutil
import subprocess

from claimstate._errors import DiagramError
from claimstate._graph import Graph
from claimstate._render_dot import to_dot

INSTALL_HINT = "install Graphviz: apt-get install graphviz (Debian, Ubuntu), brew install graphviz (macOS)"


def run_dot(dot_text: str, fmt: str) -> bytes:
    """`dot -T<fmt>` on the text; a missing program or any warning is a DiagramError saying what to do."""
    program = shutil.which("dot")
    if program is None:
        raise DiagramError(f"{fmt} needs Graphviz's dot, which is not installed: {INSTALL_HINT}", fmt=fmt)
    done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or done.stderr.strip():
        raise DiagramError(f"dot could not draw the {fmt}: {done.stderr.decode(errors='replace').strip()}", fmt=fmt)
    return done.stdout


def to_svg(graph: Graph) -> str:
    return run_dot(to_dot(graph), "svg").decode()


def to_png(graph: Graph) -> bytes:
    return run_dot(to_dot(graph), "png")
