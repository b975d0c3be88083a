"""Second user-keyed hop: the shopper's content vector and segment, hybrid scoring, the journeys'
agenda, and what is sent.

Events only update state: a trigger waits, unranked, in the agenda with the other journeys' messages
(`operators.journeys`) until the session ends and the shopper's quiet hours pass; the newest trigger
of a session is the one kept. The entries due at one instant are decided together as one message
(`operators.messages`); a browse recommendation is ranked then, once, as the shopper's state and the
side inputs stand, and that ranking replaces the user's served profile and top-N. Each message goes
out on the first channel of its purpose's preference order that the shopper is reachable on and
consented to; an erasure clears the state, the directory entry included, deletes everything served
about the user, and goes out after their notifications as a tombstone (`UserErased`). The inbox is
written from the committed topic (`operators.inbox`), so it never shows a rolled-back notification.
A shopper's experiments (`operators.experiments`) choose the config their messages are decided by; one in
the global holdout gets no marketing: what would have gone out is logged as an `Exposure`.
"""
from __future__ import annotations

from msgspec.structs import replace

from config import JobConfig, RedisConfig
from state_schemas.events import ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.hops import (AccountEvent, DirectoryRecord, IntentScore, ItemSignal, SegmentAssignment,
                                WatchedItemChange)
from state_schemas.outputs import Exposure, Notification, Outcome, UserErased
from state_schemas.redis_keys import RedisKeys
from state_schemas.state import Candidate, ItemCard, Planned, PushState, Trigger
from state_schemas.units import HOUR_MS

from . import directory, engagement, experiments, journeys, timing
from .content import add_vector
from .journeys import CART, ORDER_STATUS, RECOMMENDATION
from .messages import Decision, decide_marketing, decide_transactional
from .privacy import pseudonym
from .scorer import rank
from .steps import (END_OF_STREAM, DeleteKeys, MarkErased, ReplaceRanking, ReplaceValue, SideInputs, Step,
                    StepContext, VoteBestHour)

CONTENT_TERMS_SERVED = 10
# Journeys whose message names an item the shop must have in stock when it goes out.
NEEDS_STOCK = frozenset({journeys.CART, journeys.PRICE_DROP, journeys.BACK_IN_STOCK})
VOTE_REFRESH_MS = 24 * HOUR_MS  # a steady best hour is voted again this often...
VOTES_KEPT_MS = 30 * 24 * HOUR_MS  # ...and a vote not renewed this long no longer counts


def step(state: PushState, message, context: StepContext) -> Step:
    """`handle` with the config of the shopper's variants, what it sends as their experiments say."""
    user_id, config = message.routing_key, context.config
    deciding = experiments.deciding_config(user_id, config)
    return _ending(state, _as_assigned(handle(state, message, user_id, context.now, context.side, deciding), user_id,
                                       config))


def _ending(before: PushState, step: Step) -> Step:
    """Once nothing waits any more, the end-of-input timer (`journeys.arrange`) goes too: timers outlive the state
    TTL, so an unbounded job would keep one for every shopper it ever planned a message for."""
    if not before.agenda or (step.state is not None and step.state.agenda):
        return step
    return replace(step, cancelled_timers=step.cancelled_timers + (END_OF_STREAM,))


def _as_assigned(step: Step, user_id: str, config: JobConfig) -> Step:
    """Notifications stamped with the shopper's experiments, counted by kind, journey and channel; a marketing
    one for a shopper in the holdout logged as an exposure instead (the state moved on as if it went out)."""
    if not any(isinstance(message, Notification) for message in step.emit):
        return step
    assigned = experiments.assign(user_id, config.experiments)
    emit, counts = [], []
    for message in step.emit:
        if isinstance(message, Notification):
            message = replace(message, experiments=assigned.variants) if assigned.variants else message
            if assigned.holdout and message.kind == "marketing":
                message = Exposure(message, experiment=experiments.HOLDOUT)
                counts += ["holdout_exposures", f"exposed_{message.notification.journey}"]
            else:
                counts += ["notifications_sent", f"sent_{message.kind}", f"sent_{message.journey}",
                           f"sent_channel_{message.channel}"]
        emit.append(message)
    return replace(step, emit=tuple(emit), counts=step.counts + tuple(counts))


