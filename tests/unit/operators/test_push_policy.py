"""push_policy: caps, gaps, cooldowns, opt-out, transactional before marketing, erasure, pseudonyms."""
from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.config import JobConfig, load_config
from operators.push_policy import (TRANSACTIONAL_TEMPLATES, handle, notification_id, pseudonym,
                                   score_candidates)
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.outputs import Notification
from state_schemas.state import CandidateSet, Neighbour, PushState

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MIDNIGHT = 1_699_920_000_000  # 2023-11-14 00:00:00 UTC
T0 = MIDNIGHT + 10 * HOUR_MS
CONFIG = JobConfig()
POLICY = CONFIG.policy
KEY = CONFIG.privacy.pseudonym_key
USER = "u1"
CREATED = 1_800_000_000_000

PROPERTY = settings(max_examples=150, deadline=None)


def policy(**overrides):
    return load_config(overrides={"policy": overrides}).policy


def candidate_set(event_id="e1", ts=T0, item="trigger", behavior="view", neighbours=None, affinity=(),
                  exclude=(), user=USER) -> CandidateSet:
    event = BehaviourEvent(event_id=event_id, user_id=user, behavior=behavior, ts=ts, item_id=item,
                           category_id="ct").to_dict()
    if neighbours is None:
        neighbours = [("a", "ca", 6.0), ("b", "cb", 4.0), ("c", "cc", 2.0), ("d", "cd", 1.0)]
    return CandidateSet(event=event, trigger_category="ct", candidates=tuple(Neighbour(*n) for n in neighbours),
                        affinity=tuple(affinity), exclude=tuple(exclude))


def order(status="shipped", order_id="o1", ts=T0, event_id=None, user=USER, carrier=None, items=("i1",)):
    return OrderEvent(event_id=event_id or f"{order_id}-{status}-{ts}", user_id=user, order_id=order_id,
                      status=status, ts=ts, item_ids=tuple(items), carrier=carrier)


def feedback(action, ts=T0, event_id=None):
    return FeedbackEvent(event_id=event_id or f"f-{action}-{ts}", user_id=USER, action=action, ts=ts,
                         notification_id=None if action in ("unsubscribe", "resubscribe") else "n1")


def step(state, message, config=POLICY, user=USER):
    return handle(state, message, user, CREATED, config, KEY)


def expected_score(co, top, aff, config=POLICY):
    """The documented blend: co-occurrence relative to the best, damped by evidence, plus affinity."""
    return config.weight_cooccurrence * (co / top) * (1 - math.exp(-co / 2)) + config.weight_affinity * aff


def local_day(ts, config=POLICY):
    return (ts + config.utc_offset_minutes * 60_000) // DAY_MS


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
    cs = candidate_set()
    assert step(PushState(), cs).notification == step(PushState(), cs).notification
    shipped = order()
    assert step(PushState(), shipped).notification == step(PushState(), shipped).notification


# --- scoring -------------------------------------------------------------------------------------

def test_scores_blend_cooccurrence_and_affinity_and_rank_best_first():
    cs = candidate_set(neighbours=[("a", "ca", 4.0), ("b", "cb", 2.0), ("c", None, 1.0)],
                       affinity=[("cb", 1.0), ("ca", 0.25)])
    scored = score_candidates(cs, PushState(), T0, POLICY)
    expected = sorted([(expected_score(4, 4, 0.25), "a", "ca"), (expected_score(2, 4, 1.0), "b", "cb"),
                       (expected_score(1, 4, 0.0), "c", None)], key=lambda e: -e[0])
    assert [item for _, item, _ in scored] == [item for _, item, _ in expected]
    assert [s for s, _, _ in scored] == pytest.approx([s for s, _, _ in expected], rel=1e-12)


def test_scoring_drops_the_trigger_excluded_and_recently_sent_items():
    cs = candidate_set(item="a", neighbours=[("a", "c", 5.0), ("b", "c", 5.0), ("c", "c", 5.0), ("d", "c", 5.0),
                                             ("e", "c", 5.0)], exclude=["b"])
    cooldown = POLICY.renotify_cooldown_ms
    state = PushState(recent_items={"c": T0 - cooldown + 1, "d": T0 - cooldown})
    assert [item for _, item, _ in score_candidates(cs, state, T0, POLICY)] == ["d", "e"]


