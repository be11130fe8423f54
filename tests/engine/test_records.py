"""The engine records whose `__init__` is written out (`LineInput`, `Segment`, `ActivatedLine`):
each must make what `@dataclass(frozen=True)` would have made of the same fields, from the same
arguments (positional, by name, defaults), with the same refusals, and stay frozen."""
from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import pickle
from decimal import Decimal

import pytest

from connector.engine import model

WRITTEN_OUT = [model.LineInput, model.Segment, model.ActivatedLine]


def _twin(cls: type) -> type:
    """The same fields, as `@dataclass(frozen=True)` makes them, with the dataclass's own `__init__`."""
    return dataclasses.make_dataclass(
        cls.__name__, [(f.name, f.type) if f.default is dataclasses.MISSING else
                       (f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(cls)],
        frozen=True)


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_its_own_init_not_the_dataclass_one(cls: type) -> None:
    assert cls.__init__.__qualname__ == f"{cls.__name__}.__init__"


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_every_field_from_its_own_argument_positional_or_named(cls: type) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    values = [object() for _ in names]  # a value each: a field filled from another's argument shows
    assert vars(cls(*values)) == vars(_twin(cls)(*values)) == dict(zip(names, values))
    assert vars(cls(**dict(zip(reversed(names), reversed(values))))) == dict(zip(names, values))


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_defaults_and_refusals_as_the_dataclass_has_them(cls: type) -> None:
    twin = _twin(cls)
    assert [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()] == \
        [(p.name, p.default, p.kind) for p in inspect.signature(twin).parameters.values()]
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    given = {name: object() for name in required}
    assert vars(cls(**given)) == vars(twin(**given))
    with pytest.raises(TypeError):
        cls(**given, not_a_field=1)
    with pytest.raises(TypeError):
        cls(**{name: value for name, value in given.items() if name != required[-1]})


def test_a_record_stays_frozen_equal_hashable_replaceable_and_picklable() -> None:
    segment = model.Segment(dt.date(2026, 1, 1), dt.date(2026, 2, 1), Decimal("10.00"), Decimal(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        segment.mrr = Decimal(0)  # type: ignore[misc]
    same = model.Segment(start=dt.date(2026, 1, 1), end_excl=dt.date(2026, 2, 1), mrr=Decimal("10.00"),
                         quantity=Decimal(2))
    assert segment == same and hash(segment) == hash(same)
    assert dataclasses.replace(segment, mrr=Decimal(5)).mrr == Decimal(5) and segment.mrr == Decimal("10.00")
    assert pickle.loads(pickle.dumps(segment)) == segment
