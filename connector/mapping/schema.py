"""The shape of a mapping file (`mappings/*.toml`), as pydantic models with unknown keys forbidden.

Only the structure is checked here (key names, value types, the choice lists). Rules that
involve several keys or the engine's records live in `connector.mapping.validate`, so that every
problem of every file can be reported with its file, table and key in one go.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

CoercionType = Literal["date", "datetime", "decimal", "integer", "boolean", "string"]


def _scalar(value: Any) -> Any:
    # TOML values a mapping may use as a constant, default or map value (TOML floats arrive as Decimal)
    if value is None or isinstance(value, (str, bool, int, Decimal, dt.date, dt.datetime, dt.time)):
        if isinstance(value, dt.time):
            raise ValueError("a time of day alone is not a field value; write a date or a date-time")
        return value
    raise ValueError(f"must be a single value (text, number, true/false or date), not {type(value).__name__}")


class FieldSpec(BaseModel):
    """One `[fields.<target>]` table: where a field's value comes from and how it is converted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: reading: a Salesforce field or relationship path (`Product2.Name`); writing: an engine field
    source: str | None = None
    #: the value to use for every record, instead of a source
    constant: Any = None
    #: the value to use when the source is blank (null, missing, or an empty string)
    default: Any = None
    #: coercion type; reading defaults to the engine field's type
    type: CoercionType | None = None
    #: value map, source value -> target value (picklists)
    map: dict[str, Any] | None = None
    #: reading only: source values that mean "this record changes nothing": it is skipped
    skip_when: list[str] = []
    #: the value is the Id of a record of this Salesforce object
    reference: str | None = None
    #: writing only: send this field when creating the record, never on update
    create_only: bool = False

    @field_validator("constant", "default")
    @classmethod
    def _single_value(cls, value: Any) -> Any:
        return _scalar(value)

    @field_validator("map")
    @classmethod
    def _map_values(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            for v in value.values():
                _scalar(v)
        return value


class MappingFile(BaseModel):
    """A whole mapping file: the Salesforce object, the direction, the engine record and the fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: str
    direction: Literal["read", "write"]
    record: str
    #: writing: the external id field the upsert matches on (`Id` to update by Salesforce Id)
    external_id: str | None = None
    #: writing a big object: its index fields, in index order (rows upsert on them)
    index: list[str] | None = None
    fields: dict[str, FieldSpec]


@dataclass(frozen=True)
class ObjectMapping:
    """A loaded mapping file: what `read_record` and `write_record` apply."""

    path: str
    object: str
    direction: str
    record: str
    fields: dict[str, FieldSpec]
    external_id: str | None = None
    index: tuple[str, ...] = ()
    #: the effective coercion type per target field (declared, or the engine field's type)
    types: dict[str, str | None] = field(default_factory=dict)
    #: the allowed engine values per target field (read) or source field (write), for enumerations
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_big_object(self) -> bool:
        """True for a big object (`__b`): no external id, rows upsert on the index."""
        return self.object.endswith("__b")

    def source_fields(self) -> list[str]:
        """Reading: the Salesforce fields and paths to query, `Id` first, each once."""
        wanted = ["Id"] + [s.source for s in self.fields.values() if s.source is not None]
        return list(dict.fromkeys(wanted))
