"""Applying a mapping: a Salesforce record to engine values (`read_record`), engine values to a
Salesforce payload (`write_record`).

Records arrive in two shapes and both are handled the same way:
- REST JSON: typed values (numbers as Decimal, booleans), parent relationships as nested dicts
  (`{"Product2": {"attributes": ..., "Name": "Gold"}}`, or `"Product2": null`);
- Bulk API 2.0 CSV: every value a string, null as an empty string or None, relationship paths as
  flat columns (`"Product2.Name"`).
A value that cannot be converted raises `MappingError`, a `SkippableError`: the caller
quarantines that one record and carries on.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from dateutil.parser import isoparse

from connector.errors import SkippableError
from connector.mapping.schema import ObjectMapping

UTC = dt.timezone.utc
_SF_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_MISSING = object()

#: `resolve(sobject, engine_id)` -> the Salesforce Id of a record written earlier, or None
Resolver = Callable[[str, str], str | None]


class MappingError(SkippableError):
    """A record's value does not fit its mapping; the record is quarantined with this reason."""

    def __init__(self, sobject: str, record_id: str | None, field: str, value: Any, reason: str, *,
                 path: str | None = None):
        self.sobject = sobject
        self.record_id = record_id
        self.field = field
        self.value = value
        self.reason = reason
        where = f"{sobject} {record_id or '(no id)'}"
        hint = "fix the value in Salesforce (the record is taken again when it changes)"
        if path:
            hint += f", or the mapping in {path}"
        super().__init__(f"{where}: field {field}: {value!r} {reason}", hint=hint)


class UnresolvedReference(MappingError):
    """A reference's record has no Salesforce Id yet: write the parent first, then retry."""


def is_blank(value: Any) -> bool:
    """Null in either shape: None, or an empty (or blank) string as Bulk CSV gives it."""
    return value is None or (isinstance(value, str) and value.strip() == "")


# -- coercions -------------------------------------------------------------------------------


def to_date(value: Any) -> dt.date:
    """A date from a date, a datetime (its UTC day) or ISO text."""
    if isinstance(value, dt.datetime):
        return _utc(value).date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return _utc(_parse_datetime(text)).date()
    raise ValueError("is not a date")


def to_datetime(value: Any) -> dt.datetime:
    """An aware UTC datetime from a datetime, a date (midnight UTC) or ISO text."""
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), UTC)
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), UTC)
        return _utc(_parse_datetime(text))
    raise ValueError("is not a date-time")


def _parse_datetime(text: str) -> dt.datetime:
    try:
        # Salesforce writes "2023-01-15T10:00:00.000+0000"; isoparse reads that and "Z" forms.
        return isoparse(text)
    except ValueError as exc:
        raise ValueError("is not an ISO date-time") from exc


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # Salesforce date-times are always UTC; a naive one here is UTC by contract.
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_decimal(value: Any, *, allow_float: bool) -> Decimal:
    """An exact Decimal; floats only when reading (via their shortest repr), never when writing money."""
    if isinstance(value, bool):
        raise ValueError("is a true/false value, not a number")
    if isinstance(value, float):
        if not allow_float:
            raise ValueError("is a float; money and quantities are written from Decimal only")
        value = repr(value)
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError("is not a number") from exc
    if not result.is_finite():
        raise ValueError("is not a finite number")
    return result


def to_integer(value: Any, *, allow_float: bool) -> int:
    """An int from an int, an integral number or its text ("12", "12.0")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = to_decimal(value, allow_float=allow_float)
    if number != number.to_integral_value():
        raise ValueError("is not a whole number")
    return int(number)


def to_boolean(value: Any) -> bool:
    """A bool from JSON true/false or the Bulk CSV text "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("is not true or false")


