"""Second user-keyed hop: the user's content vector and segment, hybrid scoring, and what is sent.

Transactional notifications (shipping, delivery, price drops) outrank marketing: they have their
own cap, are never blocked by the marketing cap, and are deduplicated per order and status.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from state_schemas.events import ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.outputs import Notification, ServingRecord
from state_schemas.segments import SegmentAssignment
from state_schemas.state import ItemSignal, PushState

from .content import add_vector
from .scorer import SideInputs, rank

if TYPE_CHECKING:
    from jobs.config import JobConfig, PolicyConfig

HOUR_MS = 3_600_000
CONTENT_TERMS_SERVED = 10

DAY_MS = 86_400_000
RECENT_ITEMS_KEPT = 100
TRANSACTIONAL_KEYS_KEPT = 100

TRANSACTIONAL_TEMPLATES = {
    "shipped": ("Your order is on its way", "Order {order} has shipped{carrier}."),
    "out_for_delivery": ("Arriving today", "Order {order} is out for delivery."),
    "delivered": ("Delivered", "Order {order} was delivered. Tell us what you think of it."),
    "cancelled": ("Order cancelled", "Order {order} was cancelled."),
    "refunded": ("Refund issued", "The refund for order {order} is on its way."),
    "price_drop": ("Price drop", "An item you ordered or saved is now cheaper."),
}


def pseudonym(user_id: str, key: str) -> str:
    """A stable keyed pseudonym: outputs and logs never carry the raw user id."""
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:20]


def notification_id(user_pseudonym: str, source_event_id: str, kind: str) -> str:
    """Deterministic, so a replay after a failure produces the same id and consumers can dedup. Built
    from the keyed pseudonym: a hash of the raw id could be matched against a list of user ids."""
    return hashlib.sha256(f"{user_pseudonym}\x1f{source_event_id}\x1f{kind}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class PushStep:
    state: PushState | None  # None: clear the user's state
    notification: Notification | None = None
    suppressed: str | None = None  # why nothing was sent, for counters
    serving: tuple[ServingRecord, ...] = ()


def _local_day(now: int, config: "PolicyConfig") -> int:
    return (now + config.utc_offset_minutes * 60_000) // DAY_MS


def _roll_marketing_day(state: PushState, now: int, config: "PolicyConfig") -> PushState:
    day = _local_day(now, config)
    if day <= state.marketing_day:  # a late event counts against the current day, never reopens an old one
        return state
    return replace(state, marketing_day=day, marketing_today=0)


def _roll_transactional_day(state: PushState, now: int, config: "PolicyConfig") -> PushState:
    day = _local_day(now, config)
    if day <= state.transactional_day:
        return state
    return replace(state, transactional_day=day, transactional_today=0)


def decide_marketing(state: PushState, signal: ItemSignal, ranked: list, now: int, created_at: int, user: str,
                     config: "PolicyConfig") -> PushStep:
    """`now` is the trigger's event time (caps replay deterministically); `created_at` the wall clock."""
    state = _roll_marketing_day(state, now, config)
    if state.opted_out:
        return PushStep(state=state, suppressed="opted_out")
    if state.marketing_today >= config.daily_marketing_cap:
        return PushStep(state=state, suppressed="daily_cap")
    if state.last_marketing_ts is not None and now - state.last_marketing_ts < config.min_marketing_gap_ms:
        return PushStep(state=state, suppressed="min_gap")
    day = _local_day(now, config)
    if (day < state.marketing_day and state.last_marketing_ts is not None
            and _local_day(state.last_marketing_ts, config) >= day):
        # A late trigger from a day the count has left: sends go out in event-time order (min_gap),
        # so that day is known to be unused only if the last send was before it.
        return PushStep(state=state, suppressed="late_day")
    chosen = [entry for entry in ranked if entry.score >= config.min_score][: config.items_per_notification]
    if not chosen:
        return PushStep(state=state, suppressed="no_candidate")
    event = signal.event
    item_ids = tuple(entry.item_id for entry in chosen)
    notification = Notification(
        notification_id=notification_id(user, event["event_id"], "marketing"),
        user=user,
        channel=config.channel,
        kind="marketing",
        title="Picked for you",
        body=(f"{len(item_ids)} items picked for you." if len(item_ids) > 1 else "An item picked for you."),
        item_ids=item_ids,
        reason=chosen[0].reason,
        created_at=created_at,
        source_event_time=event["ts"],
        source_event_id=event["event_id"],
        score=chosen[0].score,
    )
    recent = {k: v for k, v in state.recent_items.items() if now - v[0] < config.renotify_cooldown_ms}
    recent.update({entry.item_id: [now, entry.category_id] for entry in chosen})
    if len(recent) > RECENT_ITEMS_KEPT:
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1][0])[-RECENT_ITEMS_KEPT:])
    new_state = replace(state, marketing_today=state.marketing_today + 1, last_marketing_ts=now,
                        recent_items=recent)
    return PushStep(state=new_state, notification=notification)


