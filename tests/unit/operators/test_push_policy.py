"""push_policy: the scorer hop's state (content vector, segment), caps, gaps, cooldowns, opt-out,
transactional before marketing, serving records, erasure, pseudonyms."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import orjson
from msgspec.structs import replace
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig, load_config
from operators import directory, push_policy, timing
from operators.privacy import notification_id, pseudonym
from operators.messages import NOTIFIED_STATUSES, decide_marketing
from operators.scorer import Scored
from operators.steps import (END_OF_STREAM, DeleteKeys, MarkErased, ReplaceRanking, ReplaceValue, StepContext,
                            StoreInInbox, VoteBestHour, emitted)
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.hops import AccountEvent, IntentScore, ItemSignal, SegmentAssignment, UserSummary
from state_schemas.outputs import Notification, UserErased
from state_schemas.redis_keys import RedisKeys
from state_schemas.state import (Candidate, DecayedScores, ItemCard, Neighbour, Planned, PushState, RecentSend,
                                 UserDirectory)
from tests.unit.fakes import FakeSide

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MIDNIGHT = 1_699_920_000_000  # 2023-11-14 00:00:00 UTC
T0 = MIDNIGHT + 10 * HOUR_MS
# Most tests here are about which neighbours go out: a discovery ranking (the trigger item and the shopper's
# other recent items are not candidates). The re-engagement default has tests of its own below.
DISCOVERY = {"name_trigger_item": False, "weight_recency": 0.0}
NO_HOLDOUT = {"holdout_share": 0.0}  # who is held out is test_experiments.py's subject; here everyone is told
CONFIG = load_config(overrides={"scoring": DISCOVERY, "experiments": NO_HOLDOUT})
POLICY = CONFIG.policy
SCORING = CONFIG.scoring
KEY = CONFIG.privacy.pseudonym_key
USER = "u1"
CREATED = 1_800_000_000_000
SENT = T0 + CONFIG.policy.session_gap_ms  # a trigger at T0 alone goes out when its session has ended
NO_QUIET_HOURS = ["00:00", "00:00"]
NO_SIDE = FakeSide()  # no cards, nothing trending, no new listings: candidates come from the neighbours alone

PROPERTY = settings(max_examples=150, deadline=None)

# Similarities of the default neighbours; each in its own category, so no diversity penalty applies.
NEIGHBOURS = [("a", "ca", 0.6), ("b", "cb", 0.4), ("c", "cc", 0.2), ("d", "cd", 0.1)]


def config(time_zone="UTC", directory=None, journeys=None, **policy) -> JobConfig:
    return load_config(overrides={"policy": policy, "directory": {"default_time_zone": time_zone, **(directory or {})},
                                  "journeys": journeys or {}, "scoring": DISCOVERY, "experiments": NO_HOLDOUT})


def who(cfg=CONFIG, entry=UserDirectory()):
    return directory.reach(entry, cfg.directory)


def item_signal(event_id="e1", ts=T0, item="trigger", behavior="view", neighbours=None, summary=None, trigger=True,
                user=USER, vector=(), title=None) -> ItemSignal:
    event = BehaviourEvent(event_id=event_id, user_id=user, behavior=behavior, ts=ts, item_id=item,
                           category_id="ct")
    if neighbours is None:
        neighbours = NEIGHBOURS
    if summary is None and trigger:
        summary = UserSummary()
    return ItemSignal(event=event, card=ItemCard(category_id="ct", title=title, vector=tuple(vector)), trigger=trigger,
                      neighbours=tuple(Neighbour(*n) for n in neighbours), summary=summary)


def order(status="shipped", order_id="o1", ts=T0, event_id=None, user=USER, carrier=None, items=("i1",)):
    return OrderEvent(event_id=event_id or f"{order_id}-{status}-{ts}", user_id=user, order_id=order_id,
                      status=status, ts=ts, item_ids=tuple(items), carrier=carrier)


def feedback(action, ts=T0, event_id=None):
    return FeedbackEvent(event_id=event_id or f"f-{action}-{ts}", user_id=USER, action=action, ts=ts,
                         notification_id=None if action in ("unsubscribe", "resubscribe") else "n1")


KEYS = RedisKeys(CONFIG.redis.key_prefix)


@dataclass(frozen=True)
class Decided:
    """One step of the push policy, by what the shell does with it."""

    state: PushState | None
    notifications: tuple  # in the order decided: entries due before a message go first
    suppressed: str | None  # the first reason counted
    serving: tuple  # writes to the serving store: profile, top-N, erasure (the inbox is written from the topic)
    erasures: tuple  # the tombstones for the notifications topic
    timers: tuple = ()
    counts: tuple = ()

    @property
    def notification(self) -> Notification | None:
        """The one decided last, if any."""
        return self.notifications[-1] if self.notifications else None


def decided(done) -> Decided:
    notifications, erasures = tuple(emitted(done, Notification)), tuple(emitted(done, UserErased))
    assert len(done.emit) == len(notifications) + len(erasures)
    reasons = [name.removeprefix("suppressed_") for name in done.counts if name.startswith("suppressed_")]
    assert ("notifications_suppressed" in done.counts) == bool(reasons)
    return Decided(done.state, notifications, reasons[0] if reasons else None, done.effects, erasures,
                   tuple(t for t in done.timers if t != END_OF_STREAM), done.counts)


def handle(state, message, user, created, side, cfg):
    if isinstance(message, (OrderEvent, FeedbackEvent, ErasureRequest)):  # they reach this hop wrapped
        message = AccountEvent(event=message)
    return decided(push_policy.handle(state, message, user, created, side, cfg))


def fire(state, timestamp, cfg=CONFIG, user=USER, side=NO_SIDE):
    return decided(push_policy.on_timer(state, user, timestamp, StepContext(CREATED, side, cfg)))


def step(state, message, cfg=CONFIG, user=USER, side=NO_SIDE):
    """One message, then the timers it sets, fired in turn as if no other event came: what was decided last."""
    result = handle(state, message, user, CREATED, side, cfg)
    serving = result.serving
    while result.timers and result.state is not None:
        result = fire(result.state, min(result.timers), cfg, user, side)
        serving += result.serving
    return dataclasses.replace(result, serving=serving)


def cf_only(sim, top=0.6, cfg=CONFIG):
    """The scorer's CF term: the weight times the similarity relative to the strongest neighbour."""
    return cfg.scoring.weight_cf * sim / top


def local_day(ts, cfg=CONFIG):
    """The shopper's calendar day, from the zone's offset at that instant."""
    instant = datetime.fromtimestamp(ts / 1000, tz=timezone.utc)
    offset = ZoneInfo(cfg.directory.default_time_zone).utcoffset(instant)
    return (ts + int(offset.total_seconds()) * 1000) // DAY_MS


# --- pseudonyms and ids --------------------------------------------------------------------------

def test_pseudonym_is_the_keyed_hmac_and_depends_on_the_key():
    expected = hmac.new(KEY.encode(), b"alice", hashlib.sha256).hexdigest()[:20]
    assert pseudonym("alice", KEY) == expected
    assert pseudonym("alice", KEY) != pseudonym("alice", "another-key-123")
    assert pseudonym("alice", KEY) != pseudonym("bob", KEY)


def test_notification_id_is_deterministic_and_separates_its_inputs():
    first = notification_id("u1", "e1", "marketing")
    assert first == notification_id("u1", "e1", "marketing")
    others = {notification_id("u2", "e1", "marketing"), notification_id("u1", "e2", "marketing"),
              notification_id("u1", "e1", "transactional"), notification_id("u1e", "1", "marketing")}
    assert first not in others and len(others) == 4


