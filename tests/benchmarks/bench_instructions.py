"""The work a fire does, counted in CPU instructions, which do not depend on how busy the machine is.

Run on demand (not part of the test suite; needs valgrind):

    .venv/bin/python tests/benchmarks/bench_instructions.py                 # floor, contender, service
    .venv/bin/python tests/benchmarks/bench_instructions.py --against REV   # and the service at commit REV
    .venv/bin/python tests/benchmarks/bench_instructions.py --ablate        # and each of issue 27's changes undone

Each figure is `valgrind --tool=callgrind` over bench_store's walk of 3N claims less that of N claims,
divided by the 2N x 5 transitions between them: what starting Python, importing and opening cost is the
same in both and drops out. The files are seeded beforehand, outside valgrind. `--ablate` runs the
service with one change undone at a time (see ABLATIONS), so each change's share is what undoing it adds;
`--behaviours` with one thing a fire must do left out (see BEHAVIOURS), so each one's share of what is
left is what leaving it out saves (measured only: nothing here ships).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[2]


def _keep_nothing() -> None:
    from claimstate._store.claims import ClaimRows  # noqa: PLC0415

    ClaimRows._keep = lambda *_args, **_kwargs: None  # type: ignore[method-assign]


def _full_details() -> None:
    from claimstate._store import rows  # noqa: PLC0415

    rows._IN_COLUMNS = frozenset()  # type: ignore[misc]


def _read_each_time() -> None:
    from claimstate._store import claims  # noqa: PLC0415

    def wrote(self: claims.ClaimRows, claim: Any, row: Any, _head: str, _closed: bool) -> None:
        self._keep(claim.id, claims._read_back(row), claim)

    claims.ClaimRows._wrote = wrote  # type: ignore[method-assign]


def _events_one_by_one() -> None:
    from claimstate._store.base import Store  # noqa: PLC0415
    from claimstate._store.sqlite import SQLiteStore  # noqa: PLC0415

    def send_many(self: Store, sql: str, rows: Any) -> None:
        for params in rows:
            self.send(sql, params)

    SQLiteStore.send_many = send_many  # type: ignore[method-assign]


def _always_traced() -> None:
    from claimstate import _telemetry  # noqa: PLC0415

    _telemetry._Otel.listening = lambda self: True  # type: ignore[method-assign]


# What a fire would cost without a behaviour it must keep (measured, not shipped): the share of each.
def _no_machine() -> None:
    from transitions import Event  # noqa: PLC0415

    def decide(self: Event, model: object, *_args: object, **_kwargs: object) -> bool:
        for transition in self.transitions[model.state]:  # type: ignore[attr-defined]
            for condition in transition.conditions:
                if condition.func(_Data(model)):
                    model.state = transition.dest  # type: ignore[attr-defined]
                    return True
        return False

    Event.trigger = decide  # type: ignore[method-assign]


class _Data:
    """What the engine's condition reads of transitions' EventData: the model."""

    def __init__(self, model: object) -> None:
        self.model = model


def _no_chain() -> None:
    from claimstate._chain import Chain  # noqa: PLC0415

    Chain.link = lambda self, previous, row: "0" * 64  # type: ignore[method-assign]


def _no_feed() -> None:
    from claimstate._store.events import EventRows  # noqa: PLC0415

    EventRows.append = lambda self, history_row, claim: None  # type: ignore[method-assign]


def _no_telemetry() -> None:
    from claimstate import _telemetry  # noqa: PLC0415

    _telemetry._otel, _telemetry._loaded = None, True


ABLATIONS: dict[str, tuple[str, Callable[[], None]]] = {  # issue 27's changes, each undone
    "kept": ("the claim kept decoded, by its row", _keep_nothing),
    "slim": ("details without the facts that are columns", _full_details),
    "written": ("the batch's own writes kept (read again)", _read_each_time),
    "events": ("the events in one statement (one each)", _events_one_by_one),
    "quiet": ("no span while no provider listens", _always_traced),
}
BEHAVIOURS: dict[str, tuple[str, Callable[[], None]]] = {  # what a fire must do, each left out
    "machine": ("transitions' trigger (the engine's checks kept)", _no_machine),
    "chain": ("the history's hash chain", _no_chain),
    "feed": ("the event row", _no_feed),
    "telemetry": ("OpenTelemetry's API installed", _no_telemetry),
}


RUNS = {  # name: (walk in bench_store, batched, keyed)
    "floor, batch": ("raw_walk", True, False),
    "contender, batch": ("contender_walk", True, False),
    "service, batch": ("service_walk", True, False),
    "floor, commit each": ("raw_walk", False, False),
    "contender, commit each": ("contender_walk", False, False),
    "service, commit each": ("service_walk", False, False),
    "service, commit each, keyed": ("service_walk", False, True),
}


def child(walk: str, batched: bool, keyed: bool, path: str, ablate: str | None) -> None:
    """In valgrind: walk the seeded file (with `ablate` undone first)."""
    sys.path[:0] = [str(Path.cwd() / "tests" / "benchmarks")]
    import bench_store  # noqa: PLC0415  (the checkout's own)

    if ablate:
        {**ABLATIONS, **BEHAVIOURS}[ablate][1]()
    ids = [f"c{i:08d}" for i in range(int(os.environ["BENCH_CLAIMS"]))]
    getattr(bench_store, walk)(Path(path), ids, batched=batched, **({"keyed": True} if keyed else {}))


def _seeded(checkout: Path, folder: Path, claims: int) -> Path:
    """A file of `claims` filed claims, seeded by `checkout`'s benchmark (its own row shape)."""
    path = folder / f"seed-{claims}.db"
    code = "import sys; sys.path.insert(0, 'tests/benchmarks'); import bench_store; from pathlib import Path; "
    code += f"bench_store.seed(Path({str(path)!r}), {claims}, filed=True)"
    subprocess.run([sys.executable, "-c", code], cwd=checkout, env=_env(checkout), check=True)
    return path


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def _instructions(checkout: Path, folder: Path, seeded: Path, claims: int, run: tuple[str, bool, bool],
                  ablate: str | None) -> int:  # fmt: skip
    """Instructions of one walk of `claims` claims on a copy of `seeded`."""
    path = folder / "walk.db"
    shutil.copy(seeded, path)
    out = folder / "callgrind.out"
    walk, batched, keyed = run
    args = [walk, str(int(batched)), str(int(keyed)), str(path), ablate or ""]
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
         "--child", *args],
        cwd=checkout, env={**_env(checkout), "BENCH_CLAIMS": str(claims)}, check=True, capture_output=True,
    )  # fmt: skip
    total = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    assert total is not None, "callgrind wrote no total"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return int(total.group(1))