def test_a_marketing_notification_names_the_best_items_and_says_why():
    cs = candidate_set(event_id="trig-1", behavior="cart", affinity=[("cd", 1.0)])
    result = step(PushState(), cs)
    n = result.notification
    assert result.suppressed is None
    assert n.kind == "marketing" and n.channel == POLICY.channel
    assert n.user == pseudonym(USER, KEY)
    assert n.notification_id == notification_id(pseudonym(USER, KEY), "trig-1", "marketing")
    assert n.source_event_id == "trig-1" and n.source_event_time == T0 and n.created_at == CREATED
    scores = {"a": expected_score(6, 6, 0), "b": expected_score(4, 6, 0), "c": expected_score(2, 6, 0),
              "d": expected_score(1, 6, 1.0)}
    best = sorted(scores, key=lambda i: -scores[i])[:POLICY.items_per_notification]
    assert n.item_ids == tuple(best)
    assert n.score == pytest.approx(scores[best[0]])
    assert n.body == "3 items that go with what you added to your cart."
    assert n.reason == "because you added to your cart item trigger"
    assert result.state.marketing_today == 1 and result.state.last_marketing_ts == T0
    assert result.state.recent_items == {item: T0 for item in best}
    assert result.state.marketing_day == local_day(T0)
    assert result.state.transactional_day == -1  # each kind keeps its own day


def test_one_item_gets_the_singular_wording_and_the_channel_follows_config():
    cs = candidate_set(neighbours=[("a", "ca", 6.0)], behavior="favourite")
    n = step(PushState(), cs, policy(channel="email")).notification
    assert n.body == "An item that goes with what you saved."
    assert n.channel == "email"


def test_candidates_below_min_score_are_not_sent():
    weak = candidate_set(neighbours=[("a", "ca", 1.0)])  # 0.7 * (1 - e^-0.5) = 0.275
    assert step(PushState(), weak, policy(min_score=0.3)).suppressed == "no_candidate"
    assert step(PushState(), weak, policy(min_score=0.27)).notification.item_ids == ("a",)


def test_nothing_to_recommend_is_suppressed_without_using_the_cap():
    result = step(PushState(), candidate_set(neighbours=[]))
    assert result.notification is None and result.suppressed == "no_candidate"
    assert result.state.marketing_today == 0 and result.state.last_marketing_ts is None


def test_an_item_is_not_recommended_again_within_the_cooldown():
    config = policy(min_marketing_gap_ms=0, items_per_notification=1)
    state = PushState()
    sent = []
    for n in range(3):
        result = step(state, candidate_set(event_id=f"e{n}", ts=T0 + n), config)
        state = result.state
        sent.extend(result.notification.item_ids)
    assert sent == ["a", "b", "c"]
    later = T0 + config.renotify_cooldown_ms
    assert step(state, candidate_set(event_id="late", ts=later), config).notification.item_ids == ("a",)


# --- marketing caps and gaps ---------------------------------------------------------------------

def test_the_daily_cap_suppresses_marketing_until_the_next_local_day():
    config = policy(daily_marketing_cap=2, min_marketing_gap_ms=0, renotify_cooldown_ms=1)
    state = PushState()
    outcomes = []
    for n, ts in enumerate([T0, T0 + 1, T0 + 2, MIDNIGHT + DAY_MS]):
        result = step(state, candidate_set(event_id=f"e{n}", ts=ts), config)
        state = result.state
        outcomes.append(result.suppressed or "sent")
    assert outcomes == ["sent", "sent", "daily_cap", "sent"]
    assert state.marketing_today == 1


def test_the_local_day_follows_the_utc_offset():
    late_evening = MIDNIGHT + 23 * HOUR_MS + 30 * 60_000  # 23:30 UTC
    for offset, expected in [(0, "daily_cap"), (60, None)]:  # at UTC+1 it is already 00:30 the next day
        config = policy(daily_marketing_cap=1, min_marketing_gap_ms=0, utc_offset_minutes=offset,
                        renotify_cooldown_ms=1)
        first = step(PushState(), candidate_set(event_id="e1", ts=MIDNIGHT + 21 * HOUR_MS), config)
        assert first.notification is not None
        assert step(first.state, candidate_set(event_id="e2", ts=late_evening), config).suppressed == expected


def test_two_marketing_sends_keep_the_minimum_gap():
    config = policy(renotify_cooldown_ms=1)
    gap = config.min_marketing_gap_ms
    first = step(PushState(), candidate_set(event_id="e1", ts=T0), config)
    assert step(first.state, candidate_set(event_id="e2", ts=T0 + gap - 1), config).suppressed == "min_gap"
    assert step(first.state, candidate_set(event_id="e3", ts=T0 + gap), config).notification is not None
    # A trigger older than the last send is never sent (marketing goes out in event-time order).
    assert step(first.state, candidate_set(event_id="e4", ts=T0 - gap), config).suppressed == "min_gap"