def test_the_same_inputs_give_the_same_notification():
    signal = item_signal()
    assert step(PushState(), signal).notification == step(PushState(), signal).notification
    shipped = order()
    assert step(PushState(), shipped).notification == step(PushState(), shipped).notification


# --- what a marketing notification holds -----------------------------------------------------------

def test_a_marketing_notification_names_the_best_items_and_says_why():
    signal = item_signal(event_id="trig-1", behavior="favourite", summary=UserSummary(categories=(("cd", 1.0),)))
    result = step(PushState(), signal)
    n = result.notification
    assert result.suppressed is None
    assert n.kind == "marketing" and n.channel == "push"  # first of the preference, implied consent
    assert n.user == pseudonym(USER, KEY)
    assert n.notification_id == notification_id(pseudonym(USER, KEY), "trig-1", "marketing")
    assert n.source_event_id == "trig-1" and n.source_event_time == T0 and n.created_at == CREATED
    scores = {"a": cf_only(0.6), "b": cf_only(0.4), "c": cf_only(0.2),
              "d": cf_only(0.1) + SCORING.weight_affinity * 1.0}  # the user shops category cd
    best = sorted(scores, key=lambda i: -scores[i])[:POLICY.items_per_notification]
    assert best == ["a", "b", "d"]  # the affinity lifts d above c
    assert n.item_ids == tuple(best)
    assert n.score == pytest.approx(scores["a"])
    assert n.body == "An item you may like and 2 more picked for you."  # no cards: no titles, no prices
    assert (n.journey, n.template, n.locale) == ("recommendation", "recommendation_many", "en")
    assert n.links == tuple(f"https://shop.example.com/item/{i}?nid={n.notification_id}" for i in best)
    assert "trigger" in n.reason  # the best pick is CF-led: the reason names the trigger item
    assert result.state.marketing_today == 1 and result.state.last_marketing_ts == SENT == n.scheduled_at
    categories = dict((item, category) for item, category, _ in NEIGHBOURS)
    assert result.state.recent_items == {item: RecentSend(SENT, categories[item]) for item in best}
    assert result.state.marketing_day == local_day(T0)
    assert result.state.transactional_day == -1  # each kind keeps its own day


def test_one_item_gets_the_singular_wording_and_the_channel_follows_the_preference():
    signal = item_signal(neighbours=[("a", "ca", 0.6)], behavior="favourite")
    email_first = {"channel_preference": {"marketing": ["email", "push"]},
                   "implied_consent": {"marketing": ["push", "email"]}}
    n = step(PushState(), signal, config(directory={**email_first, "default_channels": ["push", "email"]})).notification
    assert n.body == "An item you may like - picked for you."
    assert n.channel == "email" and n.item_ids == ("a",)
    # email is preferred but not reachable: the next channel of the preference
    assert step(PushState(), signal, config(directory=email_first)).notification.channel == "push"


def test_candidates_below_min_score_are_not_sent():
    weak = item_signal(neighbours=[("a", "ca", 0.3)])  # cf 1.0 alone: weight_cf exactly
    assert step(PushState(), weak, config(min_score=SCORING.weight_cf + 0.01)).suppressed == "no_candidate"
    assert step(PushState(), weak, config(min_score=SCORING.weight_cf)).notification.item_ids == ("a",)


def test_nothing_to_recommend_is_suppressed_without_using_the_cap():
    result = step(PushState(), item_signal(neighbours=[]))
    assert result.notification is None and result.suppressed == "no_candidate"
    assert result.state.marketing_today == 0 and result.state.last_marketing_ts is None


def scored(item, score, category=None, reason=None):
    return Scored(item, score, category, reason or f"reason for {item}", (score, 0.0, 0.0, 0.0, 0.0))


def planned(ranked, event=None) -> list[Planned]:
    """A recommendation as the journey plans it, due now."""
    event = event or item_signal().event
    return [Planned("recommendation", source=event.event_id, intended_at=event.ts, earliest=event.ts, event=event,
                    candidates=tuple(Candidate(e.item_id, e.score, e.category_id, e.reason) for e in ranked))]


def recommendation(state: PushState) -> Planned:
    [entry] = [entry for entry in state.agenda if entry.journey == "recommendation"]
    return entry


def test_decide_marketing_sends_the_first_ranked_items_at_or_above_min_score():
    cfg = config(min_score=0.2, items_per_notification=2)
    ranked = [scored("x", 0.9, "c1", "why x"), scored("y", 0.2, "c2"), scored("z", 0.19, "c3")]
    result = decide_marketing(PushState(), planned(ranked), T0, CREATED, "pseudo", who(cfg), cfg)
    assert result.notification.item_ids == ("x", "y")
    assert result.notification.reason == "why x" and result.notification.score == 0.9
    assert result.notification.user == "pseudo"
    assert result.state.recent_items == {"x": RecentSend(T0, "c1"), "y": RecentSend(T0, "c2")}
    only_weak = decide_marketing(PushState(), planned([scored("z", 0.19)]), T0, CREATED, "pseudo", who(cfg),
                                 cfg)
    assert only_weak.suppressed == "no_candidate" and only_weak.state.marketing_today == 0


def test_recent_items_keep_only_sends_within_the_cooldown():
    cfg = config(renotify_cooldown_ms=DAY_MS)
    state = PushState(recent_items={"old": RecentSend(T0 - DAY_MS, "c1"), "young": RecentSend(T0 - DAY_MS + 1)})
    result = decide_marketing(state, planned([scored("x", 0.9)]), T0, CREATED, "p", who(cfg), cfg)
    assert result.state.recent_items == {"young": RecentSend(T0 - DAY_MS + 1), "x": RecentSend(T0)}


def test_an_item_is_not_recommended_again_within_the_cooldown():
    cfg = config(min_marketing_gap_ms=0, items_per_notification=1)
    state = PushState()
    sent = []
    for n in range(3):
        result = step(state, item_signal(event_id=f"e{n}", ts=T0 + n), cfg)
        state = result.state
        sent.extend(result.notification.item_ids)
    assert sent == ["a", "b", "c"]
    later = SENT + cfg.policy.renotify_cooldown_ms  # a week after "a" went out, not after its trigger
    assert step(state, item_signal(event_id="late", ts=later), cfg).notification.item_ids == ("a",)


def test_a_push_state_written_before_the_upgrade_still_honours_its_cooldown():
    """PushState v1 kept item -> time notified; it decodes to item -> [time, unknown category]."""
    v1 = orjson.dumps({"v": 1, "mday": local_day(T0), "mk": 1, "tday": -1, "tx": 0, "last": T0 - 2 * HOUR_MS,
                       "recent": {"a": T0 - 2 * HOUR_MS}, "txk": {}, "out": False}).decode()
    state = PushState.decode(v1)
    assert state.recent_items == {"a": RecentSend(T0 - 2 * HOUR_MS)}
    result = step(state, item_signal(event_id="e9"))
    assert result.notification.item_ids == ("b", "c", "d")
    assert result.state.recent_items["a"] == RecentSend(T0 - 2 * HOUR_MS)
    assert result.state.marketing_today == 2
    assert PushState.decode(result.state.encode()) == result.state


# --- what the hop keeps of the user: content vector, segment --------------------------------------

def test_every_item_signal_moves_the_content_vector_with_its_behaviour_weight():
    half_life = int(CONFIG.catalog.content_half_life_hours * HOUR_MS)
    first = item_signal(event_id="e1", trigger=False, behavior="view", vector=[("red", 0.6), ("shoe", 0.8)])
    second = item_signal(event_id="e2", ts=T0 + half_life, trigger=False, behavior="cart", vector=[("red", 1.0)])
    state = step(step(PushState(), first).state, second).state
    view, cart = CONFIG.profile.event_weights["view"], CONFIG.profile.event_weights["cart"]
    assert state.content.at == T0 + half_life
    assert state.content.scores == pytest.approx({"red": view * 0.6 / 2 + cart * 1.0, "shoe": view * 0.8 / 2})


