"""Purchase intent: P(the shopper carts or buys within the horizon), from their recent behaviour.

Features (`features`) come from a compact activity record the user context keeps (`observe`):
how long since the previous event, how many events in the last hours and days (decayed counts, by
behaviour), how deep the session is, how focused the shopper is on one category, and what this
event was. The model is logistic regression trained online by FTRL-Proximal (operators.ftrl), which
copes with features of very different scales and needs only two numbers per feature.

The baseline it must beat (`recency_frequency`) is the decayed event count itself: recent and
frequent shoppers buy.

In the job (`track`, `learn_and_score`): the user context keeps the activity and the shopper's examples awaiting
their label; a label is known when a cart or purchase comes within the horizon (positive) or the horizon passes
(negative, on the shopper's next event or a timer). The first behaviour event of each slot (an hour of a day's
horizon) and each cart or purchase send their features, with the labels now known, to the one model (one
instance, `IntentModel`), which learns the labels, then scores the event (test, then train) and tells the push
policy, which keeps and serves the shopper's intent; other events send only the labels they settle, if any.
"""
from __future__ import annotations

import math

from msgspec.structs import replace

from config.learning import IntentConfig
from state_schemas.events import BehaviourEvent
from state_schemas.hops import IntentExample, IntentScore
from state_schemas.state import HistoryEntry, IntentActivity, IntentModel, PendingIntent
from state_schemas.units import HOUR_MS

from . import ftrl
from .decay import decay_factor
from .steps import Step, StepContext

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


TARGETS = frozenset({"cart", "purchase"})
FEATURE_DIGITS = 4  # features are kept in state until labelled: rounded, they take half the bytes


def horizon_ms(config: IntentConfig) -> int:
    return int(config.horizon_hours * HOUR_MS)


def slot_ms(config: IntentConfig) -> int:
    """A 24th of the horizon (an hour of a day's horizon): examples kept and timers set at most once per slot."""
    return max(horizon_ms(config) // 24, 1)


def labelled(pending: tuple[PendingIntent, ...], event_ts: int, target: bool,
             config: IntentConfig) -> tuple[tuple[PendingIntent, ...], tuple[tuple[tuple[float, ...], bool], ...]]:
    """(the examples still unlabelled, the (features, label) pairs now known) at a shopper's event: those whose
    horizon passed are negative; a cart or purchase makes those before it within the horizon positive."""
    window = horizon_ms(config)
    expired = [(p.x, False) for p in pending if p.ts + window <= event_ts]
    open_ = [p for p in pending if p.ts + window > event_ts]
    if not target:
        return tuple(open_), tuple(expired)
    positive = [(p.x, True) for p in open_ if p.ts < event_ts]
    return tuple(p for p in open_ if p.ts >= event_ts), tuple(expired + positive)


def track(activity: IntentActivity, pending: tuple[PendingIntent, ...], event: BehaviourEvent,
          history: tuple[HistoryEntry, ...], history_size: int, session_gap_ms: int, config: IntentConfig):
    """One behaviour event of a shopper: (activity, pending examples, the message to the model or None). `history`
    is the shopper's recent items before the event. The first event of each slot (an hour) is scored and kept to
    learn from (an active shopper's day would otherwise crowd out their older examples), at most `pending_per_user`;
    so is a cart or purchase. Other events only move the activity, and send the labels they settle if any: scoring
    every event cost a hop to the model and back, a push-policy state round trip and a Redis write each, and the
    served intent is then at most a slot old, or as fresh as the shopper's last cart."""
    pending, learned = labelled(pending, event.ts, event.behavior in TARGETS, config)
    after = observe(activity, event, session_gap_ms)
    slot = slot_ms(config)
    new_slot = not pending or pending[-1].ts // slot != event.ts // slot
    if not new_slot and event.behavior not in TARGETS:
        return after, pending, IntentExample(user_id=event.user_id, ts=event.ts, learned=learned) if learned else None
    x = tuple(round(value, FEATURE_DIGITS) for value in features(activity, after, event, history, history_size))
    if new_slot:
        pending = tuple(sorted(pending + (PendingIntent(event.ts, x),), key=lambda p: p.ts))[-config.pending_per_user:]
    return after, pending, IntentExample(user_id=event.user_id, ts=event.ts, x=x, learned=learned)


def next_expiry(pending: tuple[PendingIntent, ...], config: IntentConfig) -> int | None:
    """When the oldest waiting example's horizon passes, rounded up to a slot: a timer per shopper and slot."""
    if not pending:
        return None
    due, slot = min(p.ts for p in pending) + horizon_ms(config), slot_ms(config)
    return -(-due // slot) * slot


def learn_and_score(state: IntentModel, message: IntentExample, context: StepContext) -> Step:
    """The one model: learn the labels the shopper's event made known, then score the event (test, then train:
    the score never saw its own label)."""
    config = context.config.intent
    model = state.model
    for x, label in message.learned:
        model = ftrl.learn(model, x, label, config)
    learned = ("intent_examples_learned",) * len(message.learned)
    if message.x is None:
        return Step(state=replace(state, model=model) if message.learned else state, counts=learned)
    score = IntentScore(user_id=message.user_id, ts=message.ts, probability=round(ftrl.predict(model, message.x,
                                                                                                 config), 6))
    return Step(state=replace(state, model=model) if message.learned else state, emit=(score,),
                counts=learned + ("intent_scored",))
