"""What every part of a record is built from: the ``Part`` base (read from and written back to
JSON, undeclared keys kept in ``extra``), its field declarations (``slot``, ``required``) and the
JSON parsers the parts use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

P = TypeVar("P", bound="Part")


class RecordError(ValueError):
    """A JSON object that is not a bench record this version can read (the message says why)."""


def slot(parse: Callable[[Any], Any] | None = None, *, optional: bool = False, default: Any = None) -> Any:
    """A part's field. ``parse`` turns a JSON value (never null) into the field's type; an
    ``optional`` field is left out of the JSON when it is None rather than written as null."""
    return field(default=default, metadata={"parse": parse, "optional": optional})


def required(parse: Callable[[Any], Any] | None = None) -> Any:
    """A field every JSON object of the part must have."""
    return field(metadata={"parse": parse, "optional": False})


def tuple_of(parse: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    """Parse a JSON list item by item into a tuple."""
    return lambda values: tuple(parse(v) for v in _list(values))


def as_tuple(value: Any) -> tuple:
    """A JSON list as a tuple."""
    return tuple(_list(value))


def as_dict(value: Any) -> dict:
    """A JSON object as a dict (keys kept in order)."""
    return dict(_object(value))


def map_of(parse: Callable[[Any], Any]) -> Callable[[Any], dict]:
    """Parse every value of a JSON object (keys kept in order)."""
    return lambda values: {k: parse(v) for k, v in _object(values).items()}


def _list(value: Any) -> list:
    if not isinstance(value, list | tuple):
        raise RecordError(f"expected a JSON list, got {type(value).__name__}")
    return list(value)


def _object(value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise RecordError(f"expected a JSON object, got {type(value).__name__}")
    return value


def to_json(value: Any) -> Any:
    """The JSON value of a field: parts and configs as objects, tuples as lists."""
    if isinstance(value, Part):
        return value.to_json()
    if hasattr(value, "to_dict"):  # the cell config, the seed target
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Part:
    """One JSON object of a record, read by ``from_json`` and written back by ``to_json``.

    Attributes:
        extra: the keys of the object that the part does not declare, with their JSON values.
    """

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls: type[P], data: Any) -> P:
        """The part of a JSON object.

        Raises:
            RecordError: ``data`` is not an object, lacks a required field, or a field does not parse.
        """
        declared = {f.name: f for f in fields(cls) if f.name != "extra" and f.metadata.get("json", True)}
        values, extra = {}, {}
        for key, value in _object(data).items():
            spec = declared.get(key)
            if spec is None:
                extra[key] = value
                continue
            parse = spec.metadata.get("parse")
            try:
                values[key] = parse(value) if parse is not None and value is not None else value
            except (TypeError, ValueError) as exc:  # RecordError included
                raise RecordError(f"{key}: {exc}") from None
        try:
            return cls(**values, extra=extra)
        except TypeError as exc:  # a required field is missing
            raise RecordError(f"not a {cls.__name__}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the part: its declared fields, then ``extra``."""
        out = {}
        for spec in fields(self):
            if spec.name == "extra" or not spec.metadata.get("json", True):
                continue
            value = getattr(self, spec.name)
            if value is None and spec.metadata.get("optional"):
                continue
            out[spec.name] = to_json(value)
        return {**out, **self.extra}
