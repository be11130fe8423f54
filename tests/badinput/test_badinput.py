"""The bad-input corpus (issue 8), run as the user runs `revsync`: cases are data, in cases.toml.

Each case runs the real command in a working directory of its own whose store already holds SPEC
section 7's worked example; it must end with its exit code, no traceback, a message saying what,
where and what to do, and the store unchanged, compared table by table and row by row.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_support import REPO, Result, _env, copy_store, revsync, snapshot, store_url, workdir, worked_example, write_doc  # noqa: E402

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
CASES: list[dict[str, Any]] = tomllib.loads((HERE / "cases.toml").read_text("utf-8"))["case"]
#: how many commands run at once (the machine is shared)
PARALLEL = 4


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _prepare(case: dict[str, Any], root: Path, base: Path, values: dict[str, str]) -> tuple[Path, list[str]]:
    """The case's working directory (config, a copy of the base store and of the mappings) and its argv."""
    wd = workdir(root, case["id"], config='[sync]\nmappings_dir = "mappings"\n')
    copy_store(base, wd)
    shutil.copytree(REPO / "mappings", wd / "mappings")
    values = {**values, "dir": str(wd)}
    if "file" in case:
        source = HERE / "files" / case["file"]
        if "mapping_as" in case:
            target = wd / "mappings" / case["mapping_as"]
        else:
            target = wd / source.name
        if source.suffix == ".toml" and "mapping_as" not in case and source.read_bytes().isascii():
            target.write_text(_fill(source.read_text("utf-8"), values), "utf-8")
        else:
            shutil.copy(source, target)
        values["file"] = str(target)
    for extra in case.get("also", []):
        shutil.copy(HERE / "files" / extra, wd / Path(extra).name)
    return wd, [_fill(a, values) for a in case["args"]]


def _run(batch: list[tuple[Path, list[str]]], timeout: float = 60) -> list[Result]:
    """Run commands at once; one that does not end in time is killed and reported as such."""
    procs = [subprocess.Popen([sys.executable, "-m", "connector.cli", *args], cwd=wd, env=_env(None),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for wd, args in batch]
    out = []
    for (wd, args), proc in zip(batch, procs):
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            stderr += f"\n[still running after {timeout} s: killed]"
        out.append(Result(tuple(args), proc.returncode, stdout, stderr))
    return out


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Every case run once: its result, and the store's content before and after."""
    root = tmp_path_factory.mktemp("badinput")
    base = workdir(root, "_base")
    loaded = revsync(base, "import", str(write_doc(base / "orders.json", worked_example())))
    assert loaded.code == 0, loaded.stderr
    before = snapshot(store_url(base))
    assert before["orders"], "the base store must hold something for 'unchanged' to mean anything"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    values = {"busy_port": str(busy.getsockname()[1]), "repo": str(REPO)}
    try:
        prepared = [(case, *_prepare(case, root, base, values)) for case in CASES]
        results: dict[str, dict[str, Any]] = {}
        for i in range(0, len(prepared), PARALLEL):
            chunk = prepared[i:i + PARALLEL]
            for (case, wd, _), result in zip(chunk, _run([(wd, args) for _, wd, args in chunk])):
                results[case["id"]] = {"result": result, "after": snapshot(store_url(wd)), "values": values}
    finally:
        busy.close()
    return {"before": before, "cases": results}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_a_clear_error_and_changes_nothing(case, outcomes):
    run = outcomes["cases"][case["id"]]
    result: Result = run["result"]
    shown = f"revsync {' '.join(result.args)} → exit {result.code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.code == case.get("code", 2), shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert "error" in result.stderr.lower(), shown
    for words in case["expect"]:
        assert " ".join(_fill(words, run["values"]).split()) in result.errors, (words, shown)
    # what to do: our hint (→), or the usage line of an argument error
    assert any(mark in result.stderr for mark in ("→", "Try '", "usage:")), shown
    assert run["after"] == outcomes["before"], f"the store changed\n{shown}"


def test_the_corpus_has_one_case_per_input_file():
    used = {c["file"] for c in CASES if "file" in c} | {a for c in CASES for a in c.get("also", [])}
    present = {str(p.relative_to(HERE / "files")) for p in (HERE / "files").rglob("*") if p.is_file()}
    assert present == used, f"files without a case: {sorted(present - used)}; cases without a file: {sorted(used - present)}"
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
