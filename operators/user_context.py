"""First user-keyed hop: dedup by event id, recent items, the decayed behaviour profile, triggers.

The profile holds decayed affinities by category, brand and price band (weights per behaviour in
config), an active-hour histogram and the last purchase per category. It travels with triggers
to the scorer, and at most once per `segments.min_update_gap_ms` to the segmenter as a vector.
"""
from __future__ import annotations

from msgspec.structs import replace

from config import IntakeConfig, ProfileConfig, SegmentConfig
from config.learning import FactorsConfig
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, InputEvent
from state_schemas.hops import (AcceptedBehaviour, AccountEvent, ForgetWatcher, IntentExample, ItemUpdate,
                                SegmentUpdate, UserSummary)
from state_schemas.state import HistoryEntry, UserContext
from state_schemas.units import HOUR_MS

from . import factors, intent
from .content import normalised_brand, price_band
from .decay import add_to_scores, top_scores
from .segments import profile_vector
from .steps import CLEAR, SideInputs, Step, StepContext

PURCHASES_KEPT = 50
AFFINITIES_SENT = 8


def _remember_event_id(seen: dict[str, int], event_id: str, ts: int, intake: IntakeConfig) -> dict[str, int]:
    horizon = max([ts, *seen.values()]) - intake.dedup_window_ms
    kept = {k: v for k, v in seen.items() if v >= horizon}
    kept[event_id] = ts
    if len(kept) > intake.dedup_max_ids:
        kept = dict(sorted(kept.items(), key=lambda kv: kv[1])[-intake.dedup_max_ids:])
    return kept


def step(state: UserContext, event: InputEvent, context: StepContext) -> Step:
    config = context.config
    result = observe(state, event, config.intake, config.profile, config.segments, windows=config.windows_enabled,
                     open_weight=config.journeys.open_weight)
    if config.factors.enabled and any(isinstance(m, ItemUpdate) for m in result.emit):
        result = learn_factors(state, result, event, context.side, config.factors)
    if config.intent.enabled and isinstance(event, BehaviourEvent) and result.state is not CLEAR \
            and result.state is not state:  # not a duplicate
        return track_intent(state, result, event, config)
    return result


def track_intent(before: UserContext, result: Step, event: BehaviourEvent, config) -> Step:
    """The event's intent features and the labels it settles go to the intent model; a timer settles the rest
    when their horizon passes, should the shopper not come back."""
    activity, pending, example = intent.track(before.intent, before.intent_pending, event, before.history,
                                              config.profile.history_size, config.policy.session_gap_ms,
                                              config.intent)
    expiry = intent.next_expiry(pending, config.intent)
    return replace(result, state=replace(result.state, intent=activity, intent_pending=pending),
                   emit=result.emit + ((example,) if example else ()),
                   timers=result.timers + ((expiry,) if expiry else ()))


def on_timer(state: UserContext, user_id: str, timestamp: int, context: StepContext) -> Step:
    """Examples whose horizon passed without a cart or purchase are negative: the model learns them."""
    config = context.config.intent
    pending, learned = intent.labelled(state.intent_pending, timestamp, False, config)
    if not learned:
        return Step(state=state)
    expiry = intent.next_expiry(pending, config)
    return Step(state=replace(state, intent_pending=pending),
                emit=(IntentExample(user_id=user_id, ts=timestamp, learned=learned),),
                timers=(expiry,) if expiry else ())


def learn_factors(before: UserContext, result: Step, event: BehaviourEvent, side: SideInputs,
                  config: FactorsConfig) -> Step:
    """One ISGD step of the user's factors (operators.factors); the item update carries them as they were,
    for the item's own step, and a trigger's summary as they are now, for the scorer."""
    old = before.factors or factors.initial(event.user_id, config)
    pool = [item for item, _ in side.trending(None, event.ts)]
    sampled = factors.negatives_for(event.event_id, pool, {event.item_id, *(e.item_id for e in before.history)},
                                    config.negatives)
    cards = side.cards([event.item_id, *sampled])

    def of(item: str) -> tuple[float, ...]:
        card = cards.get(item)
        return card.factors if card is not None and card.factors else factors.initial(item, config)
    new = factors.user_step(old, of(event.item_id), [of(item) for item in sampled], config)
    emit = tuple(replace(m, user_factors=old, summary=replace(m.summary, factors=new) if m.summary else None)
                 if isinstance(m, ItemUpdate) else m for m in result.emit)
    return replace(result, state=replace(result.state, factors=new), emit=emit)