def test_a_zero_cap_sends_no_marketing():
    assert step(PushState(), candidate_set(), policy(daily_marketing_cap=0)).suppressed == "daily_cap"


def test_a_late_trigger_from_a_day_already_used_cannot_exceed_that_days_cap():
    """The day rolls over on a later message; a late trigger from the old day must still respect its cap."""
    config = policy(daily_marketing_cap=1, min_marketing_gap_ms=HOUR_MS, renotify_cooldown_ms=1)
    state = step(PushState(), candidate_set(event_id="d0-a", ts=MIDNIGHT + 10 * HOUR_MS), config).state
    nothing = candidate_set(event_id="d1", ts=MIDNIGHT + DAY_MS + HOUR_MS, neighbours=[])
    state = step(state, nothing, config).state  # next day, nothing to send: the day rolls anyway
    late = step(state, candidate_set(event_id="d0-b", ts=MIDNIGHT + 20 * HOUR_MS), config)
    assert late.notification is None


def test_a_late_trigger_from_a_day_without_marketing_may_still_be_sent():
    config = policy(daily_marketing_cap=1, min_marketing_gap_ms=HOUR_MS, renotify_cooldown_ms=1)
    nothing = candidate_set(event_id="d1", ts=MIDNIGHT + DAY_MS + HOUR_MS, neighbours=[])
    state = step(PushState(), nothing, config).state  # the marketing day rolls to day 1
    late = step(state, candidate_set(event_id="d0", ts=MIDNIGHT + 20 * HOUR_MS), config)
    assert late.notification is not None


def test_orders_do_not_roll_the_marketing_day_and_candidates_do_not_roll_the_transactional_day():
    config = policy(daily_marketing_cap=1, daily_transactional_cap=1, min_marketing_gap_ms=0,
                    renotify_cooldown_ms=1)
    state = step(PushState(), candidate_set(event_id="m0", ts=T0), config).state
    state = step(state, order(order_id="o0", ts=T0), config).state
    state = step(state, order(order_id="o1", ts=T0 + DAY_MS), config).state  # transactional day 1
    assert state.marketing_day == local_day(T0) and state.transactional_day == local_day(T0) + 1
    assert step(state, candidate_set(event_id="m1", ts=T0 + 1), config).suppressed == "daily_cap"


# --- transactional -------------------------------------------------------------------------------

@pytest.mark.parametrize("status", sorted(TRANSACTIONAL_TEMPLATES))
def test_each_notified_status_sends_a_transactional_notification(status):
    event = order(status=status, order_id="o-77", carrier="DHL", items=("i1", "i2"))
    result = step(PushState(), event)
    n = result.notification
    assert n.kind == "transactional" and n.channel == "push"
    assert n.title == TRANSACTIONAL_TEMPLATES[status][0]
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
    assert step(PushState(), order()).notification.body == "Order o1 has shipped."


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
    config = policy(daily_transactional_cap=2)
    state, outcomes = PushState(), []
    for n, ts in enumerate([T0, T0 + 1, T0 + 2, MIDNIGHT + DAY_MS]):
        result = step(state, order(order_id=f"o{n}", ts=ts), config)
        state = result.state
        outcomes.append(result.suppressed or "sent")
    assert outcomes == ["sent", "sent", "transactional_cap", "sent"]


def test_transactional_is_not_blocked_by_an_exhausted_marketing_cap_or_gap():
    config = policy(daily_marketing_cap=1)
    state = step(PushState(), candidate_set(), config).state
    assert step(state, candidate_set(event_id="e2", ts=T0 + 2 * HOUR_MS), config).suppressed == "daily_cap"
    result = step(state, order(ts=T0 + 1), config)
    assert result.notification is not None and result.notification.kind == "transactional"
    assert result.state.marketing_today == 1


# --- feedback, opt-out and erasure ---------------------------------------------------------------

def test_an_unsubscribed_user_gets_transactional_but_no_marketing_until_resubscribing():
    state = step(PushState(), feedback("unsubscribe")).state
    assert state.opted_out
    marketing = step(state, candidate_set(ts=T0 + 1))
    assert marketing.notification is None and marketing.suppressed == "opted_out"
    transactional = step(state, order(ts=T0 + 1))
    assert transactional.notification.kind == "transactional"
    state = step(state, feedback("resubscribe", ts=T0 + 2)).state
    assert not state.opted_out
    assert step(state, candidate_set(ts=T0 + 3)).notification.kind == "marketing"


@pytest.mark.parametrize("action", ["delivered", "open", "click", "dismiss"])
def test_other_feedback_changes_nothing(action):
    state = PushState(marketing_day=3, marketing_today=1, opted_out=True, recent_items={"a": T0})
    result = step(state, feedback(action))
    assert result.state == state and result.notification is None


