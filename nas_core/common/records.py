"""Frozen records that cross a stage boundary, with one ``from_dict`` / ``to_dict`` for all.

A record is a frozen dataclass; nested records, lists and mappings of records convert by their
type hints, so a reader gets attributes, never a dict read by string keys (the shape of
``optuna.trial.FrozenTrial``). Field metadata: ``key`` names the JSON key when it is not the
field's name (``from`` is a Python keyword); ``omit_none`` leaves a field out of the JSON while
it is None (a block that older files, or other tasks, do not have)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Self


def help_text(text: str, **more: Any) -> dict[str, Any]:
    """A dataclass field's metadata: the help shown by the CLI flag and the app's widget."""
    return {"help": text, **more}


def optional(default: Any = None, **metadata: Any) -> Any:
    """A field written to JSON only while it has a value."""
    return dataclasses.field(default=default, metadata={"omit_none": True, **metadata})


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)``: non-finite floats become null, anything else its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(item, v) for v in value]
    if origin is dict and isinstance(value, Mapping):
        _, item = typing.get_args(hint) or (Any, Any)
        return {k: _convert(item, v) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record) and isinstance(value, Mapping):
        return hint.from_dict(value)
    if isinstance(hint, type) and issubclass(hint, str) and hint is not str:
        return hint(value)  # a StrEnum: the stored text becomes its member
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Record:
    """Mixin for frozen dataclasses: typed reading and writing of their JSON form."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        hints = _hints(cls)  # type: ignore[arg-type]
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("key", f.name)
            if key in data:
                values[f.name] = _convert(hints[f.name], data[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.metadata.get("key", f.name)] = _plain(value)
        return out
