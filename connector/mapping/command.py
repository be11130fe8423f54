"""`revsync mappings validate [--online]`: the function behind the command, without the CLI."""
from __future__ import annotations

from pathlib import Path

from connector.errors import Problem
from connector.mapping.loader import collect
from connector.mapping.validate import Describe, validate_online


def validate_command(directory: str | Path, *, describe: Describe | None = None) -> list[Problem]:
    """Every problem of the mapping files (and, given the org's `describe`, against the org); [] when fine.

    Online checks run only once the files are sound offline: a describe of a misspelt object
    would only repeat what the offline problems already say.
    """
    mapping_set, problems = collect(directory)
    if problems or describe is None:
        return problems
    return validate_online(mapping_set, describe)
