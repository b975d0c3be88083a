"""Second user-keyed hop: the user's content vector and segment, hybrid scoring, and what is sent.

Transactional notifications (shipping, delivery, price drops) outrank marketing: they have their
own cap, are never blocked by the marketing cap, and are deduplicated per order and status.
Each goes out on the first channel of its purpose's preference order that the shopper is
reachable on and consented to (`operators.directory`); days of the caps are the shopper's local days.
Every notification goes to the user's inbox too; each trigger replaces the user's served profile
and top-N; an erasure clears the state, the directory entry included, and deletes everything
served about the user.
"""
from __future__ import annotations

from dataclasses import dataclass

from msgspec.structs import replace

from config import JobConfig, RedisConfig
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.hops import AccountEvent, DirectoryRecord, ItemSignal, SegmentAssignment
from state_schemas.outputs import Notification
from state_schemas.redis_keys import RedisKeys
from state_schemas.state import Candidate, ItemCard, MarketingSend, PendingRecommendation, PushState, RecentSend
from state_schemas.units import HOUR_MS

from . import copy, directory, timing
from .content import add_vector
from .directory import Reach
from .privacy import notification_id, pseudonym
from .scorer import rank
from .steps import CLEAR, DeleteKeys, ReplaceRanking, ReplaceValue, SideInputs, Step, StepContext, StoreInInbox

CONTENT_TERMS_SERVED = 10
RECENT_ITEMS_KEPT = 100
TRANSACTIONAL_KEYS_KEPT = 100

# Order statuses that notify the shopper (placed and paid: the shop's own confirmation covers them);
# each has a template of its own name in the copy (`content.templates`).
NOTIFIED_STATUSES = frozenset({"shipped", "out_for_delivery", "delivered", "cancelled", "refunded", "price_drop"})


def step(state: PushState, message, context: StepContext) -> Step:
    return handle(state, message, message.routing_key, context.now, context.side, context.config)


def handle(state: PushState, message, user_id: str, created_at: int, side: SideInputs, config: JobConfig) -> Step:
    """One message reaching this hop: an item signal, a segment, or an order, feedback or erasure."""
    if isinstance(message, ItemSignal):
        return observe_item(state, message, user_id, created_at, side, config)
    if isinstance(message, SegmentAssignment):
        return Step(state=replace(state, segment=message.segment, segment_trend=message.trend))
    if isinstance(message, DirectoryRecord):
        return Step(state=replace(state, directory=directory.apply_record(state.directory, message.event)))
    if not isinstance(message, AccountEvent):
        raise ValueError(f"push policy got an unexpected {type(message).__name__}")
    event = message.event
    if isinstance(event, ErasureRequest):
        return erase(pseudonym(user_id, config.privacy.pseudonym_key), config.redis)
    if isinstance(event, FeedbackEvent):
        return apply_feedback(state, event)
    who = directory.reach(state.directory, config.directory)
    first = side.cards(event.item_ids[:1]).get(event.item_ids[0]) if event.item_ids else None
    decision = decide_transactional(state, event, created_at, who, config, first)
    return _outcome(decision, config.redis)


def erase(user: str, redis: RedisConfig) -> Step:
    """Forget the user: clear the state and delete everything served under the pseudonym."""
    keys = RedisKeys(redis.key_prefix)
    return Step(state=CLEAR, effects=(DeleteKeys(keys.user_keys(user), keys.user_key_patterns(user)),))


def _outcome(decision: "Decision", redis: RedisConfig, serving: tuple = ()) -> Step:
    """What a decision does: a notification goes out, and into the user's inbox when inboxes are kept;
    a suppression is counted by its reason. The served profile and top-N go first, as they are computed."""
    if decision.notification is None:
        return Step(state=decision.state, effects=serving,
                    counts=("notifications_suppressed", f"suppressed_{decision.suppressed}"))
    inbox = (store_in_inbox(decision.notification, redis),) if redis.enabled else ()
    return Step(state=decision.state, emit=(decision.notification,), effects=serving + inbox,
                counts=("notifications_sent", f"sent_{decision.notification.kind}"))


