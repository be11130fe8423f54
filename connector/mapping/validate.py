"""Validating mappings: offline (the files against themselves and the engine's records) and online
(every field against the org's describe). Every problem is collected, each naming file, table and key.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from connector.errors import Problem
from connector.mapping.apply import coerce
from connector.mapping.records import READ_PARENT, READ_RECORDS, WRITE_RECORDS, EngineRecord, engine_record
from connector.mapping.schema import FieldSpec, ObjectMapping

Describe = Callable[[str], dict[str, Any]]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: SOQL follows at most five child-to-parent relationships (SOQL and SOSL Reference, "Relationship Query Limits")
MAX_PATH_PARTS = 6

#: writing: declared (or engine) type -> the engine value types it may be converted from
_WRITE_FROM = {
    "date": {"date", "datetime", "string"}, "datetime": {"datetime", "date", "string"},
    "decimal": {"decimal", "integer", "string"}, "integer": {"integer", "decimal", "string"},
    "boolean": {"boolean", "string"}, "string": {"string", "date", "datetime", "decimal", "integer", "boolean"},
}
#: describe field types each coercion type fits (reading: the Salesforce field's type; writing: the same)
_TEXT_TYPES = {"string", "picklist", "multipicklist", "combobox", "textarea", "id", "reference", "email",
               "phone", "url", "encryptedstring"}
_NUMBER_TYPES = {"double", "currency", "percent", "int", "long"}
_FITS = {
    "date": {"date", "datetime"}, "datetime": {"datetime", "date"}, "decimal": _NUMBER_TYPES,
    "integer": _NUMBER_TYPES, "boolean": {"boolean"}, "string": _TEXT_TYPES,
}
_WRITE_FITS = {
    "date": {"date"}, "datetime": {"datetime"}, "decimal": {"double", "currency", "percent"},
    "integer": _NUMBER_TYPES, "boolean": {"boolean"}, "string": _TEXT_TYPES,
}


def where(path: str, target: str | None = None, key: str | None = None) -> str:
    """`mappings/X.toml: [fields.target] key`, `mappings/X.toml: key` or `mappings/X.toml`."""
    parts = [f"[fields.{_toml_key(target)}]" if target is not None else None, key]
    inner = " ".join(p for p in parts if p)
    return f"{path}: {inner}" if inner else path


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(values)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- offline ---------------------------------------------------------------------------------


def effective_types(direction: str, record: EngineRecord | None, fields: dict[str, FieldSpec]) -> dict[str, str | None]:
    """Per target: the declared type, or (reading) the engine field's type."""
    out: dict[str, str | None] = {}
    for target, spec in fields.items():
        engine = record.fields.get(target) if (record and direction == "read") else None
        out[target] = spec.type or (engine.type if engine else None)
    return out


def engine_choices(direction: str, record: EngineRecord | None, fields: dict[str, FieldSpec]) -> dict[str, tuple[str, ...]]:
    """Allowed values per target (reading) or per source (writing), for enumeration fields."""
    if record is None:
        return {}
    if direction == "read":
        return {t: record.fields[t].choices for t in fields if t in record.fields and record.fields[t].choices}
    return {s.source: record.fields[s.source].choices for s in fields.values()
            if s.source in record.fields and record.fields[s.source].choices}


def check_mapping(m: ObjectMapping) -> list[Problem]:
    """Offline problems of one loaded mapping file."""
    out: list[Problem] = []

    def add(target: str | None, key: str | None, message: str) -> None:
        out.append(Problem(where(m.path, target, key), message))

    if not _NAME.fullmatch(m.object):
        add(None, "object", f"{m.object!r} is not a Salesforce object API name")
    record = engine_record(m.direction, m.record)
    if record is None:
        known = READ_RECORDS if m.direction == "read" else WRITE_RECORDS
        add(None, "record", f"{m.record!r} is not one of {_one_of(known)} (the {m.direction} records)"
            + _suggest(m.record, known))
    _check_write_keys(m, add)
    for target, spec in m.fields.items():
        _check_field(m, record, target, spec, add)
    if record is not None and m.direction == "read":
        required = set(record.required) | ({READ_PARENT[m.object]} if m.object in READ_PARENT else set())
        for name in sorted(required - set(m.fields)):
            add(None, "fields", f"required engine field {name!r} of {record.name} is not mapped "
                                f"(add a [fields.{name}] table)")
    return out