def to_string(value: Any) -> str:
    """Text: enumerations by value, Decimals without exponent, dates in ISO form."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float):
        raise ValueError("is a float; use Decimal")
    return str(value)


def coerce(value: Any, type_: str | None, *, reading: bool) -> Any:
    """Convert one non-blank value to `type_` (None: as it is, enumerations by value)."""
    if type_ == "date":
        return to_date(value)
    if type_ == "datetime":
        return to_datetime(value)
    if type_ == "decimal":
        return to_decimal(value, allow_float=reading)
    if type_ == "integer":
        return to_integer(value, allow_float=reading)
    if type_ == "boolean":
        return to_boolean(value)
    if type_ == "string":
        return to_string(value)
    if isinstance(value, enum.Enum):
        return value.value
    if reading:
        return value
    # a field of no declared type is sent as it is, but never as what Salesforce cannot take
    # (the JSON or CSV of the upload would fail for the whole call, not for this record)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("is not a finite number")
    elif isinstance(value, dt.datetime):
        return to_datetime(value)  # UTC, a naive one UTC by contract, as for a declared datetime
    elif isinstance(value, float):
        raise ValueError("is a float; use Decimal")
    elif not isinstance(value, _SENDABLE):
        raise ValueError(f"is a {type(value).__name__}, which Salesforce cannot take: "
                         "send text, a number, true/false, a date or a date-time")
    return value


#: what else a field of no declared type may send (true/false are ints)
_SENDABLE = (str, int, dt.date)


# -- reading ---------------------------------------------------------------------------------


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """The value at a field or relationship path, in REST (nested) or Bulk CSV (flat) shape.

    Returns `_MISSING` when the record has no such field at all (it was not queried).
    """
    if path in record:
        return record[path]
    lowered = {k.lower(): k for k in record}  # only on a miss: field names are case-insensitive
    if path.lower() in lowered:
        return record[lowered[path.lower()]]
    head, sep, rest = path.partition(".")
    if not sep:
        return _MISSING
    key = head if head in record else lowered.get(head.lower())
    if key is None:
        return _MISSING
    parent = record[key]
    if parent is None:
        return None  # REST gives a null parent when the lookup is empty
    if not isinstance(parent, Mapping):
        return _MISSING
    return lookup(parent, rest)


def read_record(mapping: ObjectMapping, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Engine values from one Salesforce record, or None when a `skip_when` value says it changes nothing.

    Raises `MappingError` for a value that cannot be converted.
    """
    record_id = record.get("Id")
    record_id = None if is_blank(record_id) else str(record_id)
    out: dict[str, Any] = {}
    for target, spec in mapping.fields.items():
        type_ = mapping.types.get(target)
        if spec.source is None:
            out[target] = _fixed(mapping, record_id, target, spec.constant, type_, reading=True)
            continue
        raw = lookup(record, spec.source)
        if raw is _MISSING:
            raise MappingError(mapping.object, record_id, spec.source, None,
                               "is not in the record (was it left out of the query?)", path=mapping.path)
        text = None if is_blank(raw) else (raw.strip() if isinstance(raw, str) else raw)
        if spec.skip_when and (("" if text is None else to_string(text)) in spec.skip_when):
            return None
        if text is None:
            out[target] = _fixed(mapping, record_id, target, spec.default, type_, reading=True)
            continue
        value = text
        try:
            if spec.map is not None:
                key = to_string(value)
                if key not in spec.map:
                    raise ValueError(f"is not in the value map (known: {', '.join(spec.map)})")
                value = spec.map[key]
            value = coerce(value, type_, reading=True)
            if spec.reference is not None and not _SF_ID.fullmatch(str(value)):
                article = "an" if spec.reference[0] in "AEIOUaeiou" else "a"
                raise ValueError(f"is not a Salesforce Id (of {article} {spec.reference} record)")
            _check_choice(mapping, target, value)
        except ValueError as exc:
            raise MappingError(mapping.object, record_id, f"{spec.source} → {target}", raw, str(exc),
                               path=mapping.path) from exc
        out[target] = value
    return out


def _fixed(mapping: ObjectMapping, record_id: str | None, field: str, value: Any, type_: str | None, *,
           reading: bool) -> Any:
    # constants and defaults are checked when the mapping is loaded; this only converts them
    if value is None:
        return None
    try:
        return coerce(value, type_, reading=reading)
    except ValueError as exc:
        raise MappingError(mapping.object, record_id, field, value, str(exc), path=mapping.path) from exc


def _check_choice(mapping: ObjectMapping, field: str, value: Any) -> None:
    choices = mapping.choices.get(field)
    if choices and value is not None and to_string(value) not in choices:
        raise ValueError(f"is not one of {', '.join(choices)}")


# -- writing ---------------------------------------------------------------------------------


def write_record(mapping: ObjectMapping, values: Mapping[str, Any], *, resolve: Resolver | None = None,
                 creating: bool = True) -> dict[str, Any]:
    """A Salesforce payload (`attributes: {type}` first) from engine values.

    `resolve` turns the engine id of a referenced record into its Salesforce Id; without it,
    reference values are sent as they are (they already are Salesforce Ids). With `creating`
    false, `create_only` fields are left out (Salesforce refuses to update them).
    Raises `MappingError` for a value that cannot be converted, `UnresolvedReference` for a
    referenced record that has no Salesforce Id yet.
    """
    record_id = values.get("id")
    record_id = None if record_id is None else str(record_id)
    payload: dict[str, Any] = {"attributes": {"type": mapping.object}}
    for target, spec in mapping.fields.items():
        if spec.create_only and not creating:
            continue
        type_ = mapping.types.get(target)
        if spec.source is None:
            payload[target] = _fixed(mapping, record_id, target, spec.constant, type_, reading=False)
            continue
        raw = values.get(spec.source)
        if is_blank(raw):
            payload[target] = _fixed(mapping, record_id, target, spec.default, type_, reading=False)
            continue
        value = raw
        try:
            _check_choice(mapping, spec.source, value)
            if spec.map is not None:
                key = to_string(value)
                if key not in spec.map:
                    raise ValueError(f"is not in the value map (known: {', '.join(spec.map)})")
                value = spec.map[key]
            if spec.reference is not None and resolve is not None:
                resolved = resolve(spec.reference, to_string(value))
                if resolved is None:
                    raise UnresolvedReference(
                        mapping.object, record_id, f"{spec.source} → {target}", raw,
                        f"names a {spec.reference} record that has no Salesforce Id yet", path=mapping.path)
                value = resolved
            value = coerce(value, type_, reading=False)
        except ValueError as exc:
            raise MappingError(mapping.object, record_id, f"{spec.source} → {target}", raw, str(exc),
                               path=mapping.path) from exc
        payload[target] = value
    return payload