def store_in_inbox(notification: Notification, redis: RedisConfig) -> StoreInInbox:
    """Idempotent: the member is the deterministic notification id, so a replay rewrites the same entry."""
    keys = RedisKeys(redis.key_prefix)
    return StoreInInbox(index_key=keys.inbox(notification.user), body_key=keys.inbox_bodies(notification.user),
                        notification=notification, keep=redis.inbox_size, ttl_s=int(redis.ttl_hours * 3600))


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


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one candidate message goes out: the new state, and the notification or why not."""

    state: PushState
    notification: Notification | None = None
    suppressed: str | None = None  # the reason, for counters


def decide_marketing(state: PushState, event: BehaviourEvent, ranked: list, now: int, created_at: int, user: str,
                     who: Reach, config: JobConfig) -> Decision:
    """`now` is the event time it goes out at (caps replay deterministically); `created_at` the wall clock."""
    day = directory.local_day(now, who.time_zone)
    state, policy = _roll_marketing_day(state, day), config.policy
    if who.opted_out:
        return Decision(state, suppressed="opted_out")
    channels = directory.channels_for(who, "marketing", config.directory)
    if not channels:
        return Decision(state, suppressed="no_marketing_channel")
    if state.marketing_today >= policy.daily_marketing_cap:
        return Decision(state, suppressed="daily_cap")
    week = tuple(sent for sent in state.marketing_sends if sent.day > day - 7)
    if len(week) >= policy.weekly_marketing_cap:
        return Decision(state, suppressed="weekly_cap")
    channel = next((c for c in channels if _under_channel_caps(c, week, day, policy)), None)
    if channel is None:
        return Decision(state, suppressed="channel_cap")
    if state.last_marketing_ts is not None and now - state.last_marketing_ts < policy.min_marketing_gap_ms:
        return Decision(state, suppressed="min_gap")
    if (day < state.marketing_day and state.last_marketing_ts is not None
            and directory.local_day(state.last_marketing_ts, who.time_zone) >= day):
        # A late trigger from a day the count has left: sends go out in event-time order (min_gap),
        # so that day is known to be unused only if the last send was before it.
        return Decision(state, suppressed="late_day")
    chosen = [entry for entry in ranked if entry.score >= policy.min_score][: policy.items_per_notification]
    if not chosen:
        return Decision(state, suppressed="no_candidate")
    item_ids = tuple(entry.item_id for entry in chosen)
    sent_id = notification_id(user, event.event_id, "marketing")
    locale = copy.locale_for(who.locale, config)
    best = chosen[0]
    words = copy.render("recommendation_one" if len(chosen) == 1 else "recommendation_many", locale, channel, config,
                        first=best.title or copy.word("an_item", locale, config),
                        first_price=copy.price(best.price, locale, config), count=len(chosen), others=len(chosen) - 1)
    notification = Notification(
        notification_id=sent_id,
        user=user,
        channel=channel,
        kind="marketing",
        title=words.title,
        body=words.body,
        item_ids=item_ids,
        reason=best.reason,
        created_at=created_at,
        source_event_time=event.ts,
        source_event_id=event.event_id,
        score=best.score,
        journey="recommendation",
        template=words.template,
        locale=words.locale,
        links=tuple(config.content.deeplink.format(item_id=item, notification_id=sent_id) for item in item_ids),
        scheduled_at=now,
    )
    recent = {k: v for k, v in state.recent_items.items() if now - v.at < policy.renotify_cooldown_ms}
    recent.update({entry.item_id: RecentSend(now, entry.category_id) for entry in chosen})
    if len(recent) > RECENT_ITEMS_KEPT:
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1].at)[-RECENT_ITEMS_KEPT:])
    new_state = replace(state, marketing_today=state.marketing_today + 1, last_marketing_ts=now,
                        recent_items=recent, marketing_sends=week + (MarketingSend(day, channel),))
    return Decision(new_state, notification=notification)


def serving(state: PushState, signal: ItemSignal, ranked: list, user: str, config: JobConfig) -> tuple:
    """The user's served profile and top-N, replaced as a whole on each trigger."""
    summary = signal.summary
    profile = {
        "categories": summary.categories, "brands": summary.brands, "price_bands": summary.price_bands,
        "active_hours": summary.active_hours, "last_purchase": summary.last_purchase,
        "content": sorted(state.content.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:CONTENT_TERMS_SERVED],
        "segment": state.segment,
    }
    keys, ttl_s = RedisKeys(config.redis.key_prefix), int(config.redis.ttl_hours * 3600)
    top = tuple((entry.item_id, round(entry.score, 6), entry.reason) for entry in ranked[:config.scoring.top_n])
    return (ReplaceValue(keys.profile(user), profile, ttl_s),
            ReplaceRanking(keys.top_n(user), keys.top_n_reasons(user), top, ttl_s))


def observe_item(state: PushState, signal: ItemSignal, user_id: str, created_at: int, side: SideInputs,
                 config: JobConfig) -> Step:
    """Every behaviour event moves the content vector and keeps the session open. A trigger is ranked
    now, as the side inputs stand at this event, and waits as the pending recommendation (the newest
    wins) until the session ends and the shopper's quiet hours are over; each event that moves that
    time sets the timer again. A pending recommendation whose time came before this event is decided
    first, as of its time, so the outcome does not hang on when the watermark fires its timer."""
    overdue = ()
    if state.pending is not None and signal.event.ts >= state.pending.due:
        decided = _send_pending(state, user_id, state.pending.due, created_at, config)
        state, overdue = decided.state, (decided,)
    event = signal.event
    weight = config.profile.event_weights.get(event.behavior, 0.0)
    if signal.card.vector and weight > 0:
        content = add_vector(state.content, signal.card.vector, weight, event.ts,
                             config.catalog.content_half_life_hours * HOUR_MS, config.catalog.content_terms_per_user)
        state = replace(state, content=content)
    if state.last_active is None or event.ts > state.last_active:
        state = replace(state, last_active=event.ts)
    return _joined(overdue + (_schedule(state, signal, user_id, side, config),))


