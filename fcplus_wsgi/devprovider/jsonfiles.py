"""Reading the development provider's JSON files (clients, identities) into dataclasses.

Both files are lists of objects whose keys are a dataclass's field names; a mistake must
name the file, the item and the field, never end in a TypeError from a constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def record_from_dict(cls: type[T], data: Any, source: str, required: Sequence[str]) -> T:
    """Build `cls` from a JSON object, refusing unknown and missing fields by name."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} is not a JSON object")
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{source} has unknown field {unknown[0]!r} (allowed: {', '.join(names)})")
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{source} lacks the required field {missing[0]!r}")
    try:
        return cls(**dict(data))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def records_from_json(cls: type[T], data: Any, source: str, kind: str, required: Sequence[str]) -> list[T]:
    """Build a list of `cls` from a non-empty JSON list of objects."""
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{source} must be a non-empty JSON list of {kind} objects")
    return [record_from_dict(cls, item, f"{source} item #{index}", required) for index, item in enumerate(data)]