def _check_write_keys(m: ObjectMapping, add: Callable[[str | None, str | None, str], None]) -> None:
    if m.direction == "read":
        if m.external_id is not None:
            add(None, "external_id", "is only for writing mappings")
        if m.index:
            add(None, "index", "is only for writing mappings of big objects")
        return
    if m.is_big_object:
        if m.external_id is not None:
            add(None, "external_id", "big objects have no external id: their rows upsert on the index")
        for name in m.index:
            if name not in m.fields:
                add(None, "index", f"index field {name!r} is not mapped (add a [fields.{name}] table)")
        return
    if m.index:
        add(None, "index", "is only for big objects (`__b`)")
    if m.external_id is None:
        add(None, "external_id", "is required for writing (the upsert matches on it; e.g. \"ExternalId__c\")")
    elif m.external_id not in m.fields:
        add(None, "external_id", f"{m.external_id!r} is not mapped (add a [fields.{m.external_id}] table)")
    elif m.fields[m.external_id].create_only:
        # left out of every update, where the upsert still matches on it: Salesforce would refuse it
        add(m.external_id, "create_only", "cannot be set on the external id: every write, updates too, "
                                          "matches the record on it (remove `create_only = true`)")


def _check_field(m: ObjectMapping, record: EngineRecord | None, target: str, spec: FieldSpec,
                 add: Callable[[str | None, str | None, str], None]) -> None:
    reading = m.direction == "read"
    has_source, has_constant = spec.source is not None, spec.constant is not None
    if has_source == has_constant:
        add(target, None, "needs exactly one of `source` or `constant`"
            + (" (it has both)" if has_source else ""))
    if has_constant:
        for key in ("default", "map", "skip_when", "reference"):
            if getattr(spec, key):
                add(target, key, "makes no sense with `constant`")
    if not reading and spec.skip_when:
        add(target, "skip_when", "is only for reading mappings")
    if reading and spec.create_only:
        add(target, "create_only", "is only for writing mappings")
    if spec.reference is not None and not _NAME.fullmatch(spec.reference):
        add(target, "reference", f"{spec.reference!r} is not a Salesforce object API name")
    engine_field = None
    if reading:
        if record is not None:
            engine_field = record.fields.get(target)
            if engine_field is None:
                add(target, None, f"{target!r} is not a field of engine record {record.name}"
                    + _suggest(target, record.fields) + f" (fields: {_one_of(record.fields)})")
        if has_source:
            parts = spec.source.split(".")
            if not all(_NAME.fullmatch(p) for p in parts) or len(parts) > MAX_PATH_PARTS:
                add(target, "source", f"{spec.source!r} is not a Salesforce field or relationship path "
                                      "(e.g. \"Product2Id\", \"Product2.Name\")")
        if engine_field is not None and spec.type is not None and spec.type != engine_field.type:
            add(target, "type", f"{spec.type!r} does not fit engine field {target} ({engine_field.type})")
        if spec.reference is not None and m.types.get(target) not in (None, "string"):
            add(target, "reference", "an Id is text: the engine field must be a string")
    else:
        if not _NAME.fullmatch(target):
            add(target, None, f"{target!r} is not a Salesforce field API name (relationship paths cannot be written)")
        if record is not None and has_source:
            engine_field = record.fields.get(spec.source)
            if engine_field is None:
                add(target, "source", f"{spec.source!r} is not a field of engine record {record.name}"
                    + _suggest(spec.source, record.fields) + f" (fields: {_one_of(record.fields)})")
        if (engine_field is not None and spec.type is not None and spec.map is None
                and engine_field.type not in _WRITE_FROM[spec.type]):
            add(target, "type", f"{spec.type!r} cannot be made from engine field {spec.source} ({engine_field.type})")
    _check_values(m, target, spec, engine_field, add)