def handle(state: PushState, message, user_id: str, created_at: int, side: SideInputs, config: JobConfig) -> Step:
    """One message reaching this hop: an item signal, a segment, a directory record, a watched item's
    change, or an order, feedback or erasure."""
    if _from_before_erasure(state, message):
        return Step(state=state, counts=("dropped_after_erasure",))
    if isinstance(message, (ItemSignal, WatchedItemChange, AccountEvent)):
        hour = side.population_best_hour(config.journeys.population_min_shoppers)
        state = state if hour == state.population_hour else replace(state, population_hour=hour)
    if isinstance(message, ItemSignal):
        return observe_item(state, message, user_id, created_at, side, config)
    if isinstance(message, SegmentAssignment):
        return Step(state=replace(state, segment=message.segment, segment_trend=message.trend))
    if isinstance(message, IntentScore):
        return intent_scored(state, message, user_id, config)
    if isinstance(message, DirectoryRecord):
        return Step(state=replace(state, directory=directory.apply_record(state.directory, message.event)))
    if isinstance(message, WatchedItemChange):
        return watched_item_changed(state, message, user_id, created_at, side, config)
    if not isinstance(message, AccountEvent):
        raise ValueError(f"push policy got an unexpected {type(message).__name__}")
    event = message.event
    if isinstance(event, ErasureRequest):
        return erase(pseudonym(user_id, config.privacy.pseudonym_key), event.ts, config.redis)
    if isinstance(event, FeedbackEvent):
        if event.action in CONSENT_ACTIONS:  # consent takes effect at once
            return apply_feedback(state, event, config)
        # Feedback on a message waits for the watermark to pass its time: by a shorter path than the behaviour
        # that led to the message, it can arrive before that message is even planned (and in a replay, before
        # its timer fires). Then it is applied in event-time order with the messages due (`catch_up`).
        pending = tuple(sorted(state.pending_feedback + (event,), key=lambda f: (f.ts, f.event_id)))
        overflow, kept = pending[:-FEEDBACK_WAITING_KEPT], pending[-FEEDBACK_WAITING_KEPT:]
        state = replace(state, pending_feedback=kept)
        applied = [apply_feedback(state, f, config) for f in overflow[:1]]  # the oldest, if one too many
        return replace(_joined((Step(state=state), *applied)), timers=(event.ts,))
    return order_changed(state, event, user_id, created_at, side, config)


def _from_before_erasure(state: PushState, message) -> bool:
    """A signal or segment of the shopper's events before their erasure, come by a longer path than it."""
    if state.erased_at is None:
        return False
    if isinstance(message, ItemSignal):
        return message.event.ts <= state.erased_at
    return isinstance(message, (SegmentAssignment, IntentScore)) and message.ts <= state.erased_at


def erase(user: str, at: int, redis: RedisConfig) -> Step:
    """Forget the user: clear the state but for the time of the erasure, delete everything served under the
    pseudonym and mark it erased there (so windows still open do not write it again), withdraw their vote,
    and tell the topic's consumers."""
    keys = RedisKeys(redis.key_prefix)
    return Step(state=PushState(erased_at=at), emit=(UserErased(user),),
                effects=(DeleteKeys(keys.user_keys(user), keys.user_key_patterns(user)),
                         MarkErased(keys.erased(user), at, int(redis.ttl_hours * 3600)),
                         VoteBestHour(user, None, 0, 0)))


def _outcome(decision: "Decision", serving: tuple = ()) -> Step:
    """What a decision does: a notification goes out, or a suppression is counted by its reason.
    The served profile and top-N go first, as they are computed."""
    if decision.notification is None:
        return Step(state=decision.state, effects=serving,
                    counts=("notifications_suppressed", f"suppressed_{decision.suppressed}"))
    return Step(state=decision.state, emit=(decision.notification,), effects=serving)  # counted as it goes out


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


def intent_scored(state: PushState, score: IntentScore, user_id: str, config: JobConfig) -> Step:
    """The shopper's purchase intent after their event: kept for the send decision (policy.min_intent), served."""
    if state.intent_at is not None and score.ts < state.intent_at:  # an older event's score, come late
        return Step(state=state)
    keys, ttl_s = RedisKeys(config.redis.key_prefix), int(config.redis.ttl_hours * 3600)
    served = ReplaceValue(keys.intent(pseudonym(user_id, config.privacy.pseudonym_key)),
                          {"p": score.probability, "at": score.ts}, ttl_s)
    return Step(state=replace(state, intent=score.probability, intent_at=score.ts), effects=(served,))


