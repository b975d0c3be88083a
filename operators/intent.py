"""Purchase intent: P(the shopper carts or buys within the horizon), from their recent behaviour.

Features (`features`) come from a compact activity record the user context keeps (`observe`):
how long since the previous event, how many events in the last hours and days (decayed counts, by
behaviour), how deep the session is, how focused the shopper is on one category, and what this
event was. The model is logistic regression trained online by FTRL-Proximal (operators.ftrl), which
copes with features of very different scales and needs only two numbers per feature.

The baseline it must beat (`recency_frequency`) is the decayed event count itself: recent and
frequent shoppers buy.
"""
from __future__ import annotations

import math

from state_schemas.events import BehaviourEvent
from state_schemas.state import HistoryEntry, IntentActivity
from state_schemas.units import HOUR_MS

from .decay import decay_factor

BEHAVIOURS = ("view", "favourite", "cart", "purchase")  # the decayed counts, in this order (click counts as view)
SHORT_HALF_LIFE_MS, LONG_HALF_LIFE_MS = 1 * HOUR_MS, 24 * HOUR_MS
WEEK_HOURS = 24 * 7
FEATURES = ("bias", "hours_since_previous", "events_1h", "events_24h", "favourites_24h", "carts_24h",
            "purchases_24h", "carts_1h", "session_depth", "category_focus", "distinct_recent", "is_view",
            "is_favourite", "is_cart", "is_purchase", "repeat_item")


def _decayed(counts: tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(c * factor for c in counts)


def observe(activity: IntentActivity, event: BehaviourEvent, session_gap_ms: int) -> IntentActivity:
    """The activity after one behaviour event (a late event counts at the record's time)."""
    now = max(event.ts, activity.at)
    short = _decayed(activity.short, decay_factor(now - activity.at, SHORT_HALF_LIFE_MS))
    long = _decayed(activity.long, decay_factor(now - activity.at, LONG_HALF_LIFE_MS))
    kind = BEHAVIOURS.index(event.behavior) if event.behavior in BEHAVIOURS else 0
    short = tuple(c + (1.0 if i == kind else 0.0) for i, c in enumerate(short))
    long = tuple(c + (1.0 if i == kind else 0.0) for i, c in enumerate(long))
    new_session = activity.last_ts is None or event.ts - activity.last_ts >= session_gap_ms
    return IntentActivity(
        last_ts=max(event.ts, activity.last_ts or event.ts),
        session_start=event.ts if new_session else activity.session_start,
        session_events=1 if new_session else activity.session_events + 1,
        short=short, long=long, at=now)


def features(before: IntentActivity, after: IntentActivity, event: BehaviourEvent,
             history: tuple[HistoryEntry, ...], history_size: int) -> tuple[float, ...]:
    """The feature vector, in the order of FEATURES, right after `event`; `before` and `history` are the
    activity and the recent distinct items as they were before it."""
    hours_since = (event.ts - before.last_ts) / HOUR_MS if before.last_ts is not None else WEEK_HOURS
    categories = [entry.category_id for entry in history if entry.category_id] + (
        [event.category_id] if event.category_id else [])
    focus = max(categories.count(c) for c in set(categories)) / len(categories) if categories else 0.0
    kind = event.behavior if event.behavior in BEHAVIOURS else "view"
    repeat = event.item_id is not None and any(entry.item_id == event.item_id for entry in history)
    return (1.0, math.log1p(max(hours_since, 0.0)) / math.log1p(WEEK_HOURS),
            math.log1p(sum(after.short)), math.log1p(sum(after.long)), math.log1p(after.long[1]),
            math.log1p(after.long[2]), math.log1p(after.long[3]), math.log1p(after.short[2]),
            math.log1p(after.session_events), focus, len(history) / history_size,
            *(1.0 if kind == name else 0.0 for name in BEHAVIOURS), 1.0 if repeat else 0.0)


def recency_frequency(after: IntentActivity) -> float:
    """The baseline: events in the last day, decayed (half-life a day)."""
    return sum(after.long)


