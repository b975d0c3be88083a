"""Whether a message goes out, and what it says: caps and channels, then copy per journey.

Marketing is gated by the shopper's opt-out and consent, the daily, 7-day and per-channel caps
(local days of the shopper's zone) and the least gap between sends; the entries due at one instant
go as one message, a digest when there are several. Transactional messages have their own daily
cap, are never blocked by the marketing caps, and are deduplicated per order and status.
"""
from __future__ import annotations

from dataclasses import dataclass

from msgspec.structs import replace

from config import JobConfig
from state_schemas.events import OrderEvent
from state_schemas.outputs import Notification
from state_schemas.state import Candidate, ItemCard, MarketingSend, Planned, PushState, RecentSend

from . import copy, directory, engagement, volume
from .directory import Reach
from .journeys import BACK_IN_STOCK, CART, PRICE_DROP, RECOMMENDATION, REVIEW
from .privacy import notification_id, pseudonym

RECENT_ITEMS_KEPT = 100
TRANSACTIONAL_KEYS_KEPT = 100
# Order statuses that notify the shopper (placed and paid: the shop's own confirmation covers them);
# each has a template of its own name in the copy (`content.templates`).
NOTIFIED_STATUSES = frozenset({"shipped", "out_for_delivery", "delivered", "cancelled", "refunded", "price_drop"})
# A digest names items in this order: what the shopper chose first, what they were told of, then picks.
DIGEST_ORDER = (CART, PRICE_DROP, BACK_IN_STOCK, REVIEW, RECOMMENDATION)
TEMPLATE = {CART: "cart_reminder", PRICE_DROP: "watched_price_drop", BACK_IN_STOCK: "back_in_stock"}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one candidate message goes out: the new state, and the notification or why not."""

    state: PushState
    notification: Notification | None = None
    suppressed: str | None = None  # the reason, for counters


def _roll_marketing_day(state: PushState, day: int) -> PushState:
    if day <= state.marketing_day:  # a late event counts against the current day, never reopens an old one
        return state
    return replace(state, marketing_day=day, marketing_today=0)


def _roll_transactional_day(state: PushState, day: int) -> PushState:
    if day <= state.transactional_day:
        return state
    return replace(state, transactional_day=day, transactional_today=0)


def _under_channel_caps(channel: str, week: tuple, day: int, policy) -> bool:
    per_day, per_week = policy.channel_caps[channel]
    on_channel = [sent.day for sent in week if sent.channel == channel]
    return on_channel.count(day) < per_day and len(on_channel) < per_week


def marketing_gate(state: PushState, now: int, who: Reach, config: JobConfig) -> tuple[PushState, str, str | None]:
    """(state with its day rolled, the channel to use or "", why not if nothing may go now)."""
    day = directory.local_day(now, who.time_zone)
    state, policy = _roll_marketing_day(state, day), config.policy
    if who.opted_out:
        return state, "", "opted_out"
    channels = directory.channels_for(who, "marketing", config.directory)
    if not channels:
        return state, "", "no_marketing_channel"
    if state.marketing_today >= policy.daily_marketing_cap:
        return state, "", "daily_cap"
    week = tuple(sent for sent in state.marketing_sends if sent.day > day - 7)
    if len(week) >= policy.weekly_marketing_cap:
        return state, "", "weekly_cap"
    channels = engagement.channel_order(state.engagement, channels, config.feedback)
    channel = next((c for c in channels if _under_channel_caps(c, week, day, policy)), None)
    if channel is None:
        return state, "", "channel_cap"
    if state.last_marketing_ts is not None and now - state.last_marketing_ts < policy.min_marketing_gap_ms:
        return state, "", "min_gap"
    if state.last_marketing_ts is not None and now - state.last_marketing_ts < engagement.marketing_gap(
            state.engagement, policy.min_marketing_gap_ms, config.feedback):
        return state, "", "fatigue"
    if (day < state.marketing_day and state.last_marketing_ts is not None
            and directory.local_day(state.last_marketing_ts, who.time_zone) >= day):
        # A late trigger from a day the count has left: sends go out in event-time order (min_gap),
        # so that day is known to be unused only if the last send was before it.
        return state, "", "late_day"
    return state, channel, None


def _items(entries: list[Planned], config: JobConfig) -> list[Candidate]:
    """The items the message names, each once, in digest order; a recommendation's scored at or above min_score."""
    chosen, seen = [], set()
    for entry in sorted(entries, key=lambda e: DIGEST_ORDER.index(e.journey)):
        picks = [c for c in entry.candidates if entry.journey != RECOMMENDATION or c.score >= config.policy.min_score]
        for pick in picks[: config.policy.items_per_notification]:
            if pick.item_id not in seen:
                seen.add(pick.item_id)
                chosen.append(pick)
    return chosen[: config.journeys.digest_items if len(entries) > 1 else config.policy.items_per_notification]