def serving_records(state: PushState, signal: ItemSignal, ranked: list, user: str, top_n: int) -> tuple:
    summary = signal.summary
    profile = {
        "categories": summary.categories, "brands": summary.brands, "price_bands": summary.price_bands,
        "active_hours": summary.active_hours, "last_purchase": summary.last_purchase,
        "content": sorted(state.content.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:CONTENT_TERMS_SERVED],
        "segment": state.segment,
    }
    top = {"items": [[entry.item_id, round(entry.score, 6), entry.reason] for entry in ranked[:top_n]]}
    at = signal.event["ts"]
    return (ServingRecord("profile", user, at, profile), ServingRecord("topn", user, at, top))


def observe_item(state: PushState, signal: ItemSignal, user_id: str, created_at: int, side: SideInputs,
                 config: "JobConfig") -> PushStep:
    """Every behaviour event moves the content vector; a trigger is also scored and may be sent."""
    event = signal.event
    weight = config.profile.event_weights.get(event["behavior"], 0.0)
    if signal.card.vector and weight > 0:
        content = add_vector(state.content, signal.card.vector, weight, event["ts"],
                             config.catalog.content_half_life_hours * HOUR_MS, config.catalog.content_terms_per_user)
        state = replace(state, content=content)
    if not signal.trigger:
        return PushStep(state=state)
    user = pseudonym(user_id, config.privacy.pseudonym_key)
    ranked = rank(signal, state, side, event["ts"], config.scoring, config.policy)
    step = decide_marketing(state, signal, ranked, event["ts"], created_at, user, config.policy)
    serving = serving_records(step.state, signal, ranked, user, config.scoring.top_n) if signal.summary else ()
    return replace(step, serving=serving)


def decide_transactional(state: PushState, event: OrderEvent, created_at: int, config: "PolicyConfig",
                         pseudonym_key: str) -> PushStep:
    now = event.ts
    state = _roll_transactional_day(state, now, config)
    template = TRANSACTIONAL_TEMPLATES.get(event.status)
    if template is None:  # placed / paid: the shop's own confirmation covers these
        return PushStep(state=state, suppressed="not_notified_status")
    key = f"{event.order_id}:{event.status}"
    if key in state.transactional_keys:
        return PushStep(state=state, suppressed="duplicate_status")
    if state.transactional_today >= config.daily_transactional_cap:
        return PushStep(state=state, suppressed="transactional_cap")
    title, body = template
    carrier = f" with {event.carrier}" if event.carrier else ""
    user = pseudonym(event.user_id, pseudonym_key)
    notification = Notification(
        notification_id=notification_id(user, event.event_id, "transactional"),
        user=user,
        channel="push",
        kind="transactional",
        title=title,
        body=body.format(order=event.order_id, carrier=carrier),
        item_ids=event.item_ids,
        reason=f"order {event.order_id} is {event.status.replace('_', ' ')}",
        created_at=created_at,
        source_event_time=event.ts,
        source_event_id=event.event_id,
        score=1.0,
    )
    keys = dict(state.transactional_keys)
    keys[key] = now
    if len(keys) > TRANSACTIONAL_KEYS_KEPT:
        keys = dict(sorted(keys.items(), key=lambda kv: kv[1])[-TRANSACTIONAL_KEYS_KEPT:])
    new_state = replace(state, transactional_today=state.transactional_today + 1, transactional_keys=keys)
    return PushStep(state=new_state, notification=notification)


def apply_feedback(state: PushState, event: FeedbackEvent) -> PushStep:
    if event.action == "unsubscribe":
        return PushStep(state=replace(state, opted_out=True))
    if event.action == "resubscribe":
        return PushStep(state=replace(state, opted_out=False))
    return PushStep(state=state)


def handle(state: PushState, message, user_id: str, created_at: int, side: SideInputs,
           config: "JobConfig") -> PushStep:
    """One message reaching this hop: an item signal, a segment, an order event, feedback or an erasure."""
    if isinstance(message, ItemSignal):
        return observe_item(state, message, user_id, created_at, side, config)
    if isinstance(message, SegmentAssignment):
        return PushStep(state=replace(state, segment=message.segment, segment_trend=message.trend))
    if isinstance(message, ErasureRequest):
        erase = ServingRecord("erase", pseudonym(user_id, config.privacy.pseudonym_key), message.ts, {})
        return PushStep(state=None, serving=(erase,))
    if isinstance(message, FeedbackEvent):
        return apply_feedback(state, message)
    if isinstance(message, OrderEvent):
        return decide_transactional(state, message, created_at, config.policy, config.privacy.pseudonym_key)
    raise ValueError(f"push policy got an unexpected {type(message).__name__}")
