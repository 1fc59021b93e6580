"""Text from claims and definitions, shown safely: control characters made visible.

A claim's words come from buyers and suppliers. Printed raw, a control character such as ESC starts a
terminal escape sequence (retitling the window, clearing the screen, rewriting what was shown) and a
line end inside a value forges a line; in a file, the same bytes fire when someone `cat`s it. `visible`
writes each one as the escape a programmer reads (``\\x1b``, ``\\n``, ``\\u202e``), so the text shows
what was stored and does nothing. Each output's own syntax (HTML, Markdown, DOT, Mermaid) is escaped by
its renderer, on top of this.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL, and the bidirectional overrides and isolates that reorder what follows them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def visible(text: str, keep: str = "") -> str:
    """`text` with every control character written as its escape, but those in `keep` (say, line ends in
    text that is several lines)."""
    if keep:
        return keep.join(visible(part) for part in text.split(keep))
    return _CONTROL.sub(_escape, text)
