"""Loading `mappings/*.toml` into a `MappingSet`, with every problem of every file collected first.

A mapping that fails validation stops the daemon at start-up (issue 3), never half-way: the
loader raises one `ConfigError` listing each problem with its file, table and key.
"""
from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connector.errors import ConfigError, Problem
from connector.mapping.apply import Resolver, read_record, write_record
from connector.mapping.records import engine_record
from connector.mapping.schema import FieldSpec, MappingFile, ObjectMapping
from connector.mapping.validate import (
    Describe, check_file_name, check_mapping, check_set, effective_types, engine_choices,
    validate_online, where,
)

HINT = "fix the mapping files, then run `revsync mappings validate` (see mappings/README.md)"


@dataclass(frozen=True)
class MappingSet:
    """Every mapping of a directory, by Salesforce object and direction."""

    directory: str
    mappings: tuple[ObjectMapping, ...]

    def __iter__(self) -> Iterator[ObjectMapping]:
        return iter(self.mappings)

    def find(self, sobject: str, direction: str) -> ObjectMapping | None:
        """The mapping of `sobject` (case-insensitive) for `read` or `write`, or None."""
        for m in self.mappings:
            if m.object.lower() == sobject.lower() and m.direction == direction:
                return m
        return None

    def reading(self, sobject: str) -> ObjectMapping:
        """The reading mapping of `sobject`; a `ConfigError` when there is none."""
        return self._get(sobject, "read")

    def writing(self, sobject: str) -> ObjectMapping:
        """The writing mapping of `sobject`; a `ConfigError` when there is none."""
        return self._get(sobject, "write")

    def _get(self, sobject: str, direction: str) -> ObjectMapping:
        found = self.find(sobject, direction)
        if found is None:
            name = f"{self.directory}/{sobject}{'' if direction == 'read' else '.write'}.toml"
            raise ConfigError(self.directory, [Problem(name, f"no {direction} mapping for {sobject}")], hint=HINT)
        return found

    # The two methods ingest and sync call (connector.ingest.Mappings).

    def fields(self, sobject: str) -> list[str]:
        """The Salesforce fields and relationship paths to query for `sobject`, `Id` first."""
        return self.reading(sobject).source_fields()

    def read(self, sobject: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """Engine values of one Salesforce record; None for a record that changes nothing."""
        return read_record(self.reading(sobject), record)

    def write(self, sobject: str, values: Mapping[str, Any], *, resolve: Resolver | None = None,
              creating: bool = True) -> dict[str, Any]:
        """The Salesforce payload for engine values, by the writing mapping of `sobject`."""
        return write_record(self.writing(sobject), values, resolve=resolve, creating=creating)


def load_mappings(directory: str | Path, *, describe: Describe | None = None) -> MappingSet:
    """Load and validate every `*.toml` of `directory` (and, given `describe`, against the org).

    Raises one `ConfigError` with every problem of every file.
    """
    mapping_set, problems = collect(directory)
    if not problems and describe is not None:
        problems = validate_online(mapping_set, describe)
    if problems:
        raise ConfigError(str(directory), problems, hint=HINT)
    return mapping_set


def collect(directory: str | Path) -> tuple[MappingSet, list[Problem]]:
    """The mappings that could be read, and the offline problems of all files."""
    root = Path(directory)
    problems: list[Problem] = []
    if not root.is_dir():
        return MappingSet(str(directory), ()), [Problem(str(directory), "is not a directory of mapping files")]
    files = sorted(root.glob("*.toml"))
    if not files:
        problems.append(Problem(str(directory), "has no mapping files (*.toml)"))
    loaded = []
    for file in files:
        shown = str(Path(directory) / file.name)
        mapping, file_problems, skip = _load(file, shown)
        problems += file_problems
        if mapping is not None:
            loaded.append(mapping)
            # checks on a part whose shape is broken would only repeat its problem in other words
            problems += [p for p in check_file_name(mapping) + check_mapping(mapping)
                         if not any(p.where == s or p.where.startswith(s + " ") for s in skip)]
    problems += check_set(loaded)
    return MappingSet(str(directory), tuple(loaded)), problems


def load_file(file: Path, *, shown: str | None = None) -> tuple[ObjectMapping | None, list[Problem]]:
    """One file parsed and checked for shape; None with its problems when it cannot be used."""
    mapping, problems, _ = _load(file, shown or str(file))
    return (None if problems else mapping), problems


def _load(file: Path, shown: str) -> tuple[ObjectMapping | None, list[Problem], set[str]]:
    """One file: its mapping (what is left once the keys with shape problems are set aside), its
    shape problems, and the places (`file: [fields.x]`, `file: key`) whose other checks to skip.

    A typo in one key (`refrence`) thus does not hide the problems of the rest of the file.
    """
    try:
        # TOML floats as Decimal: a money default of 0.1 must stay exact
        raw = tomllib.loads(file.read_text("utf-8"), parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(shown, f"is not valid TOML: {exc}")], set()
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, f"is not UTF-8 (byte {exc.start}: {exc.reason}); save it as UTF-8")], set()
    except OSError as exc:
        return None, [Problem(shown, f"cannot be read: {exc.strerror or exc}")], set()
    bad = _bad_shorthand(raw)
    raw, problems = _expand_shorthand(raw, shown)
    # a field whose value is neither a table nor a source name stays mapped (so that it does not
    # also look "not mapped"), with nothing in it and its checks skipped
    raw = raw | ({"fields": raw["fields"] | {t: {} for t in bad}} if bad else {})
    skip = {where(shown, target) for target in bad}
    try:
        parsed = MappingFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems += [_problem(shown, e) for e in errors if not _explained(e, errors)]
        raw, more = _set_aside(raw, errors, shown)
        skip |= more
        try:
            parsed = MappingFile.model_validate(raw)
        except ValidationError:  # a required key is missing or wrong: nothing more can be checked
            return None, problems, skip
    record = engine_record(parsed.direction, parsed.record)
    return ObjectMapping(
        path=shown, object=parsed.object, direction=parsed.direction, record=parsed.record,
        fields=dict(parsed.fields), external_id=parsed.external_id, index=tuple(parsed.index or ()),
        types=effective_types(parsed.direction, record, parsed.fields),
        choices=engine_choices(parsed.direction, record, parsed.fields),
    ), problems, skip


