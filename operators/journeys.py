"""The journeys: the messages a shopper's behaviour, orders and watched items plan, and when each goes.

A journey plans an entry (`Planned`) in the shopper's agenda, one per journey and key:
- recommendation (browse abandonment): the latest trigger, ranked when it came; a cart or a
  purchase ends it (the cart journey takes over, or the shopper bought);
- cart_abandonment: a cart not bought, one reminder after each of `journeys.cart_reminders_ms`;
  exits on purchase of the item, the item out of stock, or opt-out;
- price_drop and back_in_stock: a watched item got cheaper or came back (`operators.item_model`);
- review_request: `journeys.review_delay_ms` after delivery; exits on cancel or refund;
- order_status: a status held out of the night (`journeys.night_deferred_statuses`).

Every marketing entry waits for the session to end and the shopper's quiet hours to pass:
due = quiet_end(max(earliest, last_active + session_gap)); an order status waits for quiet hours
only. The journeys of `journeys.best_hour_journeys` then wait for the next start of the shopper's
best hour (their most active, opens counting more, from the profile that came with the trigger;
`platform_best_hour` local while they have little history, and for journeys planned without one),
unless that is more than `best_hour_max_wait_ms` away or inside quiet hours.
Each event that moves a due time sets a timer for it; an entry due more than
`policy.max_deferral_ms` after it was intended is dropped and counted as expired.
"""
from __future__ import annotations

from msgspec.structs import replace

from config import JobConfig
from config.sections import JOURNEYS
from state_schemas.events import BehaviourEvent, OrderEvent
from state_schemas.hops import WatchedItemChange
from state_schemas.hops import UserSummary
from state_schemas.state import Candidate, ItemCard, Planned, PushState, Watch

from . import directory, timing
from .directory import Reach
from .steps import END_OF_STREAM, Step

RECOMMENDATION, CART, PRICE_DROP, BACK_IN_STOCK, REVIEW = JOURNEYS
ORDER_STATUS = "order_status"
AGENDA_KEPT = 20  # entries per shopper; the oldest intended go first
WATCHED_KEPT = 50
# How strongly a behaviour shows interest in an item: watches keep the strongest (the item model ends one on
# purchase; the shopper's own record keeps it, so a bought item is not advertised).
INTEREST = {"view": 1, "click": 1, "favourite": 2, "cart": 3, "purchase": 4}
ENDS_BROWSING = frozenset({"cart", "purchase"})
# Caps a deferred message waits out: the next local day, or the end of the gap since the last send.
DAY_CAPS, GAP_CAPS = frozenset({"daily_cap", "weekly_cap", "channel_cap"}), frozenset({"min_gap"})


def is_marketing(entry: Planned) -> bool:
    return entry.journey != ORDER_STATUS


def due_time(entry: Planned, state: PushState, who: Reach, config: JobConfig) -> int:
    policy, window = config.policy, who.quiet_hours or config.policy.quiet_hours
    after = entry.earliest
    if is_marketing(entry) and state.last_active is not None:
        after = max(after, state.last_active + policy.session_gap_ms + policy.recommendation_delay_ms)
    due = timing.quiet_hours_end(after, who.time_zone, window)
    if entry.journey not in config.journeys.best_hour_journeys:
        return due
    if entry.best_hour is None:  # too little history: the population's hour on the shopper's clock
        hour = state.population_hour if state.population_hour is not None else config.journeys.platform_best_hour
        best = timing.next_hour_start(due, hour, who.time_zone)
    else:  # the shopper's own hour is an hour of UTC instants: no zone or DST to mind
        best = timing.next_hour_start(due, entry.best_hour, "UTC")
    if best - due > config.journeys.best_hour_max_wait_ms or timing.in_quiet_hours(best, who.time_zone, window):
        return due
    return best


def best_utc_hour(summary: UserSummary | None, config: JobConfig) -> int | None:
    """The UTC hour the shopper is most active in (opens count more), from the profile that came with
    their trigger, once it holds enough history; None below that. The profile is built in event
    order by the user context, so the hour does not depend on how the item hops' outputs interleave."""
    if summary is None or len(summary.recent) < config.journeys.best_hour_min_items or not summary.active_hours:
        return None
    return int(summary.active_hours[0][0])


def best_local_hour(utc_hour: int, at: int, time_zone: str) -> int:
    """A UTC hour on the shopper's clock, as of `at` (a zone's offset moves with DST)."""
    return timing.local_hour(timing.next_hour_start(at, utc_hour, "UTC"), time_zone)


