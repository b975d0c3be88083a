"""What a shopper's feedback on notifications changes: fatigue, and the channel they are reached on.

Every notification sent is noted (`sent`); feedback naming a note moves the decayed counts of its
channel and journey (an open or a click counts once per message), and an open or a click ends the
shopper's fatigue. Feedback naming no note is counted and changes nothing.

Fatigue: a marketing message counts as ignored once it is reported delivered (or dismissed) without an
open or click, so a shop that reports no feedback tires no one. After `fatigue_after` ignored in a row
(no open or click since), the least gap
between marketing messages becomes `fatigue_gap_ms` and doubles with each further one ignored (up to
`fatigue_max_gap_ms`); a message inside it is dropped, not deferred. The next open or click ends it.

Channel choice: the consented channels keep their preference order unless another channel has
clearly engaged the shopper more. Enough evidence is: at least `channel_min_sends` decayed sends on
both, and the lower bound of the other's Wilson interval (z = `channel_z`) above the upper bound of
the preferred one's. Caps giving way to the next channel are what gives a second channel its sends.

Attribution: a cart or purchase within `attribution_window_hours` after a marketing message is its
outcome if the message named the item; failing that, the last one that named the item's category.
"""
from __future__ import annotations

import math

from msgspec.structs import replace

from config.learning import FeedbackConfig
from state_schemas.events import FeedbackEvent
from state_schemas.outputs import Notification
from state_schemas.state import Engagement, Rates, SentNote
from state_schemas.units import DAY_MS

from .decay import decay_factor


def _moved(rates: Rates | None, now: int, half_life_ms: float, sends=0.0, opens=0.0, clicks=0.0) -> Rates:
    rates = rates or Rates(at=now)
    at = max(now, rates.at)
    factor = decay_factor(at - rates.at, half_life_ms)
    late = decay_factor(at - now, half_life_ms)  # feedback on an older message counts at its own time
    return Rates(rates.sends * factor + sends * late, rates.opens * factor + opens * late,
                 rates.clicks * factor + clicks * late, at)


def on_sent(engagement: Engagement, notification: Notification, config: FeedbackConfig,
            categories: tuple[str, ...] = ()) -> Engagement:
    """`categories`: of the items the notification names, where known."""
    half_life = config.rates_half_life_days * DAY_MS
    now, journey = notification.scheduled_at, notification.journey or notification.kind
    marketing = notification.kind == "marketing"
    note = SentNote(notification.channel, journey, now, marketing, items=notification.item_ids,
                    categories=tuple(dict.fromkeys(categories)), template=notification.template)
    sent = {**engagement.sent, notification.notification_id: note}
    if len(sent) > config.notes_kept:
        sent = dict(sorted(sent.items(), key=lambda kv: (kv[1].at, kv[0]))[-config.notes_kept:])
    return Engagement(
        sent=sent, ignored=engagement.ignored,
        channels={**engagement.channels, note.channel: _moved(engagement.channels.get(note.channel), now, half_life,
                                                                sends=1.0)},
        journeys={**engagement.journeys, journey: _moved(engagement.journeys.get(journey), now, half_life,
                                                         sends=1.0)})


def on_feedback(engagement: Engagement, event: FeedbackEvent,
                config: FeedbackConfig) -> tuple[Engagement, tuple[str, ...]]:
    """(The engagement after one feedback event on a notification, the counters it moves.)"""
    note = engagement.sent.get(event.notification_id) if event.notification_id else None
    if note is None:
        return engagement, ("feedback_unknown_notification",)
    counts = (f"feedback_{event.action}",)
    if event.action in ("delivered", "dismiss"):
        if not note.marketing or note.opened or note.ignored:
            return engagement, counts
        sent = {**engagement.sent, event.notification_id: replace(note, ignored=True)}
        return replace(engagement, sent=sent, ignored=engagement.ignored + 1), counts
    opened = event.action in ("open", "click") and not note.opened
    clicked = event.action == "click" and not note.clicked
    if not (opened or clicked):
        return engagement, counts
    half_life = config.rates_half_life_days * DAY_MS
    new_note = replace(note, opened=True, clicked=note.clicked or clicked)
    gains = dict(opens=1.0 if opened else 0.0, clicks=1.0 if clicked else 0.0)
    return Engagement(
        sent={**engagement.sent, event.notification_id: new_note}, ignored=0,
        channels={**engagement.channels, note.channel: _moved(engagement.channels.get(note.channel), note.at,
                                                                half_life, **gains)},
        journeys={**engagement.journeys, note.journey: _moved(engagement.journeys.get(note.journey), note.at,
                                                              half_life, **gains)}), counts


def attributed(engagement: Engagement, item_id: str, category_id: str | None, at: int,
               config: FeedbackConfig) -> tuple[str, SentNote, str] | None:
    """(Notification id, its note, "item" or "category") of the last marketing message sent within the
    attribution window before `at` that named the item, else the last that named its category; None if none."""
    window = config.attribution_window_hours * 3_600_000
    recent = sorted(((note.at, sent_id, note) for sent_id, note in engagement.sent.items()
                     if note.marketing and note.at <= at < note.at + window), reverse=True)
    for match, names in (("item", lambda note: item_id in note.items),
                         ("category", lambda note: category_id is not None and category_id in note.categories)):
        for _, sent_id, note in recent:
            if names(note):
                return sent_id, note, match
    return None


def marketing_gap(engagement: Engagement, min_gap_ms: int, config: FeedbackConfig) -> int:
    """The least gap between marketing messages now: the policy's, or longer for a fatigued shopper."""
    beyond = engagement.ignored - config.fatigue_after
    if beyond < 0:
        return min_gap_ms
    return max(min_gap_ms, min(config.fatigue_gap_ms * 2 ** min(beyond, 40), config.fatigue_max_gap_ms))


def wilson(opens: float, sends: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of an open rate."""
    if sends <= 0:
        return 0.0, 1.0
    rate = min(opens / sends, 1.0)
    centre = rate + z * z / (2 * sends)
    spread = z * math.sqrt(rate * (1 - rate) / sends + z * z / (4 * sends * sends))
    scale = 1 + z * z / sends
    # At a rate of 0 or 1 the bound on that side is exactly the rate; rounding would put it a hair inside.
    low = 0.0 if rate == 0 else max((centre - spread) / scale, 0.0)
    high = 1.0 if rate == 1 else min((centre + spread) / scale, 1.0)
    return low, high


def channel_order(engagement: Engagement, channels: tuple[str, ...], config: FeedbackConfig) -> tuple[str, ...]:
    """The channels in preference order, but the one that clearly engages the shopper more first."""
    if len(channels) < 2:
        return channels
    preferred = engagement.channels.get(channels[0])
    if preferred is None or preferred.sends < config.channel_min_sends:
        return channels
    _, preferred_high = wilson(preferred.opens, preferred.sends, config.channel_z)
    best, best_low = None, preferred_high
    for channel in channels[1:]:
        rates = engagement.channels.get(channel)
        if rates is None or rates.sends < config.channel_min_sends:
            continue
        low, _ = wilson(rates.opens, rates.sends, config.channel_z)
        if low > best_low:
            best, best_low = channel, low
    return channels if best is None else (best, *(c for c in channels if c != best))