def observe_item(state: PushState, signal: ItemSignal, user_id: str, created_at: int, side: SideInputs,
                 config: JobConfig) -> Step:
    """Every behaviour event moves the content vector, keeps the session open and moves the journeys
    (a cart plans reminders, a purchase ends them). A trigger waits as the browse recommendation (the
    newest wins), ranked only when it fires. Entries due before this event are decided first, as of
    their time, so the outcome does not hang on when the watermark fires their timers."""
    event = signal.event
    fired = catch_up(state, user_id, event.ts, created_at, side, config)
    state = fired.state
    weight = config.profile.event_weights.get(event.behavior, 0.0)
    if signal.card.vector and weight > 0:
        content = add_vector(state.content, signal.card.vector, weight, event.ts,
                             config.catalog.content_half_life_hours * HOUR_MS, config.catalog.content_terms_per_user)
        state = replace(state, content=content)
    if state.last_active is None or event.ts > state.last_active:
        state = replace(state, last_active=event.ts)
    who = directory.reach(state.directory, config.directory)
    state = journeys.watch(state, event, config)
    state, exits = journeys.after_behaviour(state, event, signal.card, config)
    state, vote = _vote(state, signal, pseudonym(user_id, config.privacy.pseudonym_key), who, config)
    if signal.trigger:
        state = _plan_recommendation(state, signal, config)
    arranged = journeys.arrange(state, who, config)
    converted = _conversion(state, signal, user_id, config) if event.behavior in journeys.ENDS_BROWSING else ()
    counts = exits + arranged.counts + ("outcomes_attributed",) * len(converted)
    return _joined((fired, replace(arranged, emit=arranged.emit + converted, effects=vote, counts=counts)))


def _conversion(state: PushState, signal: ItemSignal, user_id: str, config: JobConfig) -> tuple:
    """The cart or purchase as the outcome of the last marketing message (or holdout exposure) it follows."""
    event = signal.event
    found = engagement.attributed(state.engagement, event.item_id, signal.card.category_id or event.category_id,
                                  event.ts, config.feedback)
    if found is None:
        return ()
    sent_id, note, match = found
    assigned = experiments.assign(user_id, config.experiments)
    return (Outcome(notification_id=sent_id, user=pseudonym(user_id, config.privacy.pseudonym_key),
                    behavior=event.behavior, item_id=event.item_id, event_id=event.event_id, ts=event.ts,
                    sent_at=note.at, match=match, journey=note.journey, channel=note.channel, template=note.template,
                    experiments=assigned.variants, holdout=assigned.holdout),)


def _vote(state: PushState, signal: ItemSignal, user: str, who, config: JobConfig) -> tuple[PushState, tuple]:
    """The shopper's own best hour, on their clock, counts towards the population's: voted again when it
    moves, and once a day so that the votes of shoppers gone quiet age out."""
    own = journeys.best_utc_hour(signal.summary, config)
    if own is None or config.journeys.population_min_shoppers == 0:
        return state, ()
    at = signal.event.ts
    hour = journeys.best_local_hour(own, at, who.time_zone)
    if hour == state.voted_hour and state.voted_at is not None and at - state.voted_at < VOTE_REFRESH_MS:
        return state, ()
    return replace(state, voted_hour=hour, voted_at=at), (VoteBestHour(user, hour, at, VOTES_KEPT_MS),)


def _plan_recommendation(state: PushState, signal: ItemSignal, config: JobConfig) -> PushState:
    """Browse abandonment: after real interest (a trigger) and no cart in the agenda."""
    event, policy = signal.event, config.policy
    if (RECOMMENDATION not in config.journeys.enabled or event.behavior in journeys.ENDS_BROWSING
            or any(entry.journey == CART for entry in state.agenda)):
        return state
    trigger = Trigger(ItemCard(category_id=signal.card.category_id, title=signal.card.title), signal.neighbours,
                      signal.summary)
    return journeys.plan(state, Planned(
        RECOMMENDATION, source=event.event_id, intended_at=event.ts + policy.session_gap_ms
        + policy.recommendation_delay_ms, earliest=event.ts, event=event, trigger=trigger,
        best_hour=journeys.best_utc_hour(signal.summary, config)))


