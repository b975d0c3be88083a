"""Trending items and behaviour counts over event-time windows.

The rules the Flink windows follow (weights, category, ranking, scopes), and `TrendingWindows`:
the same sliding windows in memory for Flink-free replays.
Windows are Flink's with offset 0: sliding windows [start, start + window_ms) with start a
multiple of slide_ms, tumbling windows [start, start + size) with start a multiple of size.
"""
from __future__ import annotations

import heapq
import math
from typing import Iterable, Mapping

from state_schemas.trending import (CATEGORY_COUNTS_PREFIX, CATEGORY_PREFIX, UNCATEGORISED, USER_COUNTS_PREFIX,
                                    PendingRanks, TrendingList)

from .privacy import pseudonym


def weight(behavior: str, item_id: str | None, weights: Mapping) -> float:
    """An event's share of its item's trending score: 0 for searches (no item) and unweighted behaviours."""
    return float(weights.get(behavior, 0.0)) if item_id else 0.0


def merge_category(a: str | None, b: str | None) -> str | None:
    """The category an item ranks under in a window: the smallest one its events name, so the
    result does not depend on arrival order when (rarely) one item's events disagree."""
    return min(a, b) if a and b else (a or b)


def top_items(scored: Iterable[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    """The n best (item, score) pairs of distinct items: score descending, then item id ascending,
    so equal scores rank the same in every run and in every reader."""
    return heapq.nsmallest(n, scored, key=lambda pair: (-pair[1], pair[0]))


def last_window_end(now: int, window_ms: int, slide_ms: int) -> int:
    """End of the last sliding window that has ended at or before `now`."""
    return now - (now - window_ms) % slide_ms


def category_scope(category_id: str | None) -> str:
    return CATEGORY_PREFIX + category_id if category_id else UNCATEGORISED


def user_counts_scope(user_id: str, pseudonym_key: str) -> str:
    return USER_COUNTS_PREFIX + pseudonym(user_id, pseudonym_key)


def category_counts_scope(category_id: str) -> str:
    return CATEGORY_COUNTS_PREFIX + category_id


def category_then_global(category_list, global_list) -> list[tuple[str, float]]:
    """What the scorer sees as trending for a trigger: its category's list first, then the global
    list's other items (an item in both keeps its category score)."""
    merged: dict[str, float] = {}
    for item, score in [*category_list, *global_list]:
        merged.setdefault(item, score)
    return list(merged.items())


def ranked_members(members, n: int) -> list[tuple[str, float]]:
    """A trending set's (member, score) pairs as read from Redis, ranked as `top_items` ranks."""
    return top_items(((m.decode() if isinstance(m, bytes) else m, float(s)) for m, s in members), n)


class TrendingWindows:
    """What the job's trending windows output, computed in memory.

    Events go into panes of gcd(window_ms, slide_ms) so every window is a whole number of panes;
    only panes a later `top` may still ask for are kept: the last window's, and those of `kept_ms` before it
    (a decision asks for the window of its own time, which may be behind the newest event).
    """

    def __init__(self, window_ms: int, slide_ms: int, weights: Mapping, kept_ms: int = 0):
        if not 0 < slide_ms <= window_ms:
            raise ValueError(f"need 0 < slide_ms <= window_ms, got slide {slide_ms}, window {window_ms}")
        self._window, self._slide, self._kept = window_ms, slide_ms, kept_ms
        self._pane = math.gcd(window_ms, slide_ms)
        self._weights = dict(weights)
        self._panes: dict[int, dict[str, tuple[float, str | None]]] = {}  # pane -> item -> (score, category)
        self._horizon: int | None = None  # the oldest window start a later `top` may ask for

    def observe(self, item_id: str | None, category_id: str | None, behavior: str, ts: int) -> None:
        share = weight(behavior, item_id, self._weights)
        # An event older than the horizon is in no window that can still be asked for.
        if share <= 0 or (self._horizon is not None and ts < self._horizon):
            return
        pane = self._panes.setdefault(ts // self._pane, {})
        score, category = pane.get(item_id, (0.0, None))
        pane[item_id] = (score + share, merge_category(category, category_id))
        horizon = last_window_end(ts, self._window, self._slide) - self._window - self._kept
        if self._horizon is None or horizon > self._horizon:
            self._horizon = horizon
            first = horizon // self._pane
            for stale in [p for p in self._panes if p < first]:
                del self._panes[stale]

    def top(self, now: int, n: int, category: str | None = None) -> list[tuple[str, float]]:
        """The top n of the last window ended at or before `now`: globally, or of one category.
        `now` may not be so far behind the newest observed event that this window was dropped."""
        totals = self._totals(now)
        return top_items(((item, score) for item, (score, item_category) in totals.items()
                          if category is None or item_category == category), n)

    def tops(self, now: int, n: int) -> dict[str | None, list[tuple[str, float]]]:
        """Every category's top n (and the global one, under None) of that window, in one pass."""
        totals = self._totals(now)
        grouped: dict[str | None, list[tuple[str, float]]] = {None: []}
        for item, (score, item_category) in totals.items():
            grouped[None].append((item, score))
            if item_category is not None:
                grouped.setdefault(item_category, []).append((item, score))
        return {scope: top_items(scored, n) for scope, scored in grouped.items()}

    def _totals(self, now: int) -> dict[str, tuple[float, str | None]]:
        end = last_window_end(now, self._window, self._slide)
        start = end - self._window
        if self._horizon is not None and start < self._horizon:
            raise ValueError(f"window [{start}, {end}) is older than the windows kept (from {self._horizon})")
        first, stop = start // self._pane, end // self._pane
        totals: dict[str, tuple[float, str | None]] = {}
        for index, pane in self._panes.items():
            if first <= index < stop:
                for item, (score, item_category) in pane.items():
                    total, seen = totals.get(item, (0.0, None))
                    totals[item] = (total + score, merge_category(seen, item_category))
        return totals


def collect_ranked(pending: PendingRanks, window_end: int, item: str, score: float) -> PendingRanks:
    """One ranked row of a window's list; the rows of a window arrive together, when the watermark passes it."""
    rows = pending.windows.get(window_end, ())
    return PendingRanks(windows={**pending.windows, window_end: rows + ((item, score),)})


def complete_lists(pending: PendingRanks, scope: str, watermark: int) -> tuple[PendingRanks | None, list[TrendingList]]:
    """The lists of every window the watermark has passed, best first; None once nothing is pending."""
    done = sorted(end for end in pending.windows if end <= watermark)
    lists = [TrendingList(scope=scope, window_end=end,
                          items=tuple(top_items(pending.windows[end], len(pending.windows[end])))) for end in done]
    left = {end: rows for end, rows in pending.windows.items() if end > watermark}
    return (PendingRanks(windows=left) if left else None), lists