def test_a_non_trigger_signal_sends_nothing_and_touches_no_counter():
    state = PushState(marketing_day=local_day(T0), marketing_today=1, last_marketing_ts=T0 - DAY_MS)
    result = step(state, item_signal(trigger=False, vector=[("red", 1.0)]))
    assert result.notification is None and result.serving == () and result.suppressed is None
    assert result.timers == () and result.state.last_active == T0  # it keeps the session open, nothing more
    assert replace(result.state, content=state.content, last_active=None, watched={}) == state


def test_a_zero_weight_behaviour_or_an_item_without_vector_leaves_the_content_vector_alone():
    no_views = load_config(overrides={"profile": {"event_weights": {"cart": 4.0}}, "scoring": DISCOVERY})
    assert step(PushState(), item_signal(trigger=False, vector=[("red", 1.0)]), no_views).state.content == \
        DecayedScores()
    assert step(PushState(), item_signal(trigger=False)).state.content == DecayedScores()


def test_the_content_vector_steers_the_ranking():
    side = FakeSide(cards={"red": ItemCard(category_id="c1", vector=(("red", 1.0),)),
                           "blue": ItemCard(category_id="c2", vector=(("blue", 1.0),))})
    state = step(PushState(), item_signal(event_id="e0", trigger=False, vector=[("red", 1.0)]), side=side).state
    result = step(state, item_signal(neighbours=[("blue", "c2", 0.5), ("red", "c1", 0.5)]), side=side)
    assert result.notification.item_ids == ("red", "blue")
    assert result.notification.score == pytest.approx(SCORING.weight_cf + SCORING.weight_content)


def test_a_segment_assignment_is_kept_and_its_trend_becomes_candidates():
    assignment = SegmentAssignment(user_id=USER, ts=T0 - 1, segment=3, trend=(("peer", 1.0), ("other", 0.6)))
    state = step(PushState(), assignment).state
    assert state.segment == 3 and state.segment_trend == (("peer", 1.0), ("other", 0.6))
    assert replace(state, segment=None, segment_trend=()) == PushState()
    result = step(state, item_signal(neighbours=[]))
    assert result.notification.item_ids == ("peer", "other")
    assert result.notification.score == pytest.approx(SCORING.weight_segment * 1.0)


def test_a_new_assignment_replaces_the_previous_segment():
    state = step(PushState(), SegmentAssignment(USER, T0, 1, (("x", 1.0),))).state
    state = step(state, SegmentAssignment(USER, T0 + 1, 2, ())).state
    assert state.segment == 2 and state.segment_trend == ()


def test_a_new_user_with_only_trending_items_still_gets_a_notification():
    side = FakeSide(cards={"hot": ItemCard(category_id="ct")}, trending={None: [("hot", 9.0), ("warm", 3.0)]})
    result = step(PushState(), item_signal(neighbours=[], summary=UserSummary(categories=(("ct", 1.0),))), side=side)
    assert result.notification.item_ids[0] == "hot"
    assert result.notification.score == pytest.approx(SCORING.weight_popularity + SCORING.weight_affinity)


# --- serving records -----------------------------------------------------------------------------

def test_a_trigger_publishes_the_profile_and_the_top_n_under_the_pseudonym():
    summary = UserSummary(categories=(("cd", 1.0),), brands=(("acme", 1.0),), price_bands=(("p2", 1.0),),
                          active_hours=(("10", 1.0),), last_purchase={"cd": ("z", T0 - 5)})
    state = PushState(segment=4, content=DecayedScores(at=T0, scores={f"t{n}": float(n) for n in range(15)}))
    cfg = load_config(overrides={"scoring": {"top_n": 3, **DISCOVERY}})
    result = step(state, item_signal(summary=summary), cfg)
    profile, top = result.serving
    user = pseudonym(USER, KEY)
    ttl = int(cfg.redis.ttl_hours * 3600)
    assert (type(profile), profile.key, profile.ttl_s) == (ReplaceValue, KEYS.profile(user), ttl)
    assert (type(top), top.key, top.reasons_key, top.ttl_s) == (ReplaceRanking, KEYS.top_n(user),
                                                                KEYS.top_n_reasons(user), ttl)
    body = orjson.loads(orjson.dumps(profile.value))  # as the writer stores it
    assert body["categories"] == [["cd", 1.0]] and body["brands"] == [["acme", 1.0]]
    assert body["price_bands"] == [["p2", 1.0]] and body["active_hours"] == [["10", 1.0]]
    assert body["last_purchase"] == {"cd": ["z", T0 - 5]} and body["segment"] == 4
    assert [term for term, _ in body["content"]] == [f"t{n}" for n in range(14, 4, -1)]  # strongest ten
    expected = {"a": cf_only(0.6), "b": cf_only(0.4), "d": cf_only(0.1) + SCORING.weight_affinity}
    assert [item for item, _, _ in top.entries] == ["a", "b", "d"]  # top_n = 3 of the four
    assert [score for _, score, _ in top.entries] == pytest.approx([expected[i] for i in "abd"], abs=1e-6)
    assert "trigger" in top.entries[0][2]


def test_serving_records_are_written_even_when_the_cap_suppresses_the_push():
    cfg = config(daily_marketing_cap=0)
    result = step(PushState(), item_signal(), cfg)
    assert result.suppressed == "daily_cap" and result.notification is None
    assert [type(r) for r in result.serving] == [ReplaceValue, ReplaceRanking]


def test_no_serving_records_without_a_profile_or_a_trigger():
    assert step(PushState(), item_signal(trigger=False)).serving == ()
    no_summary = replace(item_signal(), summary=None)
    result = step(PushState(), no_summary)
    assert result.serving == () and result.notification is not None


# --- marketing caps and gaps ---------------------------------------------------------------------

def test_the_daily_cap_suppresses_marketing_until_the_next_local_day():
    cfg = config(daily_marketing_cap=2, min_marketing_gap_ms=0, renotify_cooldown_ms=1)
    state = PushState()
    outcomes = []
    for n, ts in enumerate([T0, T0 + 1, T0 + 2, MIDNIGHT + DAY_MS]):
        result = step(state, item_signal(event_id=f"e{n}", ts=ts), cfg)
        state = result.state
        outcomes.append(result.suppressed or "sent")
    assert outcomes == ["sent", "sent", "daily_cap", "sent"]
    assert state.marketing_today == 1


def test_the_local_day_follows_the_shoppers_time_zone():
    late_evening = MIDNIGHT + 23 * HOUR_MS  # 23:00 UTC on 14 November: sent at 23:30 when the session ends
    # In Paris (UTC+1 in November) that is already 00:30 the next day; in New York still the 14th.
    for zone, expected in [("UTC", "daily_cap"), ("Europe/Paris", None), ("America/New_York", "daily_cap")]:
        cfg = config(zone, daily_marketing_cap=1, min_marketing_gap_ms=0, renotify_cooldown_ms=1,
                     quiet_hours=NO_QUIET_HOURS)
        first = step(PushState(), item_signal(event_id="e1", ts=MIDNIGHT + 21 * HOUR_MS), cfg)
        assert first.notification is not None
        assert step(first.state, item_signal(event_id="e2", ts=late_evening), cfg).suppressed == expected


