"""How much memory `claimstate list` takes as the list grows: peak resident memory of the real command,
as a ratio to the same command listing 1,000 claims in the same run.

Run on demand (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_list.py             # 200,000 claims, the figures in the README
    .venv/bin/python tests/benchmarks/bench_list.py --quick     # 20,000 claims

A flat ratio (near 1) means the command streams; a ratio that grows with the list means it loads it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_store import seed

# Runs the command in this process and reports its peak resident memory (KiB) on stderr's last line.
MEASURE = (
    "import resource, sys\n"
    "from claimstate.cli import cli\n"
    "try:\n"
    "    cli.main(sys.argv[1:], prog_name='claimstate')\n"
    "except SystemExit as done:\n"
    "    code = done.code\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def peak_kib(db: Path, *args: str) -> int:
    """The peak resident memory of one `claimstate --db DB ARGS...` run, its output thrown away."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, "--db", str(db), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    return int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 claims instead of 200,000")
    claims = 20_000 if parser.parse_args().quick else 200_000
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "claims.db"
        seed(db, claims)
        print(f"| `claimstate list` over {claims:,} claims | peak memory | ratio |")
        print("|---|---|---|")
        for json_flag in ([], ["--json"]):
            floor = peak_kib(db, *json_flag, "list", "--limit", "1000")
            whole = peak_kib(db, *json_flag, "list", "--limit", str(claims))
            name = " ".join(["list", *json_flag])
            print(f"| floor: `{name} --limit 1000` | {floor / 1024:.1f} MiB | 1.00 |")
            print(f"| `{name} --limit {claims}` | {whole / 1024:.1f} MiB | {whole / floor:.2f} |")


if __name__ == "__main__":
    main()