def _check_values(m: ObjectMapping, target: str, spec: FieldSpec, engine_field: Any,
                  add: Callable[[str | None, str | None, str], None]) -> None:
    reading = m.direction == "read"
    type_ = m.types.get(target)
    # reading: constants, defaults and map values become engine values, so the engine's choices apply
    choices = engine_field.choices if (reading and engine_field is not None) else ()

    def check(key: str, value: Any) -> None:
        try:
            converted = coerce(value, type_, reading=True)
        except ValueError as exc:
            add(target, key, f"{value!r} {exc} (type {type_})")
            return
        if choices and str(converted) not in choices:
            add(target, key, f"{value!r} is not one of {_one_of(choices)}")

    if spec.constant is not None:
        check("constant", spec.constant)
    if spec.default is not None:
        check("default", spec.default)
    for key, value in (spec.map or {}).items():
        check(f"map.{_toml_key(key)}", value)
    if not reading and spec.map is not None and engine_field is not None and engine_field.choices:
        for key in spec.map:
            if key not in engine_field.choices:
                add(target, f"map.{_toml_key(key)}", f"{key!r} is not a value of engine field {spec.source} "
                                                    f"({_one_of(engine_field.choices)})")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'


def check_set(mappings: Iterable[ObjectMapping]) -> list[Problem]:
    """Problems across files: one file per object and direction."""
    out, seen = [], {}
    for m in mappings:
        key = (m.object.lower(), m.direction)
        if key in seen:
            out.append(Problem(where(m.path, None, "object"),
                               f"{m.object} is already mapped for {m.direction} in {seen[key]}"))
        else:
            seen[key] = m.path
    return out


def expected_file_name(sobject: str, direction: str) -> str:
    """The file name a mapping of this object and direction has: `Order.toml`, `Order.write.toml`."""
    return f"{sobject}.toml" if direction == "read" else f"{sobject}.write.toml"


def check_file_name(m: ObjectMapping) -> list[Problem]:
    """The file is named after its object and direction, so admins find it."""
    expected = expected_file_name(m.object, m.direction)
    if Path(m.path).name != expected:
        return [Problem(where(m.path, None, "object"),
                        f"a {m.direction} mapping of {m.object} belongs in a file named {expected}")]
    return []


# -- online ----------------------------------------------------------------------------------


class _Describes:
    """Describe results by object, each asked for once; an object the org does not have is remembered
    as a message. Any other failure (a login refused, the org unreachable) ends the validation at once
    with that one error: it says nothing about the mapping files."""

    def __init__(self, describe: Describe):
        self._describe = describe
        self._cache: dict[str, dict[str, Any] | str] = {}

    def get(self, sobject: str) -> dict[str, Any] | str:
        key = sobject.lower()
        if key not in self._cache:
            try:
                self._cache[key] = self._describe(sobject)
            except LookupError as exc:  # the org has no such object (NotFound is a LookupError)
                self._cache[key] = f"the org has no object {sobject!r} ({str(exc).splitlines()[0]})"
        return self._cache[key]

    def fields(self, sobject: str) -> dict[str, dict[str, Any]] | str:
        found = self.get(sobject)
        if isinstance(found, str):
            return found
        return {f["name"].lower(): f for f in found.get("fields", [])}


def validate_online(mapping_set: Iterable[ObjectMapping], describe: Describe) -> list[Problem]:
    """Check every mapped field against the org's describe: exists, type fits, writable, picklist values."""
    describes = _Describes(describe)
    out: list[Problem] = []
    for m in mapping_set:
        fields = describes.fields(m.object)
        if isinstance(fields, str):
            out.append(Problem(where(m.path, None, "object"), fields))
            continue
        for target, spec in m.fields.items():
            if m.direction == "read":
                if spec.source is not None:
                    out += _online_read(m, target, spec, describes)
            else:
                out += _online_write(m, target, spec, fields)
        if m.direction == "write" and m.external_id is not None:
            f = fields.get(m.external_id.lower())
            if f is not None and not (f.get("externalId") or f.get("type") == "id"):
                out.append(Problem(where(m.path, None, "external_id"),
                                   f"{m.object}.{f['name']} is not an External ID field, so upserts cannot match on it"))
    return out


def _resolve_path(sobject: str, path: str, describes: _Describes) -> tuple[dict[str, Any] | None, str | None]:
    """The describe of the last field of a path, or a message saying where the path breaks."""
    current = sobject
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = describes.fields(current)
        if isinstance(fields, str):
            return None, fields
        if i == len(parts) - 1:
            f = fields.get(part.lower())
            if f is None:
                return None, f"{current} has no field {part!r}" + _suggest(part, [x["name"] for x in fields.values()])
            return f, None
        lookups = [f for f in fields.values() if (f.get("relationshipName") or "").lower() == part.lower()]
        if not lookups:
            names = [f["relationshipName"] for f in fields.values() if f.get("relationshipName")]
            return None, f"{current} has no relationship {part!r}" + _suggest(part, names)
        targets = lookups[0].get("referenceTo") or []
        if len(targets) != 1:
            return None, f"{current}.{part} points at {len(targets)} objects; only single-object lookups can be followed"
        current = targets[0]
    return None, "empty path"


