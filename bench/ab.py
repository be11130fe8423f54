"""Benchmark: `revsync import` of the same file by an earlier commit and by this checkout, in alternation.

    .venv/bin/python bench/ab.py --base REV [--lines 100000] [--runs 3]
    .venv/bin/python bench/ab.py --base REV --instructions [--lines 2000] [--runs 1]

On a shared machine the same code's time varies by 10-15 % from one run to the next, more than most
single changes gain; runs an hour apart compare the machine as much as the code. This script
checks REV out into a worktree of its own (bench/out/ab/base-SHA, kept for the next run), writes
the engine benchmark's document of `--lines` order lines once (`engine_bench.parts`, the same
generator and seed as `bench/import_memory.py`), then imports it `--runs` times with each side,
base and this checkout taking turns, each run a fresh process on a fresh SQLite store. The base
runs with PYTHONPATH set to its worktree, so the same interpreter and installed libraries run
both sides; only the `connector` package differs (a base whose dependencies differ from this
checkout's is not comparable this way).

It prints every run's wall and CPU time (the child's own rusage) and peak RSS, then the median of
each side and the change in percent, with the load average before and after. With
`--instructions` each run is counted by valgrind's callgrind (instructions executed by the whole
importing process, start-up included; not by the child that works out the jobs' rows, which runs
outside valgrind, nor by the forked process validating half the accounts, counted on its own,
from 2,000 orders): the same count for the same code and input whatever else the machine is doing,
about 50 times slower, so keep `--lines` small (2,000 lines take about a minute; the jobs' child
starts from 4,000 orders, about 10,500 lines).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_memory import run_child, write_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "ab"


def worktree(rev: str) -> tuple[str, Path]:
    """The commit's full hash and a worktree of it (made once, then reused)."""
    found = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"--base {rev}: not a commit of this repository ({found.stderr.strip()})")
    sha = found.stdout.strip()
    path = OUT / f"base-{sha[:12]}"
    if not (path / "connector").is_dir():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return sha, path


#: what every run does before it reads the file: start Python and import the command's modules
START_UP = "import connector.cli, connector.importer, connector.jobs"


def run(code: Path, doc: Path | None, instructions: bool) -> dict:
    """One `revsync import` of `doc` with the `connector` package of `code`, on a fresh store (with no
    `doc`: the start-up alone)."""
    folder = OUT / "run"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f'[store]\nurl = "sqlite:///{folder / "store.db"}"\n')
    if doc is None:
        command = [sys.executable, "-c", START_UP]
    else:
        command = [sys.executable, "-c", "from connector.cli import main; main()", "import", str(doc)]
    result = run_measured(command, code, folder, instructions, what=f"the import with {code}")
    result["rss"] = result.pop("usage").ru_maxrss / 1024
    result["said"] = " ".join((folder / "stdout").read_text().split())
    return result


def run_measured(command: list[str], code: Path, folder: Path, instructions: bool, *, what: str) -> dict:
    """Run `command` in `folder` with the `connector` package of `code` and the store of
    folder/config.toml: its wall and CPU time and rusage, and with `instructions` the count of
    instructions callgrind saw. Stops the benchmark, with `what` and the child's errors, if it fails."""
    env = {**os.environ, "REVSYNC_CONFIG": str(folder / "config.toml"), "PYTHONPATH": str(code)}
    if instructions:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.devnull}", *command]
        env["PYTHONHASHSEED"] = "0"  # the same iteration order of sets and dicts of strings every run
    returncode, wall, usage = run_child(command, folder, env)
    said = (folder / "stderr").read_text(errors="replace")
    if returncode != 0:
        raise SystemExit(f"{what} failed ({returncode}):\n{said[-3000:]}")
    result = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "usage": usage}
    if instructions:
        # a process the import forks (the one validating half the accounts' orders) is counted on
        # its own: the importing process's count, the critical path, is the largest
        counted = [int(n) for n in re.findall(r"Collected : (\d+)", said)]
        if not counted:
            raise SystemExit(f"callgrind printed no count:\n{said[-3000:]}")
        result["instructions"] = max(counted)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit to compare with (a hash, a tag, HEAD~1)")
    parser.add_argument("--lines", type=int, default=None, help="order lines (100,000; 2,000 with --instructions)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each side (3; 1 with --instructions)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    args = parser.parse_args()
    lines = args.lines or (2_000 if args.instructions else 100_000)
    runs = args.runs or (1 if args.instructions else 3)
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    OUT.mkdir(parents=True, exist_ok=True)
    sha, base = worktree(args.base)
    doc = OUT / f"orders-{lines}.json"
    if not doc.exists():
        write_document(lines, doc)
    sides = {"base": base, "this": ROOT}
    measure = "instructions" if args.instructions else "cpu"
    print(f"base {sha[:12]} ({args.base}) against this checkout; {lines:,} lines; {runs} run(s) each, "
          f"in turn; load average {os.getloadavg()[0]:.2f}", flush=True)
    for code in sides.values():  # each side's modules compiled once, before anything is measured
        subprocess.run([sys.executable, "-c", START_UP], env={**os.environ, "PYTHONPATH": str(code)}, check=True)
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for n in range(runs):
        for side, code in sides.items():
            r = run(code, doc, args.instructions)
            results[side].append(r)
            counted = f"  {r['instructions']:>16,} instructions" if args.instructions else ""
            print(f"  run {n + 1} {side:<4}  wall {r['wall']:7.2f} s  CPU {r['cpu']:7.2f} s  "
                  f"peak RSS {r['rss']:6.0f} MiB{counted}  ({r['said'][:70]})", flush=True)
    said = {side: {r["said"] for r in rs} for side, rs in results.items()}
    if said["base"] != said["this"]:
        print(f"  the two sides said different things: {said}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    floor = {}
    if args.instructions:
        floor = {side: run(code, None, True)["instructions"] for side, code in sides.items()}
        print("start-up alone (" + START_UP + "): "
              + ", ".join(f"{side} {count:,}" for side, count in floor.items()) + " instructions")
    medians = {side: statistics.median(r[measure] for r in rs) for side, rs in results.items()}
    unit = "" if args.instructions else " s"
    for side, rs in results.items():
        values = [r[measure] for r in rs]
        print(f"{side:<4} median {measure} {medians[side]:,.2f}{unit}  (runs {min(values):,.2f} .. "
              f"{max(values):,.2f}); median wall {statistics.median(r['wall'] for r in rs):.2f} s")
    change = (medians["this"] - medians["base"]) / medians["base"] * 100
    print(f"this checkout against the base: {change:+.1f} % {measure}")
    if floor:
        work = {side: medians[side] - floor[side] for side in sides}
        print(f"beyond the start-up: base {work['base']:,.0f}, this {work['this']:,.0f} instructions: "
              f"{(work['this'] - work['base']) / work['base'] * 100:+.1f} %")


if __name__ == "__main__":
    main()
