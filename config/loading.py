"""Reading the one YAML config: unknown keys and wrongly typed values are rejected with the key's path.

`notify-engine config` prints the full default file (`render_defaults`). A config file only needs
the keys it changes.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path

import yaml

from .sections import ConfigError, JobConfig, frozen
from .templates import read as read_copy

# What a YAML reader calls the types a config value may have.
_YAML_NAMES = {tuple: "list", Mapping: "dict"}
# Values replaced as a whole by an override, never merged key by key.
_WHOLE_MAPPINGS = frozenset({"event_weights", "tests"})


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _WHOLE_MAPPINGS:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _value(expected, value, key: str):
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if expected is Mapping and isinstance(value, Mapping):
        return frozen(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)) or expected in _YAML_NAMES:
        name = _YAML_NAMES.get(expected, getattr(expected, "__name__", str(expected)))
        raise ConfigError(f"config key {key} must be {name}, got {value!r}")
    return value


def _build(cls, data, path: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path.rstrip('.') or 'config'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(path + k for k in unknown)}")
    values = {}
    for name, value in data.items():
        expected = hints[name]
        if dataclasses.is_dataclass(expected):
            values[name] = _build(expected, value, path + name + ".")
        else:
            values[name] = _value(expected, value, path + name)
    return cls(**values)


def _plain(value):
    """Config values as YAML writes them: tuples as lists, read-only mappings as dicts."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def to_dict(config: JobConfig) -> dict:
    return _plain(config)


def _with_copy_file(data: dict, base: Path) -> dict:
    """`content.templates_file`, read into `content.templates`: the copy travels with the config, so
    a cluster's TaskManagers need no copy of the file."""
    content = data.get("content") if isinstance(data, Mapping) else None
    name = content.get("templates_file") if isinstance(content, Mapping) else None
    if not name or not isinstance(name, str):
        return data
    path = base / name
    try:
        copy = read_copy(path)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"content.templates_file {str(path)!r} cannot be read: {exc}") from None
    return {**data, "content": {**content, "templates": copy}}


def apply_overrides(config: JobConfig, overrides: dict) -> JobConfig:
    merged = _merge(to_dict(config), overrides)
    return _build(JobConfig, _with_copy_file(merged, Path.cwd()) if "content" in overrides else merged, "").validate()


def with_changes(config: JobConfig, changes: list) -> JobConfig:
    """The config with each mapping of changes merged in turn, checked by its settings' own checks."""
    merged = to_dict(config)
    for change in changes:
        merged = _merge(merged, _plain(change))
    return _build(JobConfig, merged, "").checked()


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> JobConfig:
    data = {}
    if path is not None:
        data = _with_copy_file(yaml.safe_load(Path(path).read_text()) or {}, Path(path).resolve().parent)
    config = _build(JobConfig, data, "").validate()
    return config.with_overrides(overrides) if overrides else config


def render_defaults() -> str:
    """The default config as commented YAML: the one place a user reads what each key does."""
    defaults = JobConfig()
    lines = ["# notify-engine job config: every key, its default and what it means."]
    for section in dataclasses.fields(JobConfig):
        lines.append(f"{section.name}:")
        values = getattr(defaults, section.name)
        for item in dataclasses.fields(values):
            if item.metadata.get("internal"):
                continue
            rendered = yaml.safe_dump({item.name: _plain(getattr(values, item.name))}, default_flow_style=True,
                                      width=1000).strip()
            lines.append(f"  {rendered[1:-1]}  # {item.metadata.get('doc', '')}")
    return "\n".join(lines) + "\n"