def _ranked(entries: list[Planned], state: PushState, user: str, now: int, side: SideInputs,
            config: JobConfig) -> tuple[list[Planned], tuple]:
    """(The entries, a browse recommendation among them ranked now and named by its best items; the
    served profile and top-N that ranking replaces). Ranked once: a capped one keeps its items."""
    ranked_entries, served = [], ()
    for entry in entries:
        if entry.trigger is None:
            ranked_entries.append(entry)
            continue
        signal = ItemSignal(event=entry.event, card=entry.trigger.card, trigger=True,
                            neighbours=entry.trigger.neighbours, summary=entry.trigger.summary)
        ranked = rank(signal, state, side, now, config.scoring, config.policy,
                      with_trigger=config.scoring.name_trigger_item)
        if signal.summary:
            served = serving(state, signal, ranked, user, config)
        chosen = [e for e in ranked if e.score >= config.policy.min_score][: config.policy.items_per_notification]
        ranked_entries.append(replace(entry, trigger=None, candidates=tuple(
            Candidate(e.item_id, e.score, e.category_id, e.reason, e.title, e.price) for e in chosen)))
    return ranked_entries, served


def watched_item_changed(state: PushState, change: WatchedItemChange, user_id: str, created_at: int,
                         side: SideInputs, config: JobConfig) -> Step:
    """Plans a price-drop or restock message. Nothing due is decided here: this message comes by another
    path than the shopper's behaviour, so what it overtook cannot be known; the timers decide."""
    state, not_told = journeys.after_change(state, change, config)
    if not_told:
        return Step(state=state, counts=(f"watch_ignored_{not_told}",))
    return journeys.arrange(state, directory.reach(state.directory, config.directory), config)


def order_changed(state: PushState, event: OrderEvent, user_id: str, created_at: int, side: SideInputs,
                  config: JobConfig) -> Step:
    """An order's status: told at once, unless its status is held out of the night; a delivery plans the
    review request. Like a watched item's change, it decides nothing that waits in the agenda."""
    who = directory.reach(state.directory, config.directory)
    first = _first_card(event, event.ts, side)
    state, hold, exits = journeys.after_order(state, event, first, who, config)
    told = Step(state=state, counts=("transactional_held_for_night",)) if hold else \
        _outcome(decide_transactional(state, event, created_at, who, config, first))
    arranged = journeys.arrange(told.state, who, config)
    return _joined((told, replace(arranged, counts=exits + arranged.counts)))


def fire_due(state: PushState, user_id: str, upto: int, created_at: int, side: SideInputs, config: JobConfig) -> Step:
    """Every entry due at or before `upto`, decided as of its due time, earliest first."""
    steps = []
    while True:
        due = [entry.due for entry in state.agenda if 0 < entry.due <= upto]
        if not due:
            return _joined(tuple(steps)) if steps else Step(state=state)
        steps.append(_fire_at(state, user_id, min(due), created_at, side, config))
        state = steps[-1].state


def _fire_at(state: PushState, user_id: str, now: int, created_at: int, side: SideInputs, config: JobConfig) -> Step:
    """The entries due at `now`: order statuses told one by one, the marketing ones as one message.
    A capped one is deferred or dropped as its journey says; an item out of stock ends its cart's reminders."""
    due = [entry for entry in state.agenda if entry.due == now]
    state = replace(state, agenda=tuple(entry for entry in state.agenda if entry.due != now))
    who = directory.reach(state.directory, config.directory)
    if timing.in_quiet_hours(now, who.time_zone, who.quiet_hours or config.policy.quiet_hours):
        # The shopper's zone or quiet hours changed since it was set: each goes back, due anew.
        for entry in due:
            state = journeys.plan(state, entry)
        return journeys.arrange(state, who, config)
    steps = []
    for entry in (e for e in due if e.journey == ORDER_STATUS):
        first = _first_card(entry.order, now, side)
        steps.append(_outcome(decide_transactional(state, entry.order, created_at, who, config, first, now)))
        state = steps[-1].state
    live, gone = _in_stock([e for e in due if e.journey != ORDER_STATUS], now, side)
    state, exits = journeys.out_of_stock(state, {c.item_id for e in gone if e.journey == CART for c in e.candidates})
    exits += ("journey_exit_out_of_stock",) * len(gone)
    if live:
        user = pseudonym(user_id, config.privacy.pseudonym_key)
        live, served = _ranked(live, state, user, now, side, config)
        decision = decide_marketing(state, live, now, created_at, user, who, config)
        outcome, state = _outcome(decision, served), decision.state
        for entry in live:
            later = None if decision.notification else journeys.deferred(entry, decision.suppressed, now, state,
                                                                           who, config)
            state = journeys.plan(state, later) if later else state
            exits += (f"deferred_{decision.suppressed}",) if later else ()
        late = decision.notification is not None and now > min(entry.intended_at for entry in live)
        steps.append(replace(outcome, state=state, counts=outcome.counts + ("messages_deferred",) * late))
    arranged = journeys.arrange(state, who, config)
    return _joined((*steps, replace(arranged, counts=exits + arranged.counts)))


