"""Windowed aggregates the job writes to Redis: trending lists and behaviour counts.

Sent between window operators and to the Redis writer as versioned JSON, like the keyed state
records in `state.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import codec
from .codec import SchemaError
from .events import BEHAVIOURS

GLOBAL = "global"
# Items whose events name no category: ranked as a group of their own so they still compete globally.
UNCATEGORISED = "uncategorised"
CATEGORY_PREFIX = "cat:"
USER_COUNTS_PREFIX = "user:"
CATEGORY_COUNTS_PREFIX = "category:"
_MAX_SCOPE = 300  # a prefix plus a 256-character id


def _has_id(scope: str, prefix: str) -> bool:
    return scope.startswith(prefix) and len(scope) > len(prefix)


def _scope(obj: dict, what: str, valid) -> str:
    scope = codec.text(obj, "scope", what, max_len=_MAX_SCOPE)
    if not valid(scope):
        raise SchemaError(f"{what}: scope {scope!r} is not one this record can have")
    return scope


def _is_trending_scope(scope: str) -> bool:
    return scope in (GLOBAL, UNCATEGORISED) or _has_id(scope, CATEGORY_PREFIX)


def _is_counts_scope(scope: str) -> bool:
    return _has_id(scope, USER_COUNTS_PREFIX) or _has_id(scope, CATEGORY_COUNTS_PREFIX)


@dataclass(frozen=True, slots=True)
class TrendingList:
    """The top items of one sliding window [window_end - size, window_end), best first."""

    VERSION = 1

    scope: str  # "global", "uncategorised" or "cat:<category id>"
    window_end: int
    items: tuple[tuple[str, float], ...]  # (item id, weighted count)

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "scope": self.scope, "end": self.window_end,
                                "items": [[item, score] for item, score in self.items]})

    @classmethod
    def decode(cls, raw: str) -> "TrendingList":
        what = "trending list"
        obj = codec.loads_object(raw, what)
        codec.require_version(obj, what, cls.VERSION)
        scope = _scope(obj, what, _is_trending_scope)
        window_end = codec.integer(obj, "end", what)
        entries = obj.get("items")
        if not isinstance(entries, list) or not entries:
            raise SchemaError(f"{what} is damaged: 'items' must be a non-empty list")  # empty windows never fire
        items = []
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and entry[0]
                    and type(entry[1]) in (int, float) and math.isfinite(entry[1]) and entry[1] >= 0):
                raise SchemaError(f"{what} is damaged: each item must be [item id, score >= 0], got {entry!r}")
            items.append((entry[0], float(entry[1])))
        if len({item for item, _ in items}) != len(items):
            raise SchemaError(f"{what} is damaged: an item is listed twice")
        return cls(scope=scope, window_end=window_end, items=tuple(items))


@dataclass(frozen=True, slots=True)
class BehaviourCounts:
    """Events per behaviour in one tumbling window [window_start, window_end)."""

    VERSION = 1

    scope: str  # "user:<pseudonym>" (never the raw user id) or "category:<category id>"
    window_start: int
    window_end: int
    counts: dict[str, int]  # behaviour -> events; behaviours that did not happen are absent

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "scope": self.scope, "start": self.window_start,
                                "end": self.window_end, "counts": self.counts})

    @classmethod
    def decode(cls, raw: str) -> "BehaviourCounts":
        what = "behaviour counts"
        obj = codec.loads_object(raw, what)
        codec.require_version(obj, what, cls.VERSION)
        scope = _scope(obj, what, _is_counts_scope)
        start, end = codec.integer(obj, "start", what), codec.integer(obj, "end", what)
        if start >= end:
            raise SchemaError(f"{what} is damaged: window start {start} is not before its end {end}")
        counts = obj.get("counts")
        if not isinstance(counts, dict) or not counts:
            raise SchemaError(f"{what} is damaged: 'counts' must be a non-empty object")
        for behaviour, count in counts.items():
            if behaviour not in BEHAVIOURS or type(count) is not int or count < 1:
                raise SchemaError(f"{what} is damaged: {behaviour!r}: {count!r} is not a behaviour with a count >= 1")
        return cls(scope=scope, window_start=start, window_end=end, counts=counts)