def test_a_capped_channel_gives_way_to_the_next_and_then_the_message_is_suppressed():
    cfg = config(min_marketing_gap_ms=0, renotify_cooldown_ms=1, daily_marketing_cap=9, weekly_marketing_cap=9,
                 channel_caps={"push": [1, 5], "inbox": [1, 5], "email": [1, 1], "sms": [1, 1]})
    state, outcomes = PushState(), []
    for n in range(3):
        result = step(state, item_signal(event_id=f"e{n}", ts=T0 + n * HOUR_MS), cfg)
        state = result.state
        outcomes.append(result.notification.channel if result.notification else result.suppressed)
    assert outcomes == ["push", "inbox", "channel_cap"]  # push and inbox implied; email and sms not reachable
    next_day = step(state, item_signal(event_id="e9", ts=T0 + DAY_MS), cfg)
    assert next_day.notification.channel == "push"
    assert [(sent.day, sent.channel) for sent in next_day.state.marketing_sends] == \
        [(local_day(T0), "push"), (local_day(T0), "inbox"), (local_day(T0) + 1, "push")]


def test_the_weekly_cap_counts_seven_local_days_and_then_lets_go():
    cfg = config(min_marketing_gap_ms=0, renotify_cooldown_ms=1, weekly_marketing_cap=2)
    state, outcomes = PushState(), []
    for day in (0, 3, 6, 7, 8):
        result = step(state, item_signal(event_id=f"e{day}", ts=T0 + day * DAY_MS), cfg)
        state = result.state
        outcomes.append(result.suppressed or "sent")
    # days 0 and 3 fill the week; day 6 is still within it; by day 7 day 0 has left, by day 8 not yet day 3
    assert outcomes == ["sent", "sent", "weekly_cap", "sent", "weekly_cap"]
    assert step(state, order(ts=T0 + 8 * DAY_MS)).notification.kind == "transactional"  # exempt


def test_two_marketing_sends_keep_the_minimum_gap():
    cfg = config(renotify_cooldown_ms=1)
    gap = cfg.policy.min_marketing_gap_ms
    first = step(PushState(), item_signal(event_id="e1", ts=T0), cfg)
    assert step(first.state, item_signal(event_id="e2", ts=T0 + gap - 1), cfg).suppressed == "min_gap"
    assert step(first.state, item_signal(event_id="e3", ts=T0 + gap), cfg).notification is not None
    # A trigger older than the last send is never sent (marketing goes out in event-time order).
    assert step(first.state, item_signal(event_id="e4", ts=T0 - gap), cfg).suppressed == "min_gap"


def test_a_zero_cap_sends_no_marketing():
    assert step(PushState(), item_signal(), config(daily_marketing_cap=0)).suppressed == "daily_cap"


def test_a_decision_for_a_day_already_used_cannot_exceed_that_days_cap():
    """Sends go out in time order, so a day the count has left is used only if the last send was
    before it (reachable when a shopper's zone moves their days)."""
    cfg = config(daily_marketing_cap=1, min_marketing_gap_ms=HOUR_MS, renotify_cooldown_ms=1)
    ranked = [scored("x", 0.9)]
    day0 = decide_marketing(PushState(), planned(ranked), MIDNIGHT + 10 * HOUR_MS, CREATED, "p", who(cfg),
                            cfg)
    rolled = replace(day0.state, marketing_day=local_day(MIDNIGHT) + 1, marketing_today=0)  # day 1, nothing sent
    late = decide_marketing(rolled, planned(ranked), MIDNIGHT + 20 * HOUR_MS, CREATED, "p", who(cfg), cfg)
    assert late.notification is None and late.suppressed == "late_day"
    unused = replace(PushState(), marketing_day=local_day(MIDNIGHT) + 1)  # day 1, and day 0 never used
    assert decide_marketing(unused, planned(ranked), MIDNIGHT + 20 * HOUR_MS, CREATED, "p", who(cfg),
                            cfg).notification is not None


def test_a_late_trigger_waits_for_the_session_it_arrives_in_and_counts_on_the_day_it_goes_out():
    cfg = config(daily_marketing_cap=1, min_marketing_gap_ms=HOUR_MS, renotify_cooldown_ms=1,
                 quiet_hours=NO_QUIET_HOURS)
    nothing = item_signal(event_id="d1", ts=MIDNIGHT + DAY_MS + HOUR_MS, neighbours=[])
    state = step(PushState(), nothing, cfg).state  # day 1: browsing, nothing to recommend
    late = step(state, item_signal(event_id="d0", ts=MIDNIGHT + 20 * HOUR_MS), cfg)  # from day 0, arriving late
    assert late.notification.scheduled_at == MIDNIGHT + DAY_MS + HOUR_MS + cfg.policy.session_gap_ms
    assert late.state.marketing_day == local_day(MIDNIGHT) + 1


def test_orders_do_not_roll_the_marketing_day_and_signals_do_not_roll_the_transactional_day():
    cfg = config(daily_marketing_cap=1, daily_transactional_cap=1, min_marketing_gap_ms=0, renotify_cooldown_ms=1)
    state = step(PushState(), item_signal(event_id="m0", ts=T0), cfg).state
    state = step(state, order(order_id="o0", ts=T0), cfg).state
    state = step(state, order(order_id="o1", ts=T0 + DAY_MS), cfg).state  # transactional day 1
    assert state.marketing_day == local_day(T0) and state.transactional_day == local_day(T0) + 1
    assert step(state, item_signal(event_id="m1", ts=T0 + 1), cfg).suppressed == "daily_cap"


def test_non_trigger_signals_and_segments_do_not_roll_the_marketing_day():
    state = PushState(marketing_day=local_day(T0), marketing_today=1)
    state = step(state, item_signal(event_id="x", ts=T0 + DAY_MS, trigger=False)).state
    state = step(state, SegmentAssignment(USER, T0 + DAY_MS, 0, ())).state
    assert state.marketing_day == local_day(T0) and state.marketing_today == 1


# --- transactional -------------------------------------------------------------------------------

ENGLISH_TITLES = {"shipped": "Your order is on its way", "out_for_delivery": "Arriving today",
                  "delivered": "Delivered", "cancelled": "Order cancelled", "refunded": "Refund issued",
                  "price_drop": "Price drop"}


def test_every_notified_status_has_its_title():
    assert set(ENGLISH_TITLES) == NOTIFIED_STATUSES


@pytest.mark.parametrize("status", sorted(ENGLISH_TITLES))
def test_each_notified_status_sends_a_transactional_notification(status):
    event = order(status=status, order_id="o-77", carrier="DHL", items=("i1", "i2"))
    result = handle(PushState(), event, USER, CREATED, NO_SIDE, CONFIG)
    n = result.notification
    assert n.kind == "transactional" and n.channel == "push"
    assert n.title == ENGLISH_TITLES[status]
    assert (n.journey, n.template, n.locale) == ("order_status", status, "en")
    assert n.links == (f"https://shop.example.com/orders/o-77?nid={n.notification_id}",)
    assert n.item_ids == ("i1", "i2")
    assert n.user == pseudonym(USER, KEY)
    assert n.notification_id == notification_id(pseudonym(USER, KEY), event.event_id, "transactional")
    assert n.source_event_id == event.event_id and n.source_event_time == event.ts
    assert n.reason == f"order o-77 is {status.replace('_', ' ')}"
    if status != "price_drop":
        assert "o-77" in n.body
    assert result.state.transactional_today == 1
    assert result.state.transactional_keys == {f"o-77:{status}": event.ts}


def test_the_carrier_is_named_when_known():
    assert step(PushState(), order(carrier="DHL")).notification.body == "Order o1 has shipped with DHL."
    assert step(PushState(), order()).notification.body == "Order o1 has shipped with our courier."


def test_a_chinese_speaking_shopper_gets_the_chinese_copy_with_the_items_title():
    state = PushState(directory=UserDirectory(listed_at=T0, locale="zh-Hans-CN"))  # falls back by language
    side = FakeSide(cards={"i1": ItemCard(title="不锈钢煎锅", price=89.0)})
    delivered = order(status="delivered", order_id="o-8", items=("i1",))
    n = handle(state, delivered, USER, CREATED, side, CONFIG).notification
    assert (n.title, n.body, n.locale) == ("已签收", "订单 o-8 已签收，说说你对不锈钢煎锅的看法吧。",
                                           "zh-CN")
    assert handle(PushState(), order(status="delivered", order_id="o-8"), USER, CREATED, NO_SIDE,
                  CONFIG).notification.body == \
        "Order o-8 was delivered. Tell us what you think of your item."