def _online_read(m: ObjectMapping, target: str, spec: FieldSpec, describes: _Describes) -> list[Problem]:
    out = []
    f, error = _resolve_path(m.object, spec.source, describes)
    if f is None:
        return [Problem(where(m.path, target, "source"), error or "not found")]
    type_ = m.types.get(target)
    sf_type = f.get("type")
    if type_ is not None and sf_type not in _FITS[type_]:
        out.append(Problem(where(m.path, target, "type"),
                           f"{m.object}.{spec.source} is a {sf_type} field; it does not fit type {type_!r}"))
    elif type_ == "integer" and sf_type in ("double", "currency", "percent") and f.get("scale"):
        out.append(Problem(where(m.path, target, "type"),
                           f"{m.object}.{spec.source} has {f['scale']} decimal places; it does not fit type 'integer'"))
    out += _online_reference(m, target, spec, f, "source")
    picklist = _picklist(f)
    if picklist is not None:
        for key in list(spec.map or {}) + list(spec.skip_when):
            if key and key not in picklist:
                label = f"map.{_toml_key(key)}" if key in (spec.map or {}) else "skip_when"
                out.append(Problem(where(m.path, target, label),
                                   f"{key!r} is not a value of picklist {m.object}.{spec.source} "
                                   f"({_one_of(picklist)})" + _suggest(key, picklist)))
    return out


def _online_write(m: ObjectMapping, target: str, spec: FieldSpec, fields: dict[str, dict[str, Any]]) -> list[Problem]:
    out = []
    f = fields.get(target.lower())
    if f is None:
        names = [x["name"] for x in fields.values()]
        return [Problem(where(m.path, target), f"{m.object} has no field {target!r}" + _suggest(target, names))]
    is_key = m.external_id is not None and target.lower() == m.external_id.lower() and f.get("type") == "id"
    if not is_key:
        if not f.get("createable"):
            out.append(Problem(where(m.path, target), f"{m.object}.{f['name']} cannot be written (not createable)"))
        elif not (spec.create_only or m.is_big_object or f.get("updateable")):
            out.append(Problem(where(m.path, target),
                               f"{m.object}.{f['name']} cannot be updated; add `create_only = true` "
                               "to send it only when the record is created"))
    sf_type = f.get("type")
    type_ = m.types.get(target)
    if type_ is not None and sf_type not in _WRITE_FITS[type_]:
        out.append(Problem(where(m.path, target, "type"),
                           f"{m.object}.{f['name']} is a {sf_type} field; type {type_!r} does not fit it"))
    out += _online_reference(m, target, spec, f, None)
    picklist = _picklist(f)
    if picklist is not None:
        written = [("constant", spec.constant), ("default", spec.default)]
        written += [(f"map.{_toml_key(k)}", v) for k, v in (spec.map or {}).items()]
        for key, value in written:
            if value is not None and str(value) not in picklist:
                out.append(Problem(where(m.path, target, key),
                                   f"{value!r} is not a value of picklist {m.object}.{f['name']} ({_one_of(picklist)})"
                                   + _suggest(str(value), picklist)))
    return out


def _online_reference(m: ObjectMapping, target: str, spec: FieldSpec, f: dict[str, Any], key: str | None) -> list[Problem]:
    if spec.reference is None:
        return []
    sf_type = f.get("type")
    if sf_type == "reference":
        refs = [r.lower() for r in f.get("referenceTo") or []]
        if spec.reference.lower() not in refs:
            return [Problem(where(m.path, target, "reference"),
                            f"{m.object}.{f['name']} points at {_one_of(f.get('referenceTo') or [])}, not {spec.reference}")]
    elif sf_type not in ("id", "string"):
        return [Problem(where(m.path, target, "reference"),
                        f"{m.object}.{f['name']} is a {sf_type} field; an Id needs a lookup or a text field")]
    return []


def _picklist(f: dict[str, Any]) -> list[str] | None:
    if f.get("type") not in ("picklist", "multipicklist"):
        return None
    return [v["value"] for v in f.get("picklistValues") or [] if v.get("active", True)]
