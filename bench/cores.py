"""Benchmark: how busy each core is during `revsync import`, half a second at a time.

    .venv/bin/python bench/cores.py [--lines 100000] [--every 0.5]

Writes the engine benchmark's document (`engine_bench.parts`, the same generator and seed as
`bench/import_memory.py`), runs `revsync import` of it on a fresh SQLite store in
bench/out/import-N, and reads every `--every` seconds the CPU time of the command and of each
process it starts (/proc: the one validating half the accounts, the one working out the jobs'
rows). It prints one row per interval: each process's share of one core, and the machine's idle
core time (the cores times the interval, less what the import's processes used). The idle time
is what more overlap could still win; the rest only less work can (issue 11). Linux only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_memory import write_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _processes(root: int) -> dict[int, tuple[float, str]]:
    """`root` and its descendants: pid → (CPU seconds so far, command name)."""
    seen: dict[int, tuple[int, float, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name_end = stat.rfind(")")
        fields = stat[name_end + 2:].split()
        seen[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, stat[stat.find("(") + 1:name_end])
    family, grew = {root}, True
    while grew:
        grew = False
        for pid, (parent, _, _) in seen.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return {pid: (seen[pid][1], seen[pid][2]) for pid in family if pid in seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between readings")
    args = parser.parse_args()
    folder = ROOT / "bench" / "out" / f"import-{args.lines}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    doc = folder / "orders.json"
    orders, lines = write_document(args.lines, doc)
    (folder / "config.toml").write_text(f'[store]\nurl = "sqlite:///{folder / "store.db"}"\n')
    cores = len(os.sched_getaffinity(0))
    command = [str(Path(sys.executable).with_name("revsync")), "import", str(doc)]
    env = {**os.environ, "REVSYNC_CONFIG": str(folder / "config.toml")}
    started = time.perf_counter()
    readings: list[tuple[float, dict[int, float]]] = []
    names: dict[int, str] = {}
    used: dict[int, float] = {}
    with (folder / "stdout").open("wb") as stdout, (folder / "stderr").open("wb") as stderr:
        child = subprocess.Popen(command, cwd=folder, stdout=stdout, stderr=stderr, env=env)
        while child.poll() is None:
            time.sleep(args.every)
            row: dict[int, float] = {}
            for pid, (cpu, name) in _processes(child.pid).items():
                names.setdefault(pid, "import" if pid == child.pid else name)
                row[pid] = cpu - used.get(pid, 0.0)
                used[pid] = cpu
            readings.append((time.perf_counter() - started, row))
    if child.returncode != 0:
        raise SystemExit(f"import failed ({child.returncode}):\n{(folder / 'stderr').read_text()[-3000:]}")
    print(f"{lines:,} order lines in {orders:,} orders; {cores} cores; "
          f"each column: a process's CPU seconds over the interval before the time shown")
    pids = list(names)
    print(f"{'s':>6} " + " ".join(f"{names[pid][:14]:>14}" for pid in pids) + f" {'idle core s':>12}")
    idle_total, last = 0.0, 0.0
    for at, row in readings:
        idle = max(cores * (at - last) - sum(row.values()), 0.0)
        idle_total += idle
        last = at
        print(f"{at:6.1f} " + " ".join(f"{row.get(pid, 0.0):14.2f}" for pid in pids) + f" {idle:12.2f}")
    total_cpu = sum(used.values())
    print(f"wall {last:.1f} s (to the last reading), CPU {total_cpu:.1f} s in {len(pids)} processes, "
          f"idle core time {idle_total:.1f} s")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
