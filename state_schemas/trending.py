"""Windowed aggregates the job writes to Redis: trending lists and behaviour counts.

Sent between the window operators and to the Redis writer as versioned JSON, like every other
record; the window operators hold no Python state of their own beyond a window's pending rows.
"""
from __future__ import annotations

import typing
from typing import ClassVar

import msgspec

from .codec import EpochMs, NonEmptyText, TextRecord
from .events import Behaviour

GLOBAL = "global"
# Items whose events name no category: ranked as a group of their own so they still compete globally.
UNCATEGORISED = "uncategorised"
CATEGORY_PREFIX = "cat:"
USER_COUNTS_PREFIX = "user:"
CATEGORY_COUNTS_PREFIX = "category:"
_MAX_SCOPE = 300  # a prefix plus a 256-character id


def _has_id(scope: str, prefix: str) -> bool:
    return scope.startswith(prefix) and len(scope) > len(prefix)


def _is_trending_scope(scope: str) -> bool:
    return scope in (GLOBAL, UNCATEGORISED) or _has_id(scope, CATEGORY_PREFIX)


def _is_counts_scope(scope: str) -> bool:
    return _has_id(scope, USER_COUNTS_PREFIX) or _has_id(scope, CATEGORY_COUNTS_PREFIX)


Scope = typing.Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_SCOPE)]
Score = typing.Annotated[float, msgspec.Meta(ge=0.0)]
Count = typing.Annotated[int, msgspec.Meta(ge=1)]


class TrendingList(TextRecord, frozen=True):
    """The top items of one sliding window [window_end - size, window_end), best first."""

    WHAT: ClassVar[str] = "trending list"

    scope: Scope  # "global", "uncategorised" or "cat:<category id>"
    window_end: EpochMs = msgspec.field(name="end")
    # (item id, weighted count); empty windows never fire
    items: typing.Annotated[tuple[tuple[NonEmptyText, Score], ...], msgspec.Meta(min_length=1)]
    v: int = 1

    def __post_init__(self):
        self._check_version()
        if not _is_trending_scope(self.scope):
            raise ValueError(f"{self.WHAT}: scope {self.scope!r} is not one this record can have")
        if len({item for item, _ in self.items}) != len(self.items):
            raise ValueError(f"{self.WHAT} is damaged: an item is listed twice")


class BehaviourCounts(TextRecord, frozen=True):
    """Events per behaviour in one tumbling window [window_start, window_end)."""

    WHAT: ClassVar[str] = "behaviour counts"

    scope: Scope  # "user:<pseudonym>" (never the raw user id) or "category:<category id>"
    window_start: EpochMs = msgspec.field(name="start")
    window_end: EpochMs = msgspec.field(name="end")
    # behaviour -> events; behaviours that did not happen are absent
    counts: typing.Annotated[dict[Behaviour, Count], msgspec.Meta(min_length=1)]
    v: int = 1

    def __post_init__(self):
        self._check_version()
        if not _is_counts_scope(self.scope):
            raise ValueError(f"{self.WHAT}: scope {self.scope!r} is not one this record can have")
        if self.window_start >= self.window_end:
            raise ValueError(f"{self.WHAT} is damaged: window start {self.window_start} is not before its end "
                             f"{self.window_end}")


class PendingRanks(TextRecord, frozen=True):
    """Scope-keyed state of the list assembler: the ranked rows of windows whose list is not out yet."""

    WHAT: ClassVar[str] = "pending ranks state"
    DAMAGE_WORDS: ClassVar[bool] = True

    windows: dict[int, tuple[tuple[str, float], ...]] = {}  # window end -> (item, score) as they arrived
    v: int = 1

    def __post_init__(self):
        self._check_version()

    @classmethod
    def decode(cls, raw: bytes | str | None) -> "PendingRanks":
        return cls() if raw is None else super().decode(raw)