def test_erasure_clears_the_push_state():
    state = step(step(PushState(), candidate_set()).state, order(ts=T0 + 1)).state
    assert state.transactional_keys and state.recent_items
    result = step(state, ErasureRequest(event_id="x", user_id=USER, ts=T0 + 2))
    assert result.state is None and result.notification is None


def test_an_unexpected_message_is_refused():
    with pytest.raises(ValueError, match="unexpected BehaviourEvent"):
        step(PushState(), BehaviourEvent(event_id="e", user_id=USER, behavior="view", ts=T0, item_id="i"))


# --- properties over arbitrary message sequences -------------------------------------------------

# User ids from an alphabet nothing else in a notification uses, so a leak cannot hide in a coincidence.
user_ids = st.text("ZQXJWVK", min_size=3, max_size=12).map(lambda s: "ZQXJ" + s)


def build_message(n: int, kind: str, ts: int, rng: random.Random):
    """One message; its details come from a seeded generator so each message costs hypothesis three draws."""
    if kind == "candidates":
        items = rng.sample([f"i{k}" for k in range(12)], rng.choice([0, 0, 1, 2, 3, 6]))
        return candidate_set(event_id=f"e{n}", ts=ts, item=rng.choice(["i0", "i1", "t"]),
                             neighbours=[(i, rng.choice(["c1", "c2", None]), float(rng.randint(1, 9))) for i in items],
                             affinity=[(c, rng.random()) for c in rng.sample(["c1", "c2"], rng.randint(0, 2))],
                             exclude=rng.sample(["i2", "i3"], rng.randint(0, 2)))
    if kind == "order":
        return order(status=rng.choice(["placed", "shipped", "delivered", "cancelled", "price_drop"]),
                     order_id=rng.choice(["o1", "o2", "o3"]), ts=ts, event_id=f"e{n}",
                     carrier=rng.choice([None, "dhl"]))
    if kind == "feedback":
        return feedback(rng.choice(["unsubscribe", "resubscribe", "open"]), ts=ts, event_id=f"e{n}")
    return ErasureRequest(event_id=f"e{n}", user_id=USER, ts=ts)


def messages(with_erasure=False):
    """Messages in event-time order, as in-order lanes merged in any interleaving, or in any order at all."""
    kinds = ["candidates"] * 6 + ["order"] * 3 + ["feedback"] + (["erase"] if with_erasure else [])
    drafts = st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 3 * DAY_MS), st.integers(0, 2 ** 32)),
                      max_size=40)

    def event_time(message):
        return message.event["ts"] if isinstance(message, CandidateSet) else message.ts

    def build(args):
        drafts, arrival, rng = args
        built = [build_message(n, kind, MIDNIGHT + offset, random.Random(seed))
                 for n, (kind, offset, seed) in enumerate(drafts)]
        if arrival == "time":
            return sorted(built, key=event_time)
        if arrival == "lanes":
            lanes = [[], [], []]
            for message in built:
                lanes[rng.randrange(3)].append(message)
            return interleave([sorted(lane, key=event_time) for lane in lanes], rng)
        return built

    return st.tuples(drafts, st.sampled_from(["time", "lanes", "any"]), st.randoms(use_true_random=False)).map(build)


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


policies = st.builds(lambda cap, gap, tx_cap, offset, items: policy(
    daily_marketing_cap=cap, min_marketing_gap_ms=gap, daily_transactional_cap=tx_cap, utc_offset_minutes=offset,
    items_per_notification=items, renotify_cooldown_ms=DAY_MS, min_score=0.05),
    st.integers(0, 3), st.sampled_from([0, 1, HOUR_MS, 5 * HOUR_MS]), st.integers(0, 3),
    st.sampled_from([-300, 0, 60, 330]), st.integers(1, 3))


def replay(sequence, config, user=USER):
    state, results = PushState(), []
    for message in sequence:
        result = handle(state, message, user, CREATED, config, KEY)
        results.append(result)
        state = result.state if result.state is not None else PushState()
    return results


@PROPERTY
@given(sequence=messages(), config=policies)
def test_marketing_per_local_day_never_exceeds_the_cap_and_sends_keep_the_gap(sequence, config):
    results = replay(sequence, config)
    times = [r.notification.source_event_time for r in results
             if r.notification is not None and r.notification.kind == "marketing"]
    per_day = Counter(local_day(t, config) for t in times)
    assert all(count <= config.daily_marketing_cap for count in per_day.values())
    ordered = sorted(times)
    assert all(b - a >= config.min_marketing_gap_ms for a, b in zip(ordered, ordered[1:]))
    for result in results:
        if result.state is not None:
            assert result.state.marketing_today <= config.daily_marketing_cap
            assert result.state.transactional_today <= config.daily_transactional_cap


