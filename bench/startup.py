"""Benchmark: what everyday commands cost before they do anything, by an earlier commit and by this checkout.

    .venv/bin/python bench/startup.py --base REV [--runs 5] [--instructions]

Every `revsync` command starts Python, imports the command line and opens the store; for quick
commands (`--version`, `status`, `quarantine`) that is most of their time. This script builds one
small store (`bench/engine_bench.py`'s document of 1,000 lines, imported by this checkout), then
runs each command `--runs` times with each side, base and this checkout taking turns (the base
from the same worktree as `bench/ab.py`, with PYTHONPATH pointing there), and prints the medians
of wall and CPU time (the child's own rusage) and the change. With `--instructions` each run is
counted by valgrind's callgrind instead (`PYTHONHASHSEED=0`): the same count whatever else the
machine is doing. The floor is `python -c pass`, printed too.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab import OUT, run_measured, worktree  # noqa: E402
from import_memory import write_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the commands measured (arguments after `revsync`); `None` is the floor: Python alone
COMMANDS: dict[str, list[str] | None] = {
    "python -c pass": None,
    "revsync --version": ["--version"],
    "revsync status --format json": ["status", "--format", "json"],
    "revsync quarantine": ["quarantine"],
}


def run(code: Path, args: list[str] | None, folder: Path, instructions: bool) -> dict:
    """One command with the `connector` package of `code`, on the store in `folder`."""
    if args is None:
        command = [sys.executable, "-c", "pass"]
    else:
        command = [sys.executable, "-c", "from connector.cli import main; main()", *args]
    return run_measured(command, code, folder, instructions, what=f"{args} with {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit to compare with (a hash, a tag, HEAD~1)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each command by each side (5; 1 with "
                                                               "--instructions)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    args = parser.parse_args()
    runs = args.runs or (1 if args.instructions else 5)
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    sha, base = worktree(args.base)
    folder = OUT / "startup"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f'[store]\nurl = "sqlite:///{folder / "store.db"}"\n')
    doc = folder / "orders.json"
    write_document(1_000, doc)
    run(ROOT, ["import", str(doc)], folder, False)  # the store every command then opens, at its head
    sides = {"base": base, "this": ROOT}
    measure = "instructions" if args.instructions else "cpu"
    print(f"base {sha[:12]} ({args.base}) against this checkout; {runs} run(s) of each command by each side, "
          f"in turn; load average {os.getloadavg()[0]:.2f}", flush=True)
    for name, command in COMMANDS.items():
        results: dict[str, list[dict]] = {side: [] for side in sides}
        for _ in range(runs):
            for side, code in sides.items():
                results[side].append(run(code, command, folder, args.instructions))
        medians = {side: statistics.median(r[measure] for r in rs) for side, rs in results.items()}
        walls = {side: statistics.median(r["wall"] for r in rs) for side, rs in results.items()}
        change = (medians["this"] - medians["base"]) / medians["base"] * 100
        shown = (lambda v: f"{v:,.0f}") if args.instructions else (lambda v: f"{v:.2f} s")
        print(f"{name:<30} base {shown(medians['base']):>16}  this {shown(medians['this']):>16}  "
              f"{change:+6.1f} % {measure}   (median wall: base {walls['base']:.2f} s, this {walls['this']:.2f} s)",
              flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