def _words(entries: list[Planned], chosen: list[Candidate], locale: str, channel: str, config: JobConfig):
    best, journey = chosen[0], entries[0].journey
    values = dict(first=best.title or copy.word("an_item", locale, config), count=len(chosen),
                  first_price=copy.price(best.price, locale, config), others=len(chosen) - 1)
    if len(entries) > 1:
        return copy.render("digest", locale, channel, config, **values)
    if journey == RECOMMENDATION:
        return copy.render("recommendation_one" if len(chosen) == 1 else "recommendation_many", locale, channel,
                           config, **values)
    if journey == REVIEW:
        order = entries[0].order
        return copy.render("review_request", locale, channel, config, order=order.order_id,
                           carrier=order.carrier or copy.word("our_courier", locale, config),
                           first=best.title or copy.word("your_item", locale, config),
                           first_price=values["first_price"])
    if journey == PRICE_DROP:
        was = entries[0].was_price
        drop = was - best.price if was is not None and best.price is not None else None
        return copy.render(TEMPLATE[journey], locale, channel, config, **values,
                           was_price=copy.price(was, locale, config), drop=copy.price(drop, locale, config))
    return copy.render(TEMPLATE[journey], locale, channel, config, **values)


def decide_marketing(state: PushState, entries: list[Planned], now: int, created_at: int, user: str, who: Reach,
                     config: JobConfig) -> Decision:
    """The entries due at `now` (event time, so caps replay deterministically) as one message, or why not;
    `created_at` is the wall clock."""
    state, channel, suppressed = marketing_gate(state, now, who, config)
    if suppressed:
        return Decision(state, suppressed=suppressed)
    if state.intent is not None and state.intent < config.policy.min_intent:
        return Decision(state, suppressed="low_intent")
    chosen = _items(entries, config)
    if not chosen:
        return Decision(state, suppressed="no_candidate")
    weekly = volume.target(state.segment, config.policy)
    controlled = weekly > 0
    day = directory.local_day(now, who.time_zone)
    decided = volume.this_week(state.decided_days, day) + (day,) if controlled else ()
    if controlled and chosen[0].score < state.send_threshold:
        threshold = volume.moved(state.send_threshold, False, len(decided), weekly, config.policy)
        return Decision(replace(state, send_threshold=threshold, decided_days=decided), suppressed="below_threshold")
    item_ids = tuple(entry.item_id for entry in chosen)
    sources = sorted(f"{entry.journey}:{entry.source}:{entry.reminder}" for entry in entries)
    # Several entries naming one item (two carts of it, say) are one message of the leading journey.
    lead = min(entries, key=lambda entry: DIGEST_ORDER.index(entry.journey))
    single = lead if len(chosen) == 1 or len(entries) == 1 else None
    sent_id = notification_id(user, lead.event.event_id if len(entries) == 1 and lead.event else "+".join(sources),
                              "marketing")
    locale = copy.locale_for(who.locale, config)
    words = _words([single] if single else entries, chosen, locale, channel, config)
    best, first = chosen[0], min(entries, key=lambda e: e.intended_at)
    reasons = list(dict.fromkeys(c.reason for c in chosen))
    links = tuple(config.content.deeplink.format(item_id=item, notification_id=sent_id) for item in item_ids)
    if single and single.journey == REVIEW:
        links = (config.content.order_link.format(order_id=single.order.order_id, notification_id=sent_id),)
    notification = Notification(
        notification_id=sent_id, user=user, channel=channel, kind="marketing", title=words.title, body=words.body,
        item_ids=item_ids, reason="; ".join(reasons)[:500] if single is None else best.reason,
        created_at=created_at,
        source_event_time=first.event.ts if first.event is not None else first.order.ts if first.order else
        first.intended_at,
        source_event_id=first.event.event_id if first.event is not None else first.source, score=best.score,
        journey=single.journey if single else "digest", template=words.template, locale=words.locale, links=links,
        scheduled_at=now, intended_at=first.intended_at)
    recent = {k: v for k, v in state.recent_items.items() if now - v.at < config.policy.renotify_cooldown_ms}
    recent.update({entry.item_id: RecentSend(now, entry.category_id) for entry in chosen})
    if len(recent) > RECENT_ITEMS_KEPT:
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1].at)[-RECENT_ITEMS_KEPT:])
    week = tuple(sent for sent in state.marketing_sends if sent.day > day - 7)
    threshold = volume.moved(state.send_threshold, True, len(decided), weekly, config.policy) if controlled else 0.0
    new_state = replace(state, marketing_today=state.marketing_today + 1, last_marketing_ts=now,
                        send_threshold=threshold, decided_days=decided, recent_items=recent,
                        marketing_sends=week + (MarketingSend(day, channel),),
                        engagement=engagement.on_sent(state.engagement, notification, config.feedback,
                                                      tuple(c.category_id for c in chosen if c.category_id)))
    return Decision(new_state, notification=notification)


