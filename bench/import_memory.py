"""Benchmark: peak memory and time of `revsync import FILE` as the file grows.

    .venv/bin/python bench/import_memory.py [--lines 10000 --lines 100000 --lines 300000 --lines 1000000]

For each size it writes the engine benchmark's document (`engine_bench.parts`: new lines with 12–36
month terms, then updates, renewals and cancellations of them) to a file in bench/out without
holding it, then runs `revsync import FILE` on a fresh SQLite store in a process of its own, the
sizes one after another, and prints the child's peak RSS (`os.wait4`'s rusage: that process
alone, in MiB), its wall time and CPU time, and both per line. `--whole` imports through the
whole-document path instead (`read` and `import_document`, what `revsync import` did before it
streamed files), for the "before" figures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import parts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: the whole-document path, run as a script in the child (`--whole`): what `revsync import` did before
WHOLE = """
import sys
from pathlib import Path
from connector.app import App
from connector.config import load_config
from connector.importer import import_document, load_file, read
app = App(load_config())
text, source = load_file(Path(sys.argv[1]))
result = import_document(app.store, read(text, source), source, app.calendar, app.settings, app.clock, app.runner)
print(len(result.activated), "order(s) activated,", sum(j.ok for j in result.jobs), "jobs done")
"""


def write_document(lines: int, path: Path) -> tuple[int, int]:
    """Write the benchmark's document of `lines` order lines as one JSON object; (orders, lines)."""
    pieces = {key: path.with_suffix(f".{key}.tmp") for key in ("accounts", "products", "orders")}
    files = {key: p.open("w") for key, p in pieces.items()}
    counts = {key: 0 for key in pieces}
    n_lines = 0
    try:
        for key, part in parts(lines):
            files[key].write(("," if counts[key] else "") + json.dumps(part) + "\n")
            counts[key] += 1
            if key == "orders":
                n_lines += len(part["lines"])
    finally:
        for f in files.values():
            f.close()
    with path.open("w") as out:
        for n, key in enumerate(("accounts", "products", "orders")):
            out.write(("{" if n == 0 else ",") + json.dumps(key) + ": [\n")
            with pieces[key].open() as f:
                shutil.copyfileobj(f, out)
            out.write("]")
            pieces[key].unlink()
        out.write("}\n")
    return counts["orders"], n_lines


def run_child(command: list[str], folder: Path, env: dict[str, str]) -> tuple[int, float, os.struct_rusage]:
    """Run `command` in `folder`, its output to folder/stdout and folder/stderr: its exit code, wall
    time, and its own rusage (`os.wait4`: that process alone)."""
    started = time.perf_counter()
    with (folder / "stdout").open("wb") as stdout, (folder / "stderr").open("wb") as stderr:
        child = subprocess.Popen(command, cwd=folder, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - started, usage


def measure(lines: int, out: Path, whole: bool) -> dict:
    folder = out / f"import-{lines}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    doc = folder / "orders.json"
    orders, n_lines = write_document(lines, doc)
    (folder / "config.toml").write_text(f'[store]\nurl = "sqlite:///{folder / "store.db"}"\n')
    if whole:
        command = [sys.executable, "-c", WHOLE, str(doc)]
    else:
        command = [str(Path(sys.executable).with_name("revsync")), "import", str(doc)]
    returncode, wall, usage = run_child(command, folder, {**os.environ, "REVSYNC_CONFIG": str(folder / "config.toml")})
    if returncode != 0:
        raise SystemExit(f"import of {lines:,} lines failed ({returncode}):\n"
                         f"{(folder / 'stderr').read_text()[-3000:]}")
    return {"lines": n_lines, "orders": orders, "bytes": doc.stat().st_size, "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
            "said": (folder / "stdout").read_text().strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, action="append", default=None)
    parser.add_argument("--whole", action="store_true", help="the whole-document path (before streaming)")
    args = parser.parse_args()
    sizes = sorted(args.lines or [10_000, 100_000, 300_000, 1_000_000])
    out = ROOT / "bench" / "out"
    print(f"{'lines':>10} {'orders':>8} {'file MiB':>8} {'peak RSS MiB':>12} {'wall s':>8} {'CPU s':>8} "
          f"{'KB/line':>8} {'ms/line CPU':>11}", flush=True)
    for lines in sizes:
        m = measure(lines, out, args.whole)
        print(f"{m['lines']:>10,} {m['orders']:>8,} {m['bytes'] / 2**20:>8.0f} {m['peak_mb']:>12,.0f} "
              f"{m['wall']:>8.1f} {m['cpu']:>8.1f} {m['peak_mb'] * 1024 / m['lines']:>8.2f} "
              f"{m['cpu'] * 1000 / m['lines']:>11.3f}  ({' '.join(m['said'].split())[:90]})", flush=True)
        shutil.rmtree(out / f"import-{lines}", ignore_errors=True)


if __name__ == "__main__":
    main()
