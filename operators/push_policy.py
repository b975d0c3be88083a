"""Second user-keyed hop: score candidates and decide what, if anything, is sent.

Transactional notifications (shipping, delivery, price drops) outrank marketing: they have their
own cap, are never blocked by the marketing cap, and are deduplicated per order and status.
"""
from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from state_schemas.events import ErasureRequest, FeedbackEvent, InputEvent, OrderEvent
from state_schemas.outputs import Notification
from state_schemas.state import CandidateSet, PushState

if TYPE_CHECKING:
    from jobs.config import PolicyConfig

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


def score_candidates(candidates: CandidateSet, state: PushState, now: int,
                     config: "PolicyConfig") -> list[tuple[float, str, str | None]]:
    """Blend co-occurrence and category affinity; drop excluded and recently sent items."""
    trigger_item = candidates.event.get("item_id")
    excluded = set(candidates.exclude)
    excluded.add(trigger_item)
    recent = {item for item, ts in state.recent_items.items() if now - ts < config.renotify_cooldown_ms}
    affinity = dict(candidates.affinity)
    top_count = max((n.co_count for n in candidates.candidates), default=0.0) or 1.0
    scored = []
    for neighbour in candidates.candidates:
        if neighbour.item_id in excluded or neighbour.item_id in recent:
            continue
        co = neighbour.co_count / top_count
        # Confidence grows with evidence: one shared user is a weak signal.
        co *= 1.0 - math.exp(-neighbour.co_count / 2.0)
        aff = affinity.get(neighbour.category_id, 0.0) if neighbour.category_id else 0.0
        score = config.weight_cooccurrence * co + config.weight_affinity * aff
        scored.append((score, neighbour.item_id, neighbour.category_id))
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    return scored


def decide_marketing(state: PushState, candidates: CandidateSet, now: int, created_at: int, user_id: str,
                     config: "PolicyConfig", pseudonym_key: str) -> PushStep:
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
    scored = score_candidates(candidates, state, now, config)
    chosen = [entry for entry in scored if entry[0] >= config.min_score][: config.items_per_notification]
    if not chosen:
        return PushStep(state=state, suppressed="no_candidate")
    event = candidates.event
    item_ids = tuple(item for _, item, _ in chosen)
    verb = {"cart": "added to your cart", "favourite": "saved", "purchase": "bought"}.get(event["behavior"], "viewed")
    user = pseudonym(user_id, pseudonym_key)
    notification = Notification(
        notification_id=notification_id(user, event["event_id"], "marketing"),
        user=user,
        channel=config.channel,
        kind="marketing",
        title="Picked for you",
        body=(f"{len(item_ids)} items that go with what you {verb}." if len(item_ids) > 1
              else f"An item that goes with what you {verb}."),
        item_ids=item_ids,
        reason=f"because you {verb} item {event['item_id']}",
        created_at=created_at,
        source_event_time=event["ts"],
        source_event_id=event["event_id"],
        score=chosen[0][0],
    )
    recent = {k: v for k, v in state.recent_items.items() if now - v < config.renotify_cooldown_ms}
    recent.update({item: now for item in item_ids})
    if len(recent) > RECENT_ITEMS_KEPT:
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1])[-RECENT_ITEMS_KEPT:])
    new_state = replace(state, marketing_today=state.marketing_today + 1, last_marketing_ts=now,
                        recent_items=recent)
    return PushStep(state=new_state, notification=notification)


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


def handle(state: PushState, message: CandidateSet | InputEvent, user_id: str, created_at: int,
           config: "PolicyConfig", pseudonym_key: str) -> PushStep:
    """One message reaching the push hop: candidates, an order event, feedback or an erasure."""
    if isinstance(message, CandidateSet):
        return decide_marketing(state, message, message.event["ts"], created_at, user_id, config, pseudonym_key)
    if isinstance(message, ErasureRequest):
        return PushStep(state=None)
    if isinstance(message, FeedbackEvent):
        return apply_feedback(state, message)
    if isinstance(message, OrderEvent):
        return decide_transactional(state, message, created_at, config, pseudonym_key)
    raise ValueError(f"push policy got an unexpected {type(message).__name__}")