def per_transition(checkout: Path, folder: Path, seeds: dict[int, Path], run: tuple[str, bool, bool],
                   ablate: str | None = None) -> float:  # fmt: skip
    """Instructions per transition: the walk of the larger seed less that of the smaller."""
    small, large = sorted(seeds)
    counts = [_instructions(checkout, folder, seeds[n], n, run, ablate) for n in (small, large)]
    return (counts[1] - counts[0]) / ((large - small) * 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100, help="N: walks of N and 3N claims (default 100)")
    parser.add_argument("--against", metavar="REV", help="also count the service at an earlier commit")
    parser.add_argument("--ablate", action="store_true", help="also count the service with each change undone")
    parser.add_argument("--behaviours", action="store_true", help="also count it with each behaviour left out")
    parser.add_argument(
        "--only",
        choices=RUNS,
        action="append",
        metavar="RUN",
        help=f"count only this run (repeatable): {'; '.join(RUNS)}",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        walk, batched, keyed, path, ablate = args.child
        child(walk, batched == "1", keyed == "1", path, ablate or None)
        return
    checkouts = {"": HERE}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.against:
            earlier = folder / "earlier"
            subprocess.run(["git", "-C", str(HERE), "worktree", "add", "-q", str(earlier), args.against], check=True)
            checkouts[f" at {args.against}"] = earlier
        try:
            print(f"instructions per transition (callgrind: walks of {3 * args.claims} less {args.claims} claims)")
            for number, (label, checkout) in enumerate(checkouts.items()):
                (folder / str(number)).mkdir()
                seeds = {n: _seeded(checkout, folder / str(number), n) for n in (args.claims, 3 * args.claims)}
                for name, run in RUNS.items():
                    if (label and not name.startswith("service")) or (args.only and name not in args.only):
                        continue
                    count = per_transition(checkout, folder, seeds, run)
                    print(f"  {name + label:<48} {count / 1000:>8.1f}k", flush=True)
                for wanted, changes in ((args.ablate, ABLATIONS), (args.behaviours, BEHAVIOURS)):
                    for ablate, (what, _undo) in changes.items() if wanted and not label else ():
                        for name in args.only or ("service, batch", "service, commit each"):
                            count = per_transition(checkout, folder, seeds, RUNS[name], ablate)
                            print(f"  {name}, without {what:<50} {count / 1000:>8.1f}k", flush=True)
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(earlier)], check=True)


if __name__ == "__main__":
    main()