def _first_card(order: OrderEvent, at: int, side: SideInputs) -> ItemCard | None:
    """The facts of the order's first item at `at`, if the item model had any (for the copy)."""
    return side.facts(order.item_ids[:1], at).get(order.item_ids[0]) if order.item_ids else None


def _in_stock(entries: list[Planned], at: int, side: SideInputs) -> tuple[list[Planned], list[Planned]]:
    """(The entries whose items the shop still had at `at`, their copy from the items' facts then; the others).
    A price drop or restock came with the card of its catalogue record: facts older than that record say
    nothing newer, so they are not read for that entry."""
    items = {c.item_id for entry in entries for c in entry.candidates}
    all_cards = side.facts(sorted(items), at) if items else {}
    live, gone = [], []
    for entry in entries:
        cards = all_cards if entry.journey not in (journeys.PRICE_DROP, journeys.BACK_IN_STOCK) else {
            item: card for item, card in all_cards.items()
            if card.listed_at is not None and card.listed_at >= entry.intended_at}
        if entry.journey in NEEDS_STOCK and any(not cards[c.item_id].in_stock for c in entry.candidates
                                                if c.item_id in cards):
            gone.append(entry)
            continue
        fresh = tuple(replace(c, title=cards[c.item_id].title or c.title,
                              price=cards[c.item_id].price if cards[c.item_id].price is not None else c.price)
                      if c.item_id in cards else c for c in entry.candidates)
        live.append(replace(entry, candidates=fresh))
    return live, gone


def on_timer(state: PushState, user_id: str, timestamp: int, context: StepContext) -> Step:
    """Entries fall due and are decided, feedback waiting for this time is applied. A timer nothing is due
    at is stale (the session went on, a newer trigger came, or it was decided already) and does nothing."""
    if not any(0 < entry.due <= timestamp for entry in state.agenda) and not any(
            f.ts <= timestamp for f in state.pending_feedback):
        return Step(state=state)
    deciding = experiments.deciding_config(user_id, context.config)
    return _ending(state, _as_assigned(catch_up(state, user_id, timestamp, context.now, context.side, deciding),
                                       user_id, context.config))


def catch_up(state: PushState, user_id: str, upto: int, created_at: int, side: SideInputs, config: JobConfig) -> Step:
    """Up to `upto`, in event-time order: the entries due decided, the feedback waiting applied (an entry due at
    the time of a feedback event goes first: the feedback may be about it)."""
    steps = []
    while True:
        waiting = [f for f in state.pending_feedback if f.ts <= upto]
        if not waiting:
            steps.append(fire_due(state, user_id, upto, created_at, side, config))
            return _joined(tuple(steps))
        first = waiting[0]  # pending feedback is kept in time order
        steps.append(fire_due(state, user_id, first.ts, created_at, side, config))
        state = replace(steps[-1].state, pending_feedback=tuple(f for f in steps[-1].state.pending_feedback
                                                                 if f is not first))
        steps.append(apply_feedback(state, first, config))
        state = steps[-1].state


def _joined(steps: tuple) -> Step:
    """Steps taken one after the other for one key, as one: the last state, everything else in order."""
    if len(steps) == 1:
        return steps[0]

    def all_of(part: str) -> tuple:
        return tuple(item for step in steps for item in getattr(step, part))

    return Step(state=steps[-1].state, emit=all_of("emit"), effects=all_of("effects"),
                timers=tuple(dict.fromkeys(all_of("timers"))), counts=all_of("counts"))


CONSENT_ACTIONS = frozenset({"unsubscribe", "resubscribe", "complained"})
FEEDBACK_WAITING_KEPT = 50


def apply_feedback(state: PushState, event: FeedbackEvent, config: JobConfig) -> Step:
    """An unsubscribe, or a message marked as spam, ends marketing until a resubscribe; feedback on a message
    moves fatigue and channel choice (operators.engagement; an open also teaches the best hour, in the user
    context)."""
    if event.action == "resubscribe":
        return Step(state=replace(state, directory=directory.resubscribe(state.directory)))
    counts = ()
    if event.notification_id:
        learned, counts = engagement.on_feedback(state.engagement, event, config.feedback)
        state = replace(state, engagement=learned)
    if event.action in ("unsubscribe", "complained"):
        state, exits = journeys.opted_out(state)
        return Step(state=replace(state, directory=directory.unsubscribe(state.directory, event.ts)),
                    counts=counts + exits)
    return Step(state=state, counts=counts)
