"""Attribution (issue 11): a cart or purchase after a marketing message that named the item, or weaker its category,
within the window, is that message's outcome, with its journey, channel, template and the shopper's variants; a
holdout shopper's outcomes name the exposure."""
from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from operators import engagement
from state_schemas.events import BehaviourEvent
from state_schemas.hops import ItemSignal
from state_schemas.outputs import Exposure, Notification, Outcome
from state_schemas.state import Engagement, ItemCard, SentNote
from tests.unit.operators.test_experiments import USERS, run, with_tests
from tests.unit.operators.test_push_policy import SENT, T0, item_signal

HOUR = 3_600_000
CONFIG = with_tests(cap={"salt": "cap-1", "variants": {"a": {}, "b": {}}})
FEEDBACK = CONFIG.feedback


def act(behavior: str, item: str, category: str, ts: int, user: str) -> ItemSignal:
    event = BehaviourEvent(event_id=f"{behavior}-{item}-{ts}", user_id=user, behavior=behavior, ts=ts, item_id=item,
                           category_id=category)
    return ItemSignal(event=event, card=ItemCard(category_id=category), trigger=False)


def sent_marketing(emitted):
    return [m.notification if isinstance(m, Exposure) else m for m in emitted
            if isinstance(m, (Notification, Exposure))]


def test_a_cart_of_a_named_item_is_the_outcome_of_the_message_with_its_journey_channel_template_and_variant():
    user = USERS[0]
    emitted, _, counts = run(user, CONFIG, item_signal(user=user), act("cart", "b", "zz", SENT + HOUR, user),
                             act("purchase", "a", "zz", SENT + 2 * HOUR, user))
    message = sent_marketing(emitted)[0]  # the recommendation; a reminder of the cart may follow
    assert {"a", "b"} <= set(message.item_ids)
    outcomes = [m for m in emitted if isinstance(m, Outcome)]
    assert [(o.behavior, o.item_id, o.match, o.notification_id) for o in outcomes] == [
        ("cart", "b", "item", message.notification_id), ("purchase", "a", "item", message.notification_id)]
    first = outcomes[0]
    assert (first.journey, first.channel, first.template, first.sent_at, first.user) == (
        message.journey, message.channel, message.template, message.scheduled_at, message.user)
    assert first.experiments == message.experiments and first.experiments[0][0] == "cap" and not first.holdout
    assert counts.count("outcomes_attributed") == 2


def test_the_category_counts_only_when_no_message_named_the_item_and_the_window_closes():
    user = USERS[1]
    window = int(FEEDBACK.attribution_window_hours * HOUR)
    # Purchases: a cart would plan reminders, messages of their own
    emitted, _, _ = run(user, CONFIG, item_signal(user=user),
                        act("purchase", "other", "ca", SENT + HOUR, user),  # a's category (NEIGHBOURS)
                        act("purchase", "other", "elsewhere", SENT + HOUR + 1, user),
                        act("purchase", "a", "ca", SENT + window - 1, user),
                        act("purchase", "a", "ca", SENT + window, user))
    assert [(o.item_id, o.match, o.ts - SENT) for o in emitted if isinstance(o, Outcome)] == [
        ("other", "category", HOUR), ("a", "item", window - 1)]


def test_a_holdout_shoppers_outcome_names_the_exposure():
    held = next(u for u in USERS if int.from_bytes(hashlib.sha256(f"holdout-1\0{u}".encode()).digest()[:8], "big")
                / 2 ** 64 < 0.5)
    config = with_tests(holdout_share=0.5)
    emitted, _, _ = run(held, config, item_signal(user=held), act("purchase", "a", "ca", SENT + HOUR, held))
    [exposure] = [m for m in emitted if isinstance(m, Exposure)]
    [outcome] = [m for m in emitted if isinstance(m, Outcome)]
    assert outcome.holdout and outcome.notification_id == exposure.notification.notification_id
    assert not [m for m in emitted if isinstance(m, Notification) and m.kind == "marketing"]


def test_a_cart_before_the_message_or_without_one_is_no_ones_outcome():
    user = USERS[2]
    emitted, _, _ = run(user, CONFIG, act("cart", "a", "ca", T0 - HOUR, user))
    assert not [m for m in emitted if isinstance(m, Outcome)]


notes = st.dictionaries(st.sampled_from(["n1", "n2", "n3", "n4"]), st.builds(
    SentNote, channel=st.just("push"), journey=st.just("recommendation"), at=st.integers(0, 100 * HOUR),
    marketing=st.booleans(), items=st.lists(st.sampled_from("abc"), max_size=2).map(tuple),
    categories=st.lists(st.sampled_from("xyz"), max_size=2).map(tuple)))


@settings(max_examples=300, deadline=None)
@given(sent=notes, item=st.sampled_from("abcd"), category=st.sampled_from("xyzw"), at=st.integers(0, 130 * HOUR))
def test_attribution_picks_the_latest_message_in_the_window_by_item_before_category(sent, item, category, at):
    found = engagement.attributed(Engagement(sent=sent), item, category, at, FEEDBACK)
    window = FEEDBACK.attribution_window_hours * HOUR
    live = {i: n for i, n in sent.items() if n.marketing and n.at <= at < n.at + window}
    by_item = [i for i, n in live.items() if item in n.items]
    by_category = [i for i, n in live.items() if category in n.categories]
    if not by_item and not by_category:
        assert found is None
        return
    sent_id, note, match = found
    assert match == ("item" if by_item else "category")
    candidates = by_item or by_category
    assert sent_id in candidates and note == sent[sent_id]
    assert note.at == max(sent[i].at for i in candidates)