@pytest.mark.parametrize("status", ["placed", "paid"])
def test_confirmation_statuses_are_not_notified(status):
    result = step(PushState(), order(status=status))
    assert result.notification is None and result.suppressed == "not_notified_status"


def test_the_same_order_status_is_notified_once_even_from_a_new_event():
    first = step(PushState(), order(event_id="a"))
    again = step(first.state, order(event_id="b", ts=T0 + 5))
    assert again.notification is None and again.suppressed == "duplicate_status"
    other_status = step(first.state, order(status="delivered", ts=T0 + 5))
    assert other_status.notification is not None


def test_the_transactional_cap_applies_per_day():
    cfg = config(daily_transactional_cap=2)
    state, outcomes = PushState(), []
    for n, ts in enumerate([T0, T0 + 1, T0 + 2, MIDNIGHT + DAY_MS]):
        result = step(state, order(order_id=f"o{n}", ts=ts), cfg)
        state = result.state
        outcomes.append(result.suppressed or "sent")
    assert outcomes == ["sent", "sent", "transactional_cap", "sent"]


def test_transactional_is_not_blocked_by_an_exhausted_marketing_cap_or_gap():
    cfg = config(daily_marketing_cap=1)
    state = step(PushState(), item_signal(), cfg).state
    assert step(state, item_signal(event_id="e2", ts=T0 + 2 * HOUR_MS), cfg).suppressed == "daily_cap"
    result = step(state, order(ts=T0 + 1), cfg)
    assert result.notification is not None and result.notification.kind == "transactional"
    assert result.state.marketing_today == 1


# --- the recommendation journey: after the session, outside quiet hours ---------------------------------

def test_a_trigger_is_held_until_the_session_ends_and_scored_only_then():
    held = handle(PushState(), item_signal(event_id="t1", ts=T0), USER, CREATED, NO_SIDE, CONFIG)
    assert held.notification is None and held.timers == (SENT,)
    assert held.serving == ()  # not ranked yet: nothing to serve
    assert recommendation(held.state).event.event_id == "t1" and recommendation(held.state).intended_at == SENT
    assert recommendation(held.state).candidates == () and recommendation(held.state).trigger is not None
    browsing = handle(held.state, item_signal(event_id="v2", ts=T0 + 20 * 60_000, trigger=False), USER, CREATED,
                      NO_SIDE, CONFIG)
    later = T0 + 20 * 60_000 + CONFIG.policy.session_gap_ms
    assert browsing.timers == (later,) and recommendation(browsing.state).event.event_id == "t1"  # the session goes on
    stale = fire(browsing.state, SENT)
    assert stale.notification is None and stale.state == browsing.state and stale.counts == ()
    sent = fire(browsing.state, later)
    assert sent.notification.scheduled_at == later and sent.notification.source_event_id == "t1"
    assert sent.notification.item_ids == ("a", "b", "c")  # ranked now, from the trigger's neighbours
    assert sent.state.agenda == () and [type(r) for r in sent.serving] == [ReplaceValue, ReplaceRanking]
    assert "messages_deferred" in sent.counts
    assert fire(sent.state, later).notification is None  # a second timer for the same time finds nothing


def test_whatever_waits_is_decided_when_a_bounded_input_ends():
    """A timer for the end of input comes with every planned entry; firing it decides every entry
    as of its own time, even one whose own timer was lost."""
    held = push_policy.handle(PushState(), item_signal(event_id="t1", ts=T0), USER, CREATED, NO_SIDE, CONFIG)
    assert END_OF_STREAM in held.timers
    swept = fire(held.state, END_OF_STREAM)
    assert swept.notification.source_event_id == "t1" and swept.notification.scheduled_at == SENT
    assert swept.state.agenda == ()


def test_the_end_of_input_timer_goes_once_nothing_waits():
    """Timers outlive the state TTL: an unbounded job must not keep one per shopper it ever planned for."""
    held = push_policy.step(PushState(), item_signal(event_id="t1", ts=T0), StepContext(CREATED, NO_SIDE, CONFIG))
    assert END_OF_STREAM in held.timers and held.cancelled_timers == ()
    browsing = push_policy.step(held.state, item_signal(event_id="v2", ts=T0 + 60_000, trigger=False),
                                StepContext(CREATED, NO_SIDE, CONFIG))
    assert browsing.state.agenda and browsing.cancelled_timers == ()  # still waiting
    due = browsing.state.agenda[0].due
    sent = push_policy.on_timer(browsing.state, USER, due, StepContext(CREATED, NO_SIDE, CONFIG))
    assert emitted(sent, Notification) and sent.state.agenda == ()
    assert sent.cancelled_timers == (END_OF_STREAM,)
    erased = push_policy.step(held.state, AccountEvent(event=ErasureRequest(event_id="x", user_id=USER, ts=T0 + 1)),
                              StepContext(CREATED, NO_SIDE, CONFIG))
    assert erased.state.agenda == () and erased.cancelled_timers == (END_OF_STREAM,)
    idle = push_policy.step(PushState(), AccountEvent(event=ErasureRequest(event_id="y", user_id=USER, ts=T0)),
                            StepContext(CREATED, NO_SIDE, CONFIG))
    assert idle.cancelled_timers == ()  # none was set


def test_purchase_intent_is_kept_served_and_below_min_intent_holds_marketing_back():
    context = StepContext(CREATED, NO_SIDE, CONFIG)
    scored = push_policy.step(PushState(), IntentScore(user_id=USER, ts=T0, probability=0.1), context)
    assert (scored.state.intent, scored.state.intent_at) == (0.1, T0)
    assert scored.effects == (ReplaceValue(KEYS.intent(pseudonym(USER, CONFIG.privacy.pseudonym_key)),
                                           {"p": 0.1, "at": T0}, int(CONFIG.redis.ttl_hours * 3600)),)
    late = push_policy.step(scored.state, IntentScore(user_id=USER, ts=T0 - 1, probability=0.9), context)
    assert late.state is scored.state and late.effects == ()  # an older event's score, come late
    held = handle(scored.state, item_signal(event_id="t1", ts=T0), USER, CREATED, NO_SIDE, CONFIG)
    strict = CONFIG.with_overrides({"policy": {"min_intent": 0.2}})
    assert fire(held.state, END_OF_STREAM, cfg=strict).suppressed == "low_intent"
    assert fire(held.state, END_OF_STREAM).notification is not None  # off by default
    keen = replace(held.state, intent=0.3)
    assert fire(keen, END_OF_STREAM, cfg=strict).notification is not None
    erased = replace(scored.state, erased_at=T0 + 5)
    dropped = push_policy.step(erased, IntentScore(user_id=USER, ts=T0 + 5, probability=0.9), context)
    assert dropped.state is erased and dropped.effects == () and dropped.counts == ("dropped_after_erasure",)


def test_the_newest_trigger_replaces_the_one_waiting():
    first = handle(PushState(), item_signal(event_id="t1", ts=T0), USER, CREATED, NO_SIDE, CONFIG)
    second = handle(first.state, item_signal(event_id="t2", ts=T0 + 60_000, item="other"), USER, CREATED, NO_SIDE,
                    CONFIG)
    assert second.timers == (SENT + 60_000,)
    assert fire(second.state, SENT).notification is None  # the first timer: not due any more
    assert fire(second.state, SENT + 60_000).notification.source_event_id == "t2"


