"""First user-keyed hop: dedup by event id, recent items, decayed category affinity, triggers."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, InputEvent, OrderEvent
from state_schemas.state import HistoryEntry, ItemUpdate, UserContext

from .decay import add_to_scores, top_scores

if TYPE_CHECKING:
    from jobs.config import IntakeConfig, ProfileConfig

HOUR_MS = 3_600_000
PURCHASES_KEPT = 50
AFFINITIES_SENT = 8


@dataclass(frozen=True, slots=True)
class UserStep:
    """What the shell does after one event: store or clear state, and where the event goes next."""

    state: UserContext | None  # None: clear the user's state
    to_item_hop: ItemUpdate | None = None
    to_push_hop: InputEvent | None = None  # order events, feedback and erasures skip the item hop
    duplicate: bool = False


def _remember_event_id(seen: dict[str, int], event_id: str, ts: int, intake: "IntakeConfig") -> dict[str, int]:
    horizon = max([ts, *seen.values()]) - intake.dedup_window_ms
    kept = {k: v for k, v in seen.items() if v >= horizon}
    kept[event_id] = ts
    if len(kept) > intake.dedup_max_ids:
        kept = dict(sorted(kept.items(), key=lambda kv: kv[1])[-intake.dedup_max_ids:])
    return kept


def observe(state: UserContext, event: InputEvent, intake: "IntakeConfig", profile: "ProfileConfig") -> UserStep:
    if isinstance(event, ErasureRequest):
        return UserStep(state=None, to_push_hop=event)
    if event.event_id in state.seen:
        return UserStep(state=state, duplicate=True)
    seen = _remember_event_id(state.seen, event.event_id, event.ts, intake)
    if isinstance(event, (OrderEvent, FeedbackEvent)):
        return UserStep(state=replace(state, seen=seen), to_push_hop=event)
    return _observe_behaviour(replace(state, seen=seen), event, profile)


def _observe_behaviour(state: UserContext, event: BehaviourEvent, profile: "ProfileConfig") -> UserStep:
    weight = profile.event_weights.get(event.behavior, 0.0)
    affinity = state.category_affinity
    if event.category_id is not None and weight > 0:
        affinity = add_to_scores(affinity, event.category_id, weight, event.ts,
                                 profile.half_life_hours * HOUR_MS, profile.max_categories)
    if event.item_id is None:  # a search: it shapes the profile but names no item
        return UserStep(state=replace(state, category_affinity=affinity))

    history = tuple(entry for entry in state.history if entry.item_id != event.item_id)
    previous_items = tuple((entry.item_id, entry.category_id) for entry in history)
    history = (history + (HistoryEntry(event.item_id, event.category_id, event.behavior, event.ts),))
    history = history[-profile.history_size:]
    purchased = state.purchased
    if event.behavior == "purchase" and event.item_id not in purchased:
        purchased = (purchased + (event.item_id,))[-PURCHASES_KEPT:]

    trigger = event.behavior in profile.trigger_behaviors and (
        state.last_trigger_ts is None or event.ts - state.last_trigger_ts >= profile.min_trigger_gap_ms
    )
    new_state = replace(state, history=history, category_affinity=affinity, purchased=purchased,
                        last_trigger_ts=event.ts if trigger else state.last_trigger_ts)
    update = ItemUpdate(
        event=event.to_dict(),
        history=previous_items,
        trigger=trigger,
        affinity=top_scores(affinity, AFFINITIES_SENT) if trigger else (),
        exclude=purchased if trigger else (),
    )
    return UserStep(state=new_state, to_item_hop=update)
