"""The one place that turns bytes into dicts and back, and checks fields with clear messages."""
from __future__ import annotations

from typing import Any

import orjson


class SchemaError(ValueError):
    """A record that does not match its schema; the message says which field and why."""


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def loads_object(raw: bytes | str, what: str) -> dict:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"malformed JSON in {what}: {exc}") from None
    if not isinstance(obj, dict):
        raise SchemaError(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def require_version(obj: dict, what: str, supported: int) -> int:
    version = obj.get("v", 1)
    if type(version) is not int or not 1 <= version <= supported:
        raise SchemaError(f"{what}: unsupported schema version {version!r} (this release reads 1..{supported})")
    return version


def text(obj: dict, name: str, what: str, *, required: bool = True, max_len: int = 256) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise SchemaError(f"{what}: missing required field '{name}'")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common in exported logs
    if not isinstance(value, str):
        raise SchemaError(f"{what}: field '{name}' must be a string, got {type(value).__name__}")
    if not value:
        if required:
            raise SchemaError(f"{what}: field '{name}' must not be empty")
        return None  # an empty optional field means absent, for every reader alike
    if len(value) > max_len:
        raise SchemaError(f"{what}: field '{name}' is longer than {max_len} characters")
    return value


def integer(obj: dict, name: str, what: str, *, required: bool = True) -> int | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise SchemaError(f"{what}: missing required field '{name}'")
        return None
    if type(value) is not int:
        raise SchemaError(f"{what}: field '{name}' must be an integer, got {type(value).__name__}")
    return value


def number(obj: dict, name: str, what: str, *, required: bool = False, minimum: float | None = None) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise SchemaError(f"{what}: missing required field '{name}'")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise SchemaError(f"{what}: field '{name}' must be a number, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise SchemaError(f"{what}: field '{name}' must be >= {minimum}, got {value}")
    return float(value)


def choice(obj: dict, name: str, what: str, allowed: frozenset[str]) -> str:
    value = text(obj, name, what)
    if value not in allowed:
        raise SchemaError(f"{what}: field '{name}' has unknown value {value!r} (expected one of {sorted(allowed)})")
    return value


def text_list(obj: dict, name: str, what: str, *, max_items: int = 100, required: bool = False) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        if required:
            raise SchemaError(f"{what}: missing required field '{name}'")
        return ()
    if not isinstance(value, list):
        raise SchemaError(f"{what}: field '{name}' must be a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise SchemaError(f"{what}: field '{name}' has more than {max_items} entries")
    out = []
    for entry in value:
        if isinstance(entry, int) and not isinstance(entry, bool):
            entry = str(entry)
        if not isinstance(entry, str) or not entry:
            raise SchemaError(f"{what}: field '{name}' must hold non-empty strings")
        out.append(entry)
    return tuple(out)
