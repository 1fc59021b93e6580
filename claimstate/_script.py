"""Scripts of claim commands, one JSON object a line, run against a ClaimService.

A line is ``{"cmd": "file" | "fire" | "tick" | "show", ...}``. A filing may be named with ``"as"`` and
later lines refer to it as ``"@name"``. Run atomically, the whole script is one transaction: any failing
line undoes every line. Otherwise each line is its own transaction and the run stops at the first
failure, unless told to keep going.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from claimstate._errors import ClaimStateError, InvalidInput
from claimstate._json import read_outside
from claimstate._service import ClaimService
from claimstate._time import from_iso

_KEYS = {
    "file": ({"data"}, {"as", "key", "id", "actor", "now"}),
    "fire": ({"claim", "trigger", "actor"}, {"data", "key", "expect_version", "now"}),
    "tick": (set(), {"now"}),
    "show": ({"claim"}, set()),
}


@attrs.frozen
class LineResult:
    """What one line did: its JSON-ready result, or the error that stopped it."""

    line: int
    ok: bool
    result: Any = None
    error: ClaimStateError | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"line": self.line, "ok": True, "result": self.result}
        assert self.error is not None
        return {"line": self.line, "ok": False, "error": self.error.to_dict()}


@attrs.frozen
class ScriptReport:
    """Every line's result, and whether what succeeded was kept (False when an atomic run failed)."""

    results: tuple[LineResult, ...]
    kept: bool

    @property
    def failures(self) -> tuple[LineResult, ...]:
        return tuple(r for r in self.results if not r.ok)


def json_object(text: str, field: str) -> dict[str, Any]:
    """The JSON object in `text` from outside (integers of at most 100 digits, as `--data` and script lines
    are read), or InvalidInput naming `field` and saying what is wrong."""
    value = read_outside(text, field)
    if not isinstance(value, dict):
        raise InvalidInput(f"expected a JSON object, not {type(value).__name__}", field=field)
    return value


class _Failed(Exception):
    """Stops an atomic run so that the batch rolls back."""


def run_script(
    service: ClaimService,
    lines: Iterable[str],
    *,
    atomic: bool = False,
    keep_going: bool = False,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScriptReport:
    """Run a script of JSON Lines commands (file, fire, tick, show) on `service`, as `claimstate script` does.

    Each non-blank line runs in order and is reported; a failure stops the run unless `keep_going`, and with
    `atomic` every line runs in one transaction that the first failure undoes. `progress` is called with 1 per
    line read.
    """
    if atomic and keep_going:
        raise InvalidInput("an atomic script stops at the first failure; it cannot keep going", field="keep_going")
    runner = _Runner(service, now)
    results: list[LineResult] = []

    def run_all() -> None:
        for number, text in enumerate(lines, start=1):
            if progress is not None:
                progress(1)
            if not text.strip():
                continue
            result = runner.run(number, text)
            results.append(result)
            if not result.ok and atomic:
                raise _Failed
            if not result.ok and not keep_going:
                return

    if not atomic:
        run_all()
        return ScriptReport(tuple(results), kept=True)
    try:
        with service.batch():
            run_all()
    except _Failed:
        return ScriptReport(tuple(results), kept=False)
    return ScriptReport(tuple(results), kept=True)


class _Runner:
    def __init__(self, service: ClaimService, now: datetime | None) -> None:
        self.service = service
        self.now = now
        self.names: dict[str, str] = {}

    def run(self, number: int, text: str) -> LineResult:
        try:
            return LineResult(number, True, self._dispatch(self._parse(text)))
        except ClaimStateError as error:
            return LineResult(number, False, error=error)

    @staticmethod
    def _parse(text: str) -> dict[str, Any]:
        line = json_object(text, "line")
        if line.get("cmd") not in _KEYS:
            raise InvalidInput(f"each line is an object with cmd one of {', '.join(_KEYS)}", field="cmd")
        required, optional = _KEYS[line["cmd"]]
        missing, unknown = required - set(line), set(line) - required - optional - {"cmd"}
        if missing or unknown:
            problem = f"needs {', '.join(sorted(missing))}" if missing else f"takes no {', '.join(sorted(unknown))}"
            raise InvalidInput(f"{line['cmd']} {problem}", field="line")
        return line

    def _claim(self, ref: object) -> str:
        if not isinstance(ref, str):
            raise InvalidInput(f"a claim id or @name, not {ref!r}", field="claim")
        if ref.startswith("@"):
            if ref[1:] not in self.names:
                raise InvalidInput(f"no earlier line filed a claim named {ref}", field="claim")
            return self.names[ref[1:]]
        return ref

    def _now(self, line: Mapping[str, Any]) -> datetime | None:
        return from_iso(line["now"], field="now") if "now" in line else self.now

    def _dispatch(self, line: dict[str, Any]) -> Any:
        cmd, now = line["cmd"], self._now(line)
        if cmd == "file":
            fired = self.service.file_claim(
                line["data"], actor=line.get("actor"), claim_id=line.get("id"), idempotency_key=line.get("key"), now=now
            )
            if "as" in line:
                self.names[str(line["as"])] = fired.claim.id
            return fired.claim.to_dict()
        if cmd == "fire":
            expected = line.get("expect_version")
            if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
                raise InvalidInput(f"a whole number, not {expected!r}", field="expect_version")
            fired = self.service.fire(
                self._claim(line["claim"]),
                line["trigger"],
                line["actor"],
                line.get("data"),
                idempotency_key=line.get("key"),
                expected_version=expected,
                now=now,
            )
            return fired.claim.to_dict()
        if cmd == "tick":
            return [record.to_dict() for record in self.service.tick(now)]
        return self.service.get(self._claim(line["claim"])).to_dict()
