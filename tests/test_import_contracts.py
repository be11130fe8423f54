"""The import contracts of pyproject.toml hold: one-way layers, no import cycle, a pure engine.

`lint-imports` (in .ci/run) checks the same and shows each broken import; this keeps the
README's test command checking them too.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_contracts_are_kept(capsys):
    from importlinter.application.use_cases import lint_imports
    from importlinter.configuration import configure

    configure()
    kept = lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    out = capsys.readouterr().out
    assert kept, out
    assert "3 kept, 0 broken" in out  # every contract ran (a renamed id would drop one silently)
