"""What every config section is built from: documented defaults, read-only values, the error."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType


def frozen(value):
    """Mappings as read-only views and lists as tuples, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(item) for item in value)
    return value


def doc(default, text: str):
    if isinstance(default, dict):  # unhashable, so dataclasses want a factory; the view itself is read-only
        view = frozen(default)
        return field(default_factory=lambda: view, metadata={"doc": text})
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata={"doc": text})


class ConfigError(ValueError):
    pass


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