def decide_transactional(state: PushState, event: OrderEvent, created_at: int, who: Reach, config: JobConfig,
                         first: ItemCard | None = None, now: int | None = None) -> Decision:
    """`first` is the card of the order's first item, if the item model has published one; `now` the
    event time it goes out at (the status's own time unless it was held for the night)."""
    now = event.ts if now is None else now
    state = _roll_transactional_day(state, directory.local_day(now, who.time_zone))
    if event.status not in NOTIFIED_STATUSES:
        return Decision(state, suppressed="not_notified_status")
    key = f"{event.order_id}:{event.status}"
    if key in state.transactional_keys:
        return Decision(state, suppressed="duplicate_status")
    if state.transactional_today >= config.policy.daily_transactional_cap:
        return Decision(state, suppressed="transactional_cap")
    channel = directory.channel_for(who, "transactional", config.directory)
    if channel is None:
        return Decision(state, suppressed="no_transactional_channel")
    user = pseudonym(event.user_id, config.privacy.pseudonym_key)
    sent_id = notification_id(user, event.event_id, "transactional")
    locale = copy.locale_for(who.locale, config)
    title = first.title if first is not None and first.title else None
    words = copy.render(event.status, locale, channel, config, order=event.order_id,
                        carrier=event.carrier or copy.word("our_courier", locale, config),
                        first=title or copy.word("your_item", locale, config),
                        first_price=copy.price(first.price if first is not None else None, locale, config))
    notification = Notification(
        notification_id=sent_id, user=user, channel=channel, kind="transactional", title=words.title,
        body=words.body, item_ids=event.item_ids, reason=f"order {event.order_id} is {event.status.replace('_', ' ')}",
        created_at=created_at, source_event_time=event.ts, source_event_id=event.event_id, score=1.0,
        journey="order_status", template=words.template, locale=words.locale,
        links=(config.content.order_link.format(order_id=event.order_id, notification_id=sent_id),),
        scheduled_at=now, intended_at=event.ts)
    keys = dict(state.transactional_keys)
    keys[key] = now
    if len(keys) > TRANSACTIONAL_KEYS_KEPT:
        keys = dict(sorted(keys.items(), key=lambda kv: kv[1])[-TRANSACTIONAL_KEYS_KEPT:])
    new_state = replace(state, transactional_today=state.transactional_today + 1, transactional_keys=keys,
                        engagement=engagement.on_sent(state.engagement, notification, config.feedback))
    return Decision(new_state, notification=notification)