def _schedule(state: PushState, signal: ItemSignal, user_id: str, side: SideInputs, config: JobConfig) -> Step:
    policy, pending, served = config.policy, state.pending, ()
    if signal.trigger:
        user = pseudonym(user_id, config.privacy.pseudonym_key)
        ranked = rank(signal, state, side, signal.event.ts, config.scoring, policy)
        served = serving(state, signal, ranked, user, config) if signal.summary else ()
        chosen = [entry for entry in ranked if entry.score >= policy.min_score][: policy.items_per_notification]
        pending = PendingRecommendation(
            event=signal.event, intended_at=signal.event.ts + policy.session_gap_ms + policy.recommendation_delay_ms,
            candidates=tuple(Candidate(e.item_id, e.score, e.category_id, e.reason, e.title, e.price) for e in chosen))
    if pending is None:
        return Step(state=state)
    who = directory.reach(state.directory, config.directory)
    session_ends = state.last_active + policy.session_gap_ms + policy.recommendation_delay_ms
    due = timing.quiet_hours_end(session_ends, who.time_zone, who.quiet_hours or policy.quiet_hours)
    if due - pending.intended_at > policy.max_deferral_ms:
        return Step(state=replace(state, pending=None), effects=served,
                    counts=("notifications_suppressed", "suppressed_expired"))
    if due == pending.due:
        return Step(state=state, effects=served)
    return Step(state=replace(state, pending=replace(pending, due=due)), effects=served, timers=(due,))


def _joined(steps: tuple) -> Step:
    """Steps taken one after the other for one key, as one: the last state, everything else in order."""
    if len(steps) == 1:
        return steps[0]
    def all_of(part: str) -> tuple:
        return tuple(item for step in steps for item in getattr(step, part))

    return Step(state=steps[-1].state, emit=all_of("emit"), effects=all_of("effects"), timers=all_of("timers"),
                counts=all_of("counts"))


def on_timer(state: PushState, user_id: str, timestamp: int, context: StepContext) -> Step:
    """The pending recommendation falls due and is decided. A timer for another time is stale (the
    session went on, a newer trigger came, or it was decided already) and does nothing."""
    pending, policy, config = state.pending, context.config.policy, context.config
    if pending is None or pending.due != timestamp:
        return Step(state=state)
    who = directory.reach(state.directory, config.directory)
    quiet_ends = timing.quiet_hours_end(timestamp, who.time_zone, who.quiet_hours or policy.quiet_hours)
    if quiet_ends > timestamp:  # the shopper's zone or quiet hours changed since it was set
        if quiet_ends - pending.intended_at > policy.max_deferral_ms:
            return Step(state=replace(state, pending=None), counts=("notifications_suppressed", "suppressed_expired"))
        return Step(state=replace(state, pending=replace(pending, due=quiet_ends)), timers=(quiet_ends,))
    return _send_pending(state, user_id, timestamp, context.now, config)


def _send_pending(state: PushState, user_id: str, now: int, created_at: int, config: JobConfig) -> Step:
    """The pending recommendation, decided at `now` (its due time) by the caps as they stand."""
    pending = state.pending
    state = replace(state, pending=None)
    who = directory.reach(state.directory, config.directory)
    user = pseudonym(user_id, config.privacy.pseudonym_key)
    decision = decide_marketing(state, pending.event, list(pending.candidates), now, created_at, user, who, config)
    step = _outcome(decision, config.redis)
    return replace(step, counts=step.counts + ("recommendations_deferred",)) if now > pending.intended_at else step


def decide_transactional(state: PushState, event: OrderEvent, created_at: int, who: Reach, config: JobConfig,
                         first: ItemCard | None = None) -> Decision:
    """`first` is the card of the order's first item, if the item model has published one."""
    now = event.ts
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
        notification_id=sent_id,
        user=user,
        channel=channel,
        kind="transactional",
        title=words.title,
        body=words.body,
        item_ids=event.item_ids,
        reason=f"order {event.order_id} is {event.status.replace('_', ' ')}",
        created_at=created_at,
        source_event_time=event.ts,
        source_event_id=event.event_id,
        score=1.0,
        journey="order_status",
        template=words.template,
        locale=words.locale,
        links=(config.content.order_link.format(order_id=event.order_id, notification_id=sent_id),),
        scheduled_at=now,
    )
    keys = dict(state.transactional_keys)
    keys[key] = now
    if len(keys) > TRANSACTIONAL_KEYS_KEPT:
        keys = dict(sorted(keys.items(), key=lambda kv: kv[1])[-TRANSACTIONAL_KEYS_KEPT:])
    new_state = replace(state, transactional_today=state.transactional_today + 1, transactional_keys=keys)
    return Decision(new_state, notification=notification)


def apply_feedback(state: PushState, event: FeedbackEvent) -> Step:
    if event.action == "unsubscribe":
        return Step(state=replace(state, directory=directory.unsubscribe(state.directory, event.ts)))
    if event.action == "resubscribe":
        return Step(state=replace(state, directory=directory.resubscribe(state.directory)))
    return Step(state=state)