def _explained(error: Any, errors: list[Any]) -> bool:
    """True for "`record` is required" when the same table has an unknown key close to it (`recrod`)."""
    if error["type"] != "missing":
        return False
    loc = [str(p) for p in error["loc"]]
    table = loc[:-1]
    if table and table[0] == "fields":
        return False  # field tables have no required keys
    typos = [str(e["loc"][-1]) for e in errors
             if e["type"] == "extra_forbidden" and [str(p) for p in e["loc"][:-1]] == table]
    return any(difflib.get_close_matches(t, [loc[-1]], n=1) for t in typos)


def _bad_shorthand(raw: dict[str, Any]) -> list[str]:
    fields = raw.get("fields")
    return [t for t, v in fields.items() if not isinstance(v, (dict, str))] if isinstance(fields, dict) else []


def _set_aside(raw: dict[str, Any], errors: list[Any], shown: str) -> tuple[dict[str, Any], set[str]]:
    """`raw` without the keys pydantic found wrong, and the places whose checks now depend on a guess."""
    out = dict(raw)
    fields = dict(raw["fields"]) if isinstance(raw.get("fields"), dict) else None
    skip: set[str] = set()
    for error in errors:
        loc = [str(p) for p in error["loc"]]
        if len(loc) >= 3 and loc[0] == "fields" and fields is not None and isinstance(fields.get(loc[1]), dict):
            fields[loc[1]] = {k: v for k, v in fields[loc[1]].items() if k != loc[2]}
            skip.add(where(shown, loc[1]))
        elif len(loc) == 2 and loc[0] == "fields" and fields is not None:
            fields.pop(loc[1], None)
            skip.add(where(shown, loc[1]))
        elif loc and loc[0] != "fields":
            out.pop(loc[0], None)
            skip.add(where(shown, None, loc[0]))
            close = difflib.get_close_matches(loc[0], list(MappingFile.model_fields), n=1)
            if error["type"] == "extra_forbidden" and close:
                skip.add(where(shown, None, close[0]))  # `extrnal_id` makes `external_id` look missing
    if fields is not None:
        out["fields"] = fields
    return out, skip


def _expand_shorthand(raw: dict[str, Any], shown: str) -> tuple[dict[str, Any], list[Problem]]:
    """`name = "Source"` in [fields] is short for `[fields.name] source = "Source"`."""
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        return raw, []
    problems = []
    expanded: dict[str, Any] = {}
    for target, spec in fields.items():
        if isinstance(spec, str):
            expanded[target] = {"source": spec}
        elif isinstance(spec, dict):
            expanded[target] = spec
        else:
            problems.append(Problem(where(shown, target), "must be a table, or a string naming the source field"))
    return raw | {"fields": expanded}, problems


_FIELD_KEYS = ", ".join(FieldSpec.model_fields)
_FILE_KEYS = ", ".join(MappingFile.model_fields)


def _problem(shown: str, error: Any) -> Problem:
    """A pydantic error as `file: [fields.x] key: message`."""
    loc = [str(p) for p in error["loc"]]
    if len(loc) >= 2 and loc[0] == "fields":
        target, key = loc[1], ".".join(loc[2:]) or None
        allowed = _FIELD_KEYS
    else:
        target, key = None, ".".join(loc) or None
        allowed = _FILE_KEYS
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], [k.strip() for k in allowed.split(",")], n=1)
        message = f"unknown key (allowed: {allowed})" + (f"; did you mean {close[0]!r}?" if close else "")
    elif kind == "missing":
        message = "is required"
    elif kind == "literal_error":
        message = f"{value!r} is not one of {error['ctx']['expected'].replace(chr(39), '').replace(' or ', ', ')}"
    elif kind in ("string_type", "bool_type", "bool_parsing", "list_type", "dict_type", "model_type"):
        expected = {"string_type": "text", "bool_type": "true or false", "bool_parsing": "true or false",
                    "list_type": "a list",
                    "dict_type": "a table", "model_type": "a table"}[kind]
        message = f"{value!r} must be {expected}"
    elif kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
    else:
        message = error["msg"]
    return Problem(where(shown, target, key), message)
