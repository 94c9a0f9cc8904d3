"""Typed settings: dataclasses whose fields carry their help text and whose values are
coerced from plain data (TOML, JSON, a Tune config) by one rule, so a run's config
(`trainables.config.TrainConfig`) and a study's tables (`study.spec`) are checked alike and
their errors read alike: one line naming the field, what it takes and what it is for.

Files written by an earlier version (a checkpoint's or a trial's config, study.toml) are read
through `upgrade`: a field added since takes its `legacy` value (`setting`), so an
experiment resumes and reports as it ran."""

from __future__ import annotations

import copy
import dataclasses
import functools
import numbers
import os
import types
import typing
import warnings
from dataclasses import field
from typing import Any, Literal, get_args, get_origin


def setting(help: str, *, legacy: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field with its help text (shown by the CLI, the README and study.toml).

    The upgrade rule, so that an experiment written before a field existed resumes and
    reports as it ran: a new field's default reproduces the behaviour before it existed, or
    the field declares `legacy`, the value it takes when a config or spec written before it
    existed is read back (`upgrade`); a new study gets the default."""
    metadata = {"help": help} if legacy is dataclasses.MISSING else {"help": help,
                                                                      "legacy": legacy}
    return field(metadata=metadata, **kwargs)


def upgrade(cls: type, saved: dict[str, Any]) -> dict[str, Any]:
    """`saved`, the fields of `cls` as an earlier version wrote them (a checkpoint's or a
    trial's config, a table of study.toml), as this version reads them: a field it lacks takes
    its `legacy` value where it declares one (else its default, when built), and a key that
    is no field any more is dropped, with a warning naming it, rather than refusing the file."""
    fields = dataclasses.fields(cls)
    dropped = sorted(set(saved) - {f.name for f in fields})
    if dropped:
        warnings.warn(f"ignored {cls.__name__} setting(s) {', '.join(dropped)} of a file "
                      "written by an earlier version: this version no longer has them",
                      stacklevel=2)
    legacy = {f.name: copy.deepcopy(f.metadata["legacy"]) for f in fields
              if "legacy" in f.metadata and f.name not in saved}
    return {**{k: v for k, v in saved.items() if k not in dropped}, **legacy}


def field_help(cls: type) -> dict[str, str]:
    """Each field's help text."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}


def build(cls: type, given: dict[str, Any]) -> Any:
    """An instance of `cls` from `given` (coerced; unset fields take their defaults).
    ValueError for a key that is no field, or a value of the wrong type."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}: remove them "
                         f"(known fields: {', '.join(known)})")
    return cls(**{name: coerce(cls, name, value) for name, value in given.items()})


def coerce(cls: type, name: str, value: Any) -> Any:
    """`value` checked against the type of `cls`'s field `name` (int, float, str, bool,
    Literal choices, lists of them, unions with None); numpy scalars and tuples accepted.
    ValueError names the field and the fix (its help text)."""
    field_type = field_types(cls)[name]
    try:
        return _as(field_type, value)
    except _Choice as err:
        raise ValueError(f"{name} must be one of {', '.join(err.allowed)}; got {err.value!r}") \
            from None
    except TypeError:
        help_text = field_help(cls)[name]
        if value is None:
            raise ValueError(f"{name} may not be null; give a value ({help_text})") from None
        raise ValueError(f"{name} has the wrong type ({type(value).__name__}: {value!r}); "
                         f"expected {_type_text(field_type)}: {help_text}") from None


class _Choice(Exception):
    def __init__(self, value: Any, allowed: tuple[str, ...]) -> None:
        self.value, self.allowed = value, allowed


def _as(kind: Any, value: Any) -> Any:
    """`value` as type `kind`, or TypeError (_Choice for a value outside a Literal)."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise TypeError
        for option in (a for a in args if a is not type(None)):
            try:
                return _as(option, value)
            except TypeError:
                continue
        raise TypeError
    if origin is Literal:
        if value is None:
            raise TypeError
        if value not in args:
            raise _Choice(value, args)
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise TypeError
        return [_as(args[0], item) for item in value]
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind in (int, float):
        return _number(value, kind)
    if kind is str:
        return _string(value)
    raise TypeError(f"unsupported field type {kind!r}")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once (`from __future__ import annotations` makes
    them strings)."""
    return typing.get_type_hints(cls)


def _type_text(kind: Any) -> str:
    return getattr(kind, "__name__", None) if get_origin(kind) is None else str(kind).replace(
        "typing.", "")



def _number(value: Any, kind: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError
    if kind is int:
        if isinstance(value, numbers.Integral):
            return int(value)
        if float(value).is_integer():
            return int(value)
        raise TypeError
    return float(value)


def _string(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise TypeError
    return value
