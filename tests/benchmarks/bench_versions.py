"""What a change costs a fire: ClaimService over bench_store's walk, in this checkout against an earlier commit.

`python tests/benchmarks/bench_versions.py REV` checks REV out beside this one (a git worktree, removed
after), then times the same walk in each, alternating, a fresh process each time, and prints the ratio
of each round (this one / REV) and their median: in one batch, and with a commit per transition.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]


def walk(mode: str, claims: int) -> None:
    """In the checkout this process runs from: print the median seconds per transition of three walks."""
    sys.path[:0] = [str(Path.cwd() / "tests" / "benchmarks"), str(Path.cwd() / "tests")]
    import bench_store  # noqa: PLC0415  (the checkout's own benchmark)

    times = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "claims.db"
            ids = bench_store.seed(path, claims, filed=True)
            seconds = bench_store.service_walk(path, ids, batched=mode == "batch")
            times.append(seconds / (claims * len(bench_store.PATH)))
    print(statistics.median(times))


def timed(checkout: Path, mode: str, claims: int) -> float:
    ran = subprocess.run(
        [sys.executable, str(HERE / "tests" / "benchmarks" / "bench_versions.py"), "--walk", mode,
         "--claims", str(claims)],
        cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(ran.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", help="the earlier commit to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per mode (default 3)")
    parser.add_argument("--claims", type=int, default=400, help="claims walked per timing (default 400)")
    parser.add_argument("--walk", choices=("batch", "commit"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.walk:
        walk(args.walk, args.claims)
        return
    if not args.rev:
        parser.error("give the earlier commit to compare with")
    with tempfile.TemporaryDirectory() as folder:
        earlier = Path(folder) / "earlier"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "-q", str(earlier), args.rev], check=True)
        try:
            for mode in ("batch", "commit"):
                ratios = [
                    timed(HERE, mode, args.claims) / timed(earlier, mode, args.claims) for _ in range(args.rounds)
                ]
                shown = ", ".join(f"{r:.3f}" for r in ratios)
                print(f"{mode}: this checkout / {args.rev}: median {statistics.median(ratios):.3f} (rounds {shown})")
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(earlier)], check=True)


if __name__ == "__main__":
    main()