def test_a_trigger_late_in_the_evening_goes_out_when_the_shoppers_quiet_hours_end():
    """Shanghai has no DST: a view at 22:00 local goes out at 08:00 local the next morning."""
    shanghai = config("Asia/Shanghai")
    evening = MIDNIGHT + 14 * HOUR_MS  # 22:00 in Shanghai (UTC+8)
    held = handle(PushState(), item_signal(ts=evening), USER, CREATED, NO_SIDE, shanghai)
    morning = MIDNIGHT + DAY_MS  # 08:00 the next day in Shanghai is 00:00 UTC
    assert held.timers == (morning,) and recommendation(held.state).intended_at == evening + 30 * 60_000
    sent = fire(held.state, morning, shanghai)
    assert sent.notification.scheduled_at == morning and "messages_deferred" in sent.counts


def test_quiet_hours_follow_daylight_saving():
    """New York, Sunday 10 March 2024: clocks go forward at 02:00; 08:00 EDT is 12:00 UTC, not 13:00."""
    new_york = config("America/New_York")
    late = 1_710_040_000_000  # 2024-03-10 03:06 UTC = 22:06 EST on the 9th
    assert handle(PushState(), item_signal(ts=late), USER, CREATED, NO_SIDE, new_york).timers == (1_710_072_000_000,)


def test_the_shoppers_own_quiet_hours_replace_the_platforms():
    own = PushState(directory=UserDirectory(listed_at=T0, quiet_hours=("09:00", "12:00"), channels=("push",),
                                            consent={"marketing": ("push",)}))
    assert handle(own, item_signal(ts=T0), USER, CREATED, NO_SIDE, CONFIG).timers == (MIDNIGHT + 12 * HOUR_MS,)
    evening = handle(own, item_signal(ts=MIDNIGHT + 22 * HOUR_MS), USER, CREATED, NO_SIDE, CONFIG)
    assert evening.timers == (MIDNIGHT + 22 * HOUR_MS + 30 * 60_000,)  # the platform's 21:00 does not apply
    assert fire(evening.state, evening.timers[0]).notification is not None


def test_a_recommendation_deferred_beyond_the_limit_is_dropped_and_counted():
    strict = config(max_deferral_ms=HOUR_MS)
    dropped = handle(PushState(), item_signal(ts=MIDNIGHT + 22 * HOUR_MS), USER, CREATED, NO_SIDE, strict)
    assert dropped.notification is None and dropped.suppressed == "expired" and dropped.state.agenda == ()
    assert dropped.timers == ()


def test_a_change_of_zone_while_waiting_moves_the_send_out_of_the_new_nights():
    held = handle(PushState(), item_signal(ts=T0), USER, CREATED, NO_SIDE, CONFIG)  # 10:00 UTC, due 10:30
    moved = replace(held.state, directory=UserDirectory(time_zone="Pacific/Kiritimati"))
    deferred = fire(moved, SENT)  # 10:30 UTC is 00:30 in Kiritimati (UTC+14): quiet until 08:00
    assert deferred.notification is None and deferred.timers == (MIDNIGHT + 18 * HOUR_MS,)


# --- feedback, opt-out and erasure ---------------------------------------------------------------

def test_an_unsubscribed_user_gets_transactional_but_no_marketing_until_resubscribing():
    state = step(PushState(), feedback("unsubscribe")).state
    assert state.directory.opted_out_at == T0
    marketing = step(state, item_signal(ts=T0 + 1))
    assert marketing.notification is None and marketing.suppressed == "opted_out"
    transactional = step(state, order(ts=T0 + 1))
    assert transactional.notification.kind == "transactional"
    state = step(state, feedback("resubscribe", ts=T0 + 2)).state
    assert state.directory.opted_out_at is None
    assert step(state, item_signal(ts=T0 + 3)).notification.kind == "marketing"


@pytest.mark.parametrize("action", ["delivered", "open", "click", "dismiss"])
def test_feedback_on_a_message_the_state_does_not_hold_changes_nothing(action):
    """Feedback that moves fatigue and channel choice is tested in test_engagement.py; here the id is unknown."""
    state = PushState(marketing_day=3, marketing_today=1, directory=UserDirectory(opted_out_at=T0 - 1),
                      recent_items={"a": RecentSend(T0, "ca")},
                      segment=2, content=DecayedScores(at=T0, scores={"red": 1.0}))
    result = step(state, feedback(action))
    assert result.state == state and result.notification is None  # an open teaches the hour upstream
    assert result.counts == ("feedback_unknown_notification",)


def test_erasure_clears_the_push_state():
    state = step(step(PushState(), item_signal(vector=[("red", 1.0)])).state, order(ts=T0 + 1)).state
    state = step(state, SegmentAssignment(USER, T0 + 1, 1, (("x", 1.0),))).state
    assert state.transactional_keys and state.recent_items and state.content.scores and state.segment == 1
    result = step(state, ErasureRequest(event_id="x", user_id=USER, ts=T0 + 2))
    assert result.state == PushState(erased_at=T0 + 2) and result.notification is None  # the time, nothing else
    # and asks the serving writer to delete what Redis holds under the user's pseudonym
    user = pseudonym(USER, CONFIG.privacy.pseudonym_key)
    assert result.serving == (DeleteKeys(KEYS.user_keys(user), KEYS.user_key_patterns(user)),
                              MarkErased(KEYS.erased(user), T0 + 2, int(CONFIG.redis.ttl_hours * 3600)),
                              VoteBestHour(user, None, 0, 0))  # and withdraw their vote for the population's hour
    assert KEYS.profile(user) in result.serving[0].keys and KEYS.inbox(user) in result.serving[0].keys
    # and tells the notifications topic, after what was sent before, so the inbox writer empties the inbox
    assert result.erasures == (UserErased(user),)


def test_a_notification_is_not_written_to_the_inbox_by_the_decision():
    """The inbox writer writes it from the committed topic, where a rolled-back send never appears."""
    result = step(PushState(), item_signal())
    assert result.notification is not None
    assert not [e for e in result.serving if isinstance(e, StoreInInbox)]


def test_an_unexpected_message_is_refused():
    with pytest.raises(ValueError, match="unexpected BehaviourEvent"):
        step(PushState(), BehaviourEvent(event_id="e", user_id=USER, behavior="view", ts=T0, item_id="i"))


# --- properties over arbitrary message sequences -------------------------------------------------

# User ids from an alphabet nothing else in a notification uses, so a leak cannot hide in a coincidence.
user_ids = st.text("ZQXJWVK", min_size=3, max_size=12).map(lambda s: "ZQXJ" + s)
# Something trending, so triggers without neighbours have candidates too.
TRENDING_SIDE = FakeSide(cards={"i5": ItemCard(category_id="c1")}, trending={None: [("i5", 4.0), ("i6", 2.0)]})


def build_message(n: int, kind: str, ts: int, rng: random.Random):
    """One message; its details come from a seeded generator so each message costs hypothesis three draws."""
    if kind == "signal":
        items = rng.sample([f"i{k}" for k in range(12)], rng.choice([0, 0, 1, 2, 3, 6]))
        trigger = rng.random() < 0.8
        summary = UserSummary(categories=tuple((c, rng.random()) for c in rng.sample(["c1", "c2"], rng.randint(0, 2))),
                              purchased=tuple(rng.sample(["i2", "i3"], rng.randint(0, 2))))
        return item_signal(event_id=f"e{n}", ts=ts, item=rng.choice(["i0", "i1", "t"]), trigger=trigger,
                           neighbours=[(i, rng.choice(["c1", "c2", None]), rng.randint(1, 9) / 10) for i in items],
                           summary=summary if trigger else None,
                           vector=rng.choice([(), [("red", 1.0)], [("blue", 0.6), ("red", 0.8)]]))
    if kind == "segment":
        return SegmentAssignment(user_id=USER, ts=ts, segment=rng.randrange(4),
                                 trend=tuple((f"i{k}", 1.0 / (j + 1)) for j, k in enumerate(rng.sample(range(12), 2))))
    if kind == "order":
        return order(status=rng.choice(["placed", "shipped", "delivered", "cancelled", "price_drop"]),
                     order_id=rng.choice(["o1", "o2", "o3"]), ts=ts, event_id=f"e{n}",
                     carrier=rng.choice([None, "dhl"]))
    if kind == "feedback":
        return feedback(rng.choice(["unsubscribe", "resubscribe", "open"]), ts=ts, event_id=f"e{n}")
    return ErasureRequest(event_id=f"e{n}", user_id=USER, ts=ts)