@settings(max_examples=300, deadline=None)
@given(triggers=st.lists(st.tuples(st.integers(0, 1), st.integers(-4 * HOUR_MS, 4 * HOUR_MS), st.booleans()),
                         max_size=16),
       rng=st.randoms(use_true_random=False), cap=st.integers(1, 3), gap=st.sampled_from([0, 1, HOUR_MS]))
def test_marketing_cap_holds_around_midnight_when_paths_interleave(triggers, rng, cap, gap):
    """Candidates reach the push hop through several item-hop subtasks: each in order, merged in any order."""
    config = policy(daily_marketing_cap=cap, min_marketing_gap_ms=gap)
    lanes = [[], []]
    for n, (lane, offset, empty) in enumerate(triggers):
        neighbours = [] if empty else [(f"x{n}", "c1", 5.0)]
        lanes[lane].append(candidate_set(event_id=f"e{n}", ts=MIDNIGHT + DAY_MS + offset, neighbours=neighbours))
    for lane in lanes:
        lane.sort(key=lambda cs: cs.event["ts"])
    times = [r.notification.source_event_time for r in replay(interleave(lanes, rng), config)
             if r.notification is not None]
    assert all(count <= cap for count in Counter(local_day(t, config) for t in times).values())
    ordered = sorted(times)
    assert all(b - a >= gap for a, b in zip(ordered, ordered[1:]))


@PROPERTY
@given(sequence=messages(), config=policies)
def test_transactional_follows_its_own_rules_whatever_marketing_did(sequence, config):
    """Model: a notified status of an order not yet notified is sent while the day's transactional cap allows."""
    results = replay(sequence, config)
    notified, day, today = set(), -1, 0  # the transactional day only moves forward, on order events
    for message, result in zip(sequence, results):
        if not isinstance(message, OrderEvent):
            assert result.notification is None or result.notification.kind == "marketing"
            continue
        if local_day(message.ts, config) > day:
            day, today = local_day(message.ts, config), 0
        key = (message.order_id, message.status)
        should_send = message.status in TRANSACTIONAL_TEMPLATES and key not in notified \
            and today < config.daily_transactional_cap
        assert (result.notification is not None) == should_send
        if should_send:
            assert result.notification.kind == "transactional"
            notified.add(key)
            today += 1
    sent_keys = [(m.order_id, m.status) for m, r in zip(sequence, results) if r.notification is not None
                 and r.notification.kind == "transactional"]
    assert len(sent_keys) == len(set(sent_keys))


@PROPERTY
@given(sequence=messages(), config=policies)
def test_an_opted_out_user_never_gets_marketing(sequence, config):
    results = replay(sequence, config)
    opted_out = False
    for message, result in zip(sequence, results):
        if isinstance(message, FeedbackEvent) and message.action in ("unsubscribe", "resubscribe"):
            opted_out = message.action == "unsubscribe"
        if opted_out and result.notification is not None:
            assert result.notification.kind == "transactional"


@PROPERTY
@given(sequence=messages(with_erasure=True), config=policies)
def test_erasure_always_clears_the_state(sequence, config):
    for message, result in zip(sequence, replay(sequence, config)):
        assert (result.state is None) == isinstance(message, ErasureRequest)


@PROPERTY
@given(sequence=messages(), user=user_ids, config=policies)
def test_the_raw_user_id_never_appears_in_a_notification(sequence, user, config):
    def as_user(message):
        if isinstance(message, CandidateSet):
            return replace(message, event=dict(message.event, user_id=user))
        return replace(message, user_id=user)

    sequence = [as_user(m) for m in sequence]
    for result in replay(sequence, config, user=user):
        if result.notification is None:
            continue
        encoded = result.notification.encode()
        assert user.encode() not in encoded
        assert orjson.loads(encoded)["user"] == pseudonym(user, KEY)
        # The wire format keeps six decimals of the score; everything else survives exactly.
        assert Notification.decode(encoded) == replace(result.notification, score=round(result.notification.score, 6))


@PROPERTY
@given(sequence=messages(), config=policies)
def test_replaying_the_same_messages_gives_the_same_notifications(sequence, config):
    first = [r.notification for r in replay(sequence, config)]
    assert first == [r.notification for r in replay(sequence, config)]
    ids = [n.notification_id for n in first if n is not None]
    assert len(ids) == len(set(ids))