def population_hour(shoppers_per_hour: list[int], min_shoppers: int) -> int | None:
    """The local hour most shoppers with a best hour of their own have (the earliest of a tie); None while
    fewer than `min_shoppers` have one, and always for 0."""
    if min_shoppers == 0 or sum(shoppers_per_hour) < min_shoppers:
        return None
    return max(range(len(shoppers_per_hour)), key=lambda hour: (shoppers_per_hour[hour], -hour))


def arrange(state: PushState, who: Reach, config: JobConfig) -> Step:
    """Every entry's due time as the state now says; a timer for each that moved; expired ones dropped."""
    kept, timers, counts = [], [], []
    for entry in state.agenda:
        due = due_time(entry, state, who, config)
        if due - entry.intended_at > config.policy.max_deferral_ms:
            counts += ["notifications_suppressed", "suppressed_expired", f"expired_{entry.journey}"]
            continue
        if due != entry.due:
            entry = replace(entry, due=due)
            timers.append(due)
        kept.append(entry)
    if not timers and len(kept) == len(state.agenda):
        return Step(state=state)
    if timers:
        # When a bounded input ends, whatever is left is decided, as of each entry's own time, even if
        # a timer set while another fired was dropped (PyFlink's process mode can drop those then).
        timers.append(END_OF_STREAM)
    return Step(state=replace(state, agenda=tuple(kept)), timers=tuple(dict.fromkeys(timers)), counts=tuple(counts))


def plan(state: PushState, entry: Planned) -> PushState:
    """`entry` in the agenda, replacing one of its journey and key; the oldest go beyond `AGENDA_KEPT`."""
    others = [e for e in state.agenda if (e.journey, e.key) != (entry.journey, entry.key)]
    agenda = sorted(others + [entry], key=lambda e: e.intended_at)[-AGENDA_KEPT:]
    return replace(state, agenda=tuple(agenda))


def without(state: PushState, leaves) -> tuple[PushState, tuple[str, ...]]:
    """The agenda without the entries `leaves(entry)` names a reason for; the reasons, as exit counters."""
    gone = [(entry, leaves(entry)) for entry in state.agenda]
    reasons = tuple(f"journey_exit_{reason}" for _, reason in gone if reason)
    if not reasons:
        return state, ()
    return replace(state, agenda=tuple(entry for entry, reason in gone if not reason)), reasons


def candidate(item_id: str, card: ItemCard | None, reason: str) -> Candidate:
    card = card or ItemCard()
    return Candidate(item_id, 1.0, card.category_id, reason, card.title, card.price)


def watch(state: PushState, event: BehaviourEvent, config: JobConfig) -> PushState:
    """The shopper's own record of the items they showed interest in, strongest behaviour kept."""
    if event.item_id is None or event.behavior not in INTEREST:
        return state
    known = state.watched.get(event.item_id)
    if known is not None and known.at > event.ts:
        return state
    strongest = event.behavior if known is None or INTEREST[event.behavior] >= INTEREST.get(known.behavior, 0) \
        else known.behavior
    watched = {item: w for item, w in state.watched.items() if event.ts - w.at < config.journeys.watch_ms}
    watched[event.item_id] = Watch(strongest, event.ts, event.price)
    if len(watched) > WATCHED_KEPT:
        watched = dict(sorted(watched.items(), key=lambda kv: (kv[1].at, kv[0]))[-WATCHED_KEPT:])
    return replace(state, watched=watched)


def after_behaviour(state: PushState, event: BehaviourEvent, card: ItemCard, config: JobConfig) -> tuple:
    """(state, exit counters): a cart plans its first reminder; a purchase ends the item's reminders;
    either ends browse abandonment."""
    counts: tuple[str, ...] = ()
    if event.behavior in ENDS_BROWSING:
        state, counts = without(state, lambda e: "carted_or_bought" if e.journey == RECOMMENDATION else None)
    if event.behavior == "purchase":
        state, more = without(state, lambda e: "purchased" if e.journey in (CART, PRICE_DROP, BACK_IN_STOCK)
                              and _item(e) == event.item_id else None)
        counts += more
    elif event.behavior == "cart" and CART in config.journeys.enabled and event.item_id is not None:
        # Every reminder is planned now: none waits on a timer set while another fires (PyFlink's
        # process mode can drop a timer set in a timer callback when a bounded input ends). Each cart
        # keeps its own reminders, so what goes out does not hang on whether a later cart of the same
        # item arrives before an earlier one's timer fires; caps and gaps thin out the repeats.
        carted = candidate(event.item_id, card, "left in cart")
        for number, delay in enumerate(config.journeys.cart_reminders_ms):
            at = event.ts + delay
            state = plan(state, Planned(CART, key=f"{event.item_id}#{number}@{event.event_id}", source=event.event_id,
                                        intended_at=at, earliest=at, reminder=number, candidates=(carted,)))
    return state, counts