def event_time(message):
    return message.event.ts if isinstance(message, ItemSignal) else message.ts


# Three days from: mid-November, and the starts and ends of daylight saving in the US, Europe and
# the southern hemisphere.
BASES = (MIDNIGHT, 1_709_942_400_000, 1_711_756_800_000, 1_730_419_200_000, 1_728_086_400_000)


def messages(with_erasure=False):
    """Messages in event-time order, as in-order lanes merged in any interleaving, or in any order at all."""
    kinds = ["signal"] * 6 + ["segment"] + ["order"] * 3 + ["feedback"] + (["erase"] if with_erasure else [])
    drafts = st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 3 * DAY_MS), st.integers(0, 2 ** 32)),
                      max_size=40)

    def build(args):
        drafts, arrival, rng, base = args
        built = [build_message(n, kind, base + offset, random.Random(seed))
                 for n, (kind, offset, seed) in enumerate(drafts)]
        if arrival == "time":
            return sorted(built, key=event_time)
        if arrival == "lanes":
            lanes = [[], [], []]
            for message in built:
                lanes[rng.randrange(3)].append(message)
            return interleave([sorted(lane, key=event_time) for lane in lanes], rng)
        return built

    return st.tuples(drafts, st.sampled_from(["time", "lanes", "any"]), st.randoms(use_true_random=False),
                     st.sampled_from(BASES)).map(build)


def interleave(lanes: list[list], rng: random.Random) -> list:
    """Merge in-order lanes in a random interleaving, as a keyed shuffle merges upstream subtasks."""
    lanes = [list(lane) for lane in lanes if lane]
    out = []
    while lanes:
        lane = rng.choice(lanes)
        out.append(lane.pop(0))
        if not lane:
            lanes.remove(lane)
    return out


channel_caps = st.fixed_dictionaries({channel: st.tuples(st.integers(0, 2), st.integers(0, 4)).map(list)
                                      for channel in ("push", "email", "sms", "inbox")})
configs = st.builds(lambda cap, gap, tx_cap, zone, items, week, per_channel, quiet, session: config(
    zone, daily_marketing_cap=cap, min_marketing_gap_ms=gap, daily_transactional_cap=tx_cap,
    items_per_notification=items, renotify_cooldown_ms=DAY_MS, min_score=0.05, weekly_marketing_cap=week,
    channel_caps=per_channel, quiet_hours=quiet, session_gap_ms=session),
    st.integers(0, 3), st.sampled_from([0, 1, HOUR_MS, 5 * HOUR_MS]), st.integers(0, 3),
    st.sampled_from(["America/New_York", "UTC", "Europe/Paris", "Asia/Kolkata", "Pacific/Chatham",
                     "Australia/Lord_Howe", "America/Sao_Paulo"]),
    st.integers(1, 3), st.integers(0, 6), channel_caps,
    st.sampled_from([["21:00", "08:00"], NO_QUIET_HOURS, ["01:30", "03:30"], ["13:00", "15:45"]]),
    st.sampled_from([60_000, 30 * 60_000, 3 * HOUR_MS]))


@dataclass(frozen=True)
class Timer:
    at: int


def replay(sequence, cfg, user=USER):
    """The messages in arrival order, each after the timers the watermark (the latest event time seen)
    has passed, then every timer left, as the end of input fires them: [(message or Timer, result)]."""
    state, timers, out, watermark = PushState(), set(), [], None

    def fire(until):
        nonlocal state
        while timers and min(timers) <= until:
            at = min(timers)
            timers.discard(at)
            result = fire_one(state, at)
            out.append((Timer(at), result))
            timers.update(result.timers)
            state = result.state if result.state is not None else PushState()

    def fire_one(current, at):
        return decided(push_policy.on_timer(current, user, at, StepContext(CREATED, TRENDING_SIDE, cfg)))

    for message in sequence:
        result = handle(state, message, user, CREATED, TRENDING_SIDE, cfg)
        out.append((message, result))
        timers.update(result.timers)
        state = result.state if result.state is not None else PushState()
        if result.state is None:
            timers.clear()  # an erasure clears the key's timers' purpose: its state
        watermark = event_time(message) if watermark is None else max(watermark, event_time(message))
        fire(watermark)
    fire(2 ** 63 - 1)
    return out


def marketing(out):
    return [n for _, result in out for n in result.notifications if n.kind == "marketing"]


@PROPERTY
@given(sequence=messages(), cfg=configs)
def test_no_marketing_cap_is_ever_exceeded_and_sends_keep_the_gap(sequence, cfg):
    """Per local day and per 7 local days, all channels together and each channel, in any zone."""
    out = replay(sequence, cfg)
    sent = marketing(out)
    sends = [(local_day(n.scheduled_at, cfg), n.channel) for n in sent]
    for first in {day for day, _ in sends}:  # every 7 local days that hold a send, and every day
        window = [channel for day, channel in sends if first <= day < first + 7]
        assert len(window) <= cfg.policy.weekly_marketing_cap
        assert sum(1 for day, _ in sends if day == first) <= cfg.policy.daily_marketing_cap
        for channel, (per_day_cap, per_week_cap) in cfg.policy.channel_caps.items():
            assert window.count(channel) <= per_week_cap
            assert sum(1 for day, c in sends if day == first and c == channel) <= per_day_cap
    ordered = sorted(n.scheduled_at for n in sent)
    assert all(b - a >= cfg.policy.min_marketing_gap_ms for a, b in zip(ordered, ordered[1:]))
    for _, result in out:
        if result.state is not None:
            assert result.state.marketing_today <= cfg.policy.daily_marketing_cap
            assert result.state.transactional_today <= cfg.policy.daily_transactional_cap


@PROPERTY
@given(sequence=messages(), cfg=configs)
def test_no_marketing_goes_out_during_a_session_or_inside_quiet_hours(sequence, cfg):
    """Whatever the zone (DST included) and the order messages arrive in: at a send, no behaviour event
    the policy has seen lies within the session gap before it, and the shopper's clock is outside quiet hours."""
    out = replay(sequence, cfg)
    seen = []
    for happened, result in out:
        if isinstance(happened, ItemSignal):
            seen.append(happened.event.ts)
        for n in result.notifications:
            if n.kind != "marketing":
                continue
            assert not [ts for ts in seen if n.scheduled_at - cfg.policy.session_gap_ms < ts <= n.scheduled_at]
            assert not timing.in_quiet_hours(n.scheduled_at, cfg.directory.default_time_zone, cfg.policy.quiet_hours)


@settings(max_examples=300, deadline=None)
@given(triggers=st.lists(st.tuples(st.integers(0, 1), st.integers(-4 * HOUR_MS, 4 * HOUR_MS), st.booleans()),
                         max_size=16),
       rng=st.randoms(use_true_random=False), cap=st.integers(1, 3), gap=st.sampled_from([0, 1, HOUR_MS]))