def observe(state: UserContext, event: InputEvent, intake: IntakeConfig, profile: ProfileConfig,
            segments: SegmentConfig, windows: bool = False, open_weight: float = 0.0) -> Step:
    """Dedup, then: behaviour updates the profile and goes on to the item model (and the windows, if
    `windows`); orders, feedback and erasures go straight to the push policy. An erasure clears the state
    and takes the shopper off the watchers of the items in their history."""
    if isinstance(event, ErasureRequest):
        # The items the shopper watched hold their id too: each is told to forget it.
        forget = tuple(ForgetWatcher(user_id=event.user_id, item_id=entry.item_id, ts=event.ts)
                       for entry in state.history)
        return Step(state=CLEAR, emit=(AccountEvent(event=event),) + forget, counts=("users_erased",))
    if event.event_id in state.seen:
        return Step(state=state, counts=("events_duplicate",))
    seen = _remember_event_id(state.seen, event.event_id, event.ts, intake)
    if not isinstance(event, BehaviourEvent):
        if isinstance(event, FeedbackEvent) and event.action == "open":  # the hours they read messages in
            hour = str((event.ts // HOUR_MS) % 24)
            state = replace(state, active_hours=_add(state.active_hours, hour, open_weight, event.ts, profile))
        return Step(state=replace(state, seen=seen), emit=(AccountEvent(event=event),))
    step = _observe_behaviour(replace(state, seen=seen), event, profile, segments)
    return replace(step, emit=step.emit + (AcceptedBehaviour(event=event),)) if windows else step


def _add(scores, key: str | None, weight: float, ts: int, profile: ProfileConfig):
    if key is None or weight <= 0:
        return scores
    return add_to_scores(scores, key, weight, ts, profile.half_life_hours * HOUR_MS, profile.max_categories)


def summarise(state: UserContext) -> UserSummary:
    return UserSummary(
        categories=top_scores(state.category_affinity, AFFINITIES_SENT),
        brands=top_scores(state.brand_affinity, AFFINITIES_SENT),
        price_bands=top_scores(state.price_affinity, AFFINITIES_SENT),
        active_hours=top_scores(state.active_hours, 24),
        purchased=state.purchased,
        recent=tuple(entry.item_id for entry in state.history),
        last_purchase=state.last_purchase,
        factors=state.factors,
    )


def profile_features(summary: UserSummary) -> list[tuple[str, float]]:
    """Categories, brands and price bands in one feature space for the segmenter."""
    return ([("cat:" + k, v) for k, v in summary.categories] + [("brand:" + k, v) for k, v in summary.brands]
            + [("price:" + k, v) for k, v in summary.price_bands])


def _observe_behaviour(state: UserContext, event: BehaviourEvent, profile: ProfileConfig,
                       segments: SegmentConfig) -> Step:
    weight = profile.event_weights.get(event.behavior, 0.0)
    hour = str((event.ts // HOUR_MS) % 24)
    state = replace(state,
                    category_affinity=_add(state.category_affinity, event.category_id, weight, event.ts, profile),
                    brand_affinity=_add(state.brand_affinity, normalised_brand(event.brand), weight, event.ts, profile),
                    price_affinity=_add(state.price_affinity, price_band(event.price), weight, event.ts, profile),
                    active_hours=_add(state.active_hours, hour, 1.0, event.ts, profile))
    if event.item_id is None:  # a search: it shapes the profile but names no item
        return Step(state=state)

    repeat = any(entry.item_id == event.item_id for entry in state.history)
    history = tuple(entry for entry in state.history if entry.item_id != event.item_id)
    previous_items = () if repeat else tuple((entry.item_id, entry.category_id) for entry in history)
    history = (history + (HistoryEntry(event.item_id, event.category_id, event.behavior, event.ts),))
    history = history[-profile.history_size:]
    purchased, last_purchase = state.purchased, state.last_purchase
    if event.behavior == "purchase":
        if event.item_id not in purchased:
            purchased = (purchased + (event.item_id,))[-PURCHASES_KEPT:]
        known = last_purchase.get(event.category_id) if event.category_id is not None else None
        if event.category_id is not None and (known is None or event.ts >= known[1]):  # a late one is older
            last_purchase = {**last_purchase, event.category_id: (event.item_id, event.ts)}
            if len(last_purchase) > profile.max_categories:
                last_purchase = dict(sorted(last_purchase.items(), key=lambda kv: kv[1][1])[-profile.max_categories:])

    trigger = event.behavior in profile.trigger_behaviors and (
        state.last_trigger_ts is None or event.ts - state.last_trigger_ts >= profile.min_trigger_gap_ms
    )
    new_state = replace(state, history=history, purchased=purchased, last_purchase=last_purchase,
                        last_trigger_ts=event.ts if trigger else state.last_trigger_ts)
    summary = summarise(new_state) if trigger else None
    to_segmenter = None
    if segments.enabled and len(history) >= segments.min_history and (
            new_state.last_segment_ts is None or event.ts - new_state.last_segment_ts >= segments.min_update_gap_ms):
        features = profile_features(summary or summarise(new_state))
        to_segmenter = SegmentUpdate(user_id=event.user_id, ts=event.ts,
                                     vector=profile_vector(features, segments.dimensions),
                                     items=tuple(entry.item_id for entry in history))
        new_state = replace(new_state, last_segment_ts=event.ts)
    update = ItemUpdate(event=event, history=previous_items, trigger=trigger, summary=summary, repeat=repeat)
    # The segmenter's answer reaches the push policy by its own path; sent first, it is there sooner.
    emit = (update,) if to_segmenter is None else (to_segmenter, update)
    return Step(state=new_state, emit=emit)