def _item(entry: Planned) -> str | None:
    return entry.candidates[0].item_id if entry.candidates else None


def after_order(state: PushState, order: OrderEvent, first: ItemCard | None, who: Reach,
                config: JobConfig) -> tuple:
    """(state, hold, exit counters). A delivery plans the review request of its first item and a cancel
    or refund ends it; `hold` says the status waits in the agenda for the shopper's quiet hours to end."""
    counts: tuple[str, ...] = ()
    if order.status == "delivered" and REVIEW in config.journeys.enabled and order.item_ids:
        at = order.ts + config.journeys.review_delay_ms
        state = plan(state, Planned(REVIEW, key=order.order_id, source=order.event_id, intended_at=at, earliest=at,
                                    order=order, candidates=(candidate(order.item_ids[0], first, "delivered"),)))
    elif order.status in ("cancelled", "refunded"):
        # A request already due when the order came back is its timer's to decide: this status comes by
        # a shorter path than the watermark, and may overtake it.
        state, counts = without(state, lambda e: "order_returned" if e.journey == REVIEW and e.key == order.order_id
                                and e.due > order.ts else None)
    window = who.quiet_hours or config.policy.quiet_hours
    hold = (order.status in config.journeys.night_deferred_statuses
            and timing.in_quiet_hours(order.ts, who.time_zone, window))
    if hold:
        state = plan(state, Planned(ORDER_STATUS, key=f"{order.order_id}:{order.status}", source=order.event_id,
                                    intended_at=order.ts, earliest=order.ts, order=order))
    return state, hold, counts


def after_change(state: PushState, change: WatchedItemChange, config: JobConfig) -> tuple[PushState, str | None]:
    """A watched item's price drop or restock plans its message if the shopper's own record still
    shows the interest (an erased or lapsed watcher is not told); else the reason it is not."""
    journey = PRICE_DROP if change.change == "price_drop" else BACK_IN_STOCK
    if journey not in config.journeys.enabled:
        return state, "journey_off"
    watched = state.watched.get(change.item_id)
    if watched is None or change.ts - watched.at >= config.journeys.watch_ms:
        return state, "not_watching"
    if watched.behavior == "purchase":
        return state, "purchased"
    reason = "price dropped" if journey == PRICE_DROP else "back in stock"
    entry = Planned(journey, key=change.item_id, source=f"{change.item_id}@{change.ts}", intended_at=change.ts,
                    earliest=change.ts, candidates=(candidate(change.item_id, change.card, reason),),
                    was_price=change.was_price if journey == PRICE_DROP else None)
    return plan(state, entry), None


def deferred(entry: Planned, reason: str, now: int, state: PushState, who: Reach, config: JobConfig) -> Planned | None:
    """A capped entry moved past the cap, if its journey defers and a cap the clock lifts stopped it."""
    if entry.journey == ORDER_STATUS or config.journeys.on_cap.get(entry.journey) != "defer":
        return None
    if entry.journey == CART and any(e.journey == CART and _item(e) == _item(entry) for e in state.agenda):
        return None  # a later reminder of the same cart is planned: that one goes instead
    if reason in GAP_CAPS and state.last_marketing_ts is not None:
        earliest = state.last_marketing_ts + config.policy.min_marketing_gap_ms
    elif reason in DAY_CAPS:
        earliest = directory.day_start(directory.local_day(now, who.time_zone) + 1, who.time_zone)
    else:
        return None
    return replace(entry, earliest=max(earliest, now + 1), due=0) if earliest - entry.intended_at <= \
        config.policy.max_deferral_ms else None


def out_of_stock(state: PushState, items: set[str]) -> tuple[PushState, tuple[str, ...]]:
    """An item out of stock ends the reminders of its cart still planned."""
    return without(state, lambda e: "out_of_stock" if e.journey == CART and _item(e) in items else None)


def opted_out(state: PushState) -> tuple[PushState, tuple[str, ...]]:
    """An unsubscribe ends every marketing journey; order statuses held for the night stay."""
    return without(state, lambda e: "opted_out" if is_marketing(e) else None)