def test_marketing_cap_holds_around_midnight_when_paths_interleave(triggers, rng, cap, gap):
    """Signals reach the scorer through several item-hop subtasks: each in order, merged in any order."""
    cfg = config(daily_marketing_cap=cap, min_marketing_gap_ms=gap)
    lanes = [[], []]
    for n, (lane, offset, empty) in enumerate(triggers):
        neighbours = [] if empty else [(f"x{n}", f"c{n}", 0.5)]
        lanes[lane].append(item_signal(event_id=f"e{n}", ts=MIDNIGHT + DAY_MS + offset, neighbours=neighbours))
    for lane in lanes:
        lane.sort(key=event_time)
    state, times = PushState(), []
    for message in interleave(lanes, rng):
        result = step(state, message, cfg)
        state = result.state
        if result.notification is not None:
            times.append(result.notification.scheduled_at)
    assert all(count <= cap for count in Counter(local_day(t, cfg) for t in times).values())
    ordered = sorted(times)
    assert all(b - a >= gap for a, b in zip(ordered, ordered[1:]))


@PROPERTY
@given(sequence=messages(), cfg=configs)
def test_transactional_follows_its_own_rules_whatever_marketing_did(sequence, cfg):
    """Model: a notified status of an order not yet notified is sent at once while the day's transactional
    cap allows (no status held for the night here: that rule has tests of its own)."""
    cfg = cfg.with_overrides({"journeys": {"night_deferred_statuses": []}})
    out = [(message, result) for message, result in replay(sequence, cfg) if not isinstance(message, Timer)]
    notified, day, today = set(), -1, 0  # the transactional day only moves forward, on order events
    for message, result in out:
        transactional = [n for n in result.notifications if n.kind == "transactional"]
        if not isinstance(message, OrderEvent):
            assert transactional == []
            continue
        if local_day(message.ts, cfg) > day:
            day, today = local_day(message.ts, cfg), 0
        key = (message.order_id, message.status)
        should_send = message.status in NOTIFIED_STATUSES and key not in notified \
            and today < cfg.policy.daily_transactional_cap
        assert [n.source_event_id for n in transactional] == ([message.event_id] if should_send else [])
        if should_send:
            notified.add(key)
            today += 1
    sent_keys = [(m.order_id, m.status) for m, r in out for n in r.notifications if n.kind == "transactional"]
    assert len(sent_keys) == len(set(sent_keys))


@PROPERTY
@given(sequence=messages(), cfg=configs)
def test_an_opted_out_user_never_gets_marketing(sequence, cfg):
    opted_out = False
    for message, result in replay(sequence, cfg):  # in the order things happened, timers included
        if isinstance(message, FeedbackEvent) and message.action in ("unsubscribe", "resubscribe"):
            opted_out = message.action == "unsubscribe"
        if opted_out:
            assert all(n.kind == "transactional" for n in result.notifications)


@PROPERTY
@given(sequence=messages(), cfg=configs)
def test_marketing_only_follows_triggers_and_never_names_an_excluded_item(sequence, cfg):
    out = replay(sequence, cfg)
    recent: dict[str, int] = {}
    for happened, result in out:
        if result.state is None:
            recent = {}
        for n in result.notifications:
            if n.journey != "recommendation":  # the other journeys name the item they are about
                continue
            message = next(m for m, _ in out if isinstance(m, ItemSignal) and m.event.event_id == n.source_event_id)
            assert message.trigger and message.event.item_id not in n.item_ids
            assert not set(message.summary.purchased) & set(n.item_ids)
            now = n.scheduled_at
            assert not [i for i in n.item_ids if i in recent and now - recent[i] < cfg.policy.renotify_cooldown_ms]
            assert len(n.item_ids) == len(set(n.item_ids)) <= cfg.policy.items_per_notification
            assert n.score >= cfg.policy.min_score
            recent.update({i: now for i in n.item_ids})


@PROPERTY
@given(sequence=messages(with_erasure=True), cfg=configs)
def test_erasure_always_clears_the_state(sequence, cfg):
    for message, result in replay(sequence, cfg):
        if isinstance(message, ErasureRequest):
            assert result.state == PushState(erased_at=message.ts)


def test_signals_and_segments_from_before_an_erasure_arriving_after_it_are_dropped():
    """They come by longer paths (through the item model, the segmenter) than the erasure does."""
    erased = step(step(PushState(), item_signal()).state, ErasureRequest(event_id="x", user_id=USER, ts=T0 + 50)).state
    late = handle(erased, item_signal(), USER, CREATED, NO_SIDE, CONFIG)  # an event at T0, before the erasure
    assert late.state == erased and late.notifications == () and late.serving == () and not late.timers
    assert late.counts == ("dropped_after_erasure",)
    segment = handle(erased, SegmentAssignment(USER, T0 + 49, 1, (("x", 1.0),)), USER, CREATED, NO_SIDE, CONFIG)
    assert segment.state == erased and segment.counts == ("dropped_after_erasure",)
    fresh = handle(erased, item_signal(event_id="e2", ts=T0 + 60), USER, CREATED, NO_SIDE, CONFIG)  # back again
    assert fresh.state != erased and "dropped_after_erasure" not in fresh.counts


@PROPERTY
@given(sequence=messages(), user=user_ids, cfg=configs)
def test_the_raw_user_id_never_appears_in_a_notification_or_serving_record(sequence, user, cfg):
    def as_user(message):
        if isinstance(message, ItemSignal):
            return replace(message, event=replace(message.event, user_id=user))
        return replace(message, user_id=user)

    sequence = [as_user(m) for m in sequence]
    for _, result in replay(sequence, cfg, user=user):
        for effect in result.serving:
            keys = [getattr(effect, name) for name in ("key", "reasons_key", "index_key", "body_key") if
                    hasattr(effect, name)] + list(getattr(effect, "keys", ())) + list(getattr(effect, "patterns", ()))
            assert keys and all(pseudonym(user, KEY) in key and user not in key for key in keys)
            assert user.encode() not in orjson.dumps(getattr(effect, "value", None))
        for n in result.notifications:
            encoded = n.encode()
            assert user.encode() not in encoded
            assert orjson.loads(encoded)["user"] == pseudonym(user, KEY)
            # The wire format keeps six decimals of the score; everything else survives exactly.
            assert Notification.decode(encoded) == n  # the score has six decimals already


@PROPERTY
@given(sequence=messages(), cfg=configs)
def test_replaying_the_same_messages_gives_the_same_notifications_and_state(sequence, cfg):
    first, second = ([result for _, result in replay(sequence, cfg)] for _ in range(2))
    assert [r.notifications for r in first] == [r.notifications for r in second]
    assert [r.serving for r in first] == [r.serving for r in second]
    assert [r.state for r in first] == [r.state for r in second]
    ids = [n.notification_id for r in first for n in r.notifications]
    assert len(ids) == len(set(ids))


@PROPERTY
@given(sequence=messages(with_erasure=True), cfg=configs)
def test_every_state_the_hop_writes_survives_its_encoding(sequence, cfg):
    for _, result in replay(sequence, cfg):
        if result.state is not None:
            assert PushState.decode(result.state.encode()) == result.state


def test_by_default_a_browse_recommendation_names_the_item_looked_at_first_and_not_again_within_the_cooldown():
    reengage = JobConfig()  # the defaults: re-engagement, recency in the blend
    sent = step(PushState(), item_signal(event_id="t1", ts=T0), reengage)
    assert sent.notification.item_ids == ("trigger", "a", "b")
    again = step(sent.state, item_signal(event_id="t2", ts=T0 + DAY_MS), reengage)
    assert again.notification.item_ids == ("c", "d")  # the three named yesterday are in their cooldown
    discovery = step(PushState(), item_signal(event_id="t1", ts=T0), CONFIG)
    assert discovery.notification.item_ids == ("a", "b", "c")
