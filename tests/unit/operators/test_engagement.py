"""Feedback that changes decisions (operators.engagement): fatigue, channel choice, unknown ids."""
import pytest
from hypothesis import given, strategies as st
from msgspec.structs import replace

from config import load_config
from operators import engagement, push_policy
from operators.privacy import notification_id, pseudonym
from state_schemas.events import FeedbackEvent
from state_schemas.hops import AccountEvent
from state_schemas.state import Engagement, PushState, Rates, SentNote, UserDirectory
from tests.unit.operators.test_push_policy import (CREATED, DAY_MS, NO_SIDE, T0, USER, fire, handle, item_signal,
                                                   step)

CONFIG = load_config(overrides={"scoring": {"name_trigger_item": False, "weight_recency": 0.0},
                                "policy": {"quiet_hours": ["00:00", "00:00"]}})
FEEDBACK = CONFIG.feedback


def feedback(action, notification_id, ts, n=0):
    return AccountEvent(event=FeedbackEvent(event_id=f"f{n}-{action}-{ts}", user_id=USER, action=action, ts=ts,
                                            notification_id=notification_id))


def send_days(state, days, start=0, cfg=CONFIG, delivered=False):
    """One browse recommendation a day (each reported delivered an hour after it went, if `delivered`);
    the notifications sent."""
    sent = []
    for day in range(start, start + days):
        result = step(state, item_signal(event_id=f"t{day}", ts=T0 + day * DAY_MS,
                                         neighbours=[(f"i{day}-{k}", f"c{k}", 0.5) for k in range(3)]), cfg)
        state = result.state
        sent.append(result.notification)
        if delivered and result.notification is not None:
            receipt = feedback("delivered", result.notification.notification_id,
                               result.notification.scheduled_at + 3_600_000)
            state = step(state, receipt, cfg).state
    return state, sent


def test_without_delivery_reports_no_one_tires():
    state, sent = send_days(PushState(), 6)
    assert all(n is not None for n in sent) and state.engagement.ignored == 0


def test_fatigue_backs_marketing_off_after_messages_ignored_and_ends_with_an_open():
    state, sent = send_days(PushState(), FEEDBACK.fatigue_after, delivered=True)
    assert all(n is not None for n in sent) and state.engagement.ignored == 3
    # Three ignored: the next may go only a fatigue gap (a day) after the last; the day after is fine.
    state, sent = send_days(state, 1, start=3, delivered=True)
    assert sent[0] is not None and state.engagement.ignored == 4
    # Four ignored: two days now; tomorrow's is dropped as fatigue.
    blocked = step(state, item_signal(event_id="t4", ts=T0 + 4 * DAY_MS,
                                      neighbours=[("x1", "c1", 0.5)]), CONFIG)
    assert blocked.notification is None and blocked.suppressed == "fatigue"
    # An open of any earlier message ends it: the next goes out as usual.
    opened = step(blocked.state, feedback("open", sent[0].notification_id, T0 + 4 * DAY_MS + 1), CONFIG)
    assert opened.state.engagement.ignored == 0 and opened.counts == ("feedback_open",)
    again = step(opened.state, item_signal(event_id="t5", ts=T0 + 4 * DAY_MS + 2 * 3_600_000,
                                           neighbours=[("x2", "c1", 0.5)]), CONFIG)
    assert again.notification is not None


@given(st.integers(0, 30))
def test_the_fatigue_gap_grows_with_each_message_ignored_and_is_capped(ignored):
    gap = engagement.marketing_gap(Engagement(ignored=ignored), 3_600_000, FEEDBACK)
    more = engagement.marketing_gap(Engagement(ignored=ignored + 1), 3_600_000, FEEDBACK)
    assert 3_600_000 <= gap <= more <= FEEDBACK.fatigue_max_gap_ms
    if ignored < FEEDBACK.fatigue_after:
        assert gap == 3_600_000
    elif ignored == FEEDBACK.fatigue_after:
        assert gap == FEEDBACK.fatigue_gap_ms


def test_feedback_on_an_unknown_notification_is_counted_and_changes_nothing():
    state, sent = send_days(PushState(), 1)
    unknown = step(state, feedback("click", "no-such-id", T0 + DAY_MS // 2), CONFIG)
    assert unknown.state == state and unknown.counts == ("feedback_unknown_notification",)


def test_an_open_and_a_click_count_once_per_message_on_its_channel_and_journey():
    state, sent = send_days(PushState(), 1)
    nid = sent[0].notification_id
    for n, action in enumerate(["delivered", "open", "open", "click", "click", "dismiss"]):
        state = step(state, feedback(action, nid, T0 + DAY_MS // 2, n), CONFIG).state
    push = state.engagement.channels[sent[0].channel]
    assert (push.sends, push.opens, push.clicks) == pytest.approx((1.0, 1.0, 1.0))
    assert state.engagement.journeys["recommendation"].opens == pytest.approx(1.0)


def test_a_complaint_ends_marketing_as_an_unsubscribe_does():
    state, sent = send_days(PushState(), 1)
    complained = push_policy.handle(state, feedback("complained", sent[0].notification_id, T0 + 10), USER,
                                    CREATED, NO_SIDE, CONFIG)
    assert complained.state.directory.opted_out_at == T0 + 10 and "feedback_complained" in complained.counts
    _, later = send_days(complained.state, 1, start=1)
    assert later[0] is None


def evidence(push_opens, email_opens, sends):
    return Engagement(channels={"push": Rates(sends, push_opens, 0.0, T0),
                                "email": Rates(sends, email_opens, 0.0, T0)})


def test_channel_choice_moves_only_with_enough_evidence():
    channels = ("push", "email")
    assert engagement.channel_order(Engagement(), channels, FEEDBACK) == channels  # nothing learned
    assert engagement.channel_order(evidence(0, 4, 4), channels, FEEDBACK) == channels  # 4 sends: too few
    assert engagement.channel_order(evidence(1, 2, 10), channels, FEEDBACK) == channels  # 10% vs 20%: overlapping
    assert engagement.channel_order(evidence(1, 8, 10), channels, FEEDBACK) == ("email", "push")  # 10% vs 80%
    assert engagement.channel_order(evidence(8, 1, 10), channels, FEEDBACK) == channels  # the preferred one wins
    assert engagement.channel_order(evidence(1, 8, 10), ("push",), FEEDBACK) == ("push",)  # only what is consented


@given(st.floats(0, 50), st.floats(0.5, 50), st.floats(0.5, 3))
def test_wilson_intervals_hold_the_rate(opens, sends, z):
    opens = min(opens, sends)
    low, high = engagement.wilson(opens, sends, z)
    assert 0.0 <= low <= opens / sends + 1e-12 and opens / sends <= high + 1e-12 and high <= 1.0


def test_the_engaged_channel_is_used_for_the_next_message():
    consented = UserDirectory(listed_at=T0 - 1, channels=("push", "email"),
                              consent={"marketing": ("push", "email"), "transactional": ("push",)})
    state = PushState(directory=consented, engagement=evidence(1, 8, 10))
    _, sent = send_days(state, 1)
    assert sent[0].channel == "email"
    _, baseline = send_days(replace(state, engagement=Engagement()), 1)
    assert baseline[0].channel == "push"


def test_notes_are_bounded():
    _, sent = send_days(PushState(), 1)
    state = Engagement()
    for n in range(FEEDBACK.notes_kept + 10):
        state = engagement.on_sent(state, replace(sent[0], notification_id=f"n{n}", scheduled_at=T0 + n), FEEDBACK)
    assert len(state.sent) == FEEDBACK.notes_kept
    assert "n9" not in state.sent and "n10" in state.sent and isinstance(state.sent["n59"], SentNote)  # oldest go


def test_feedback_that_comes_before_its_messages_timer_decides_that_message_first():
    """In a replay the open (event time after the send) can reach the policy before the watermark fires the
    send's timer: the message due is decided first, so the open finds it."""
    held = handle(PushState(), item_signal(event_id="t0", ts=T0), USER, CREATED, NO_SIDE, CONFIG)
    assert held.notification is None and held.timers  # waiting for the session to end
    sent_id = notification_id(pseudonym(USER, CONFIG.privacy.pseudonym_key), "t0", "marketing")
    waiting = handle(held.state, feedback("open", sent_id, T0 + 3 * 3_600_000), USER, CREATED, NO_SIDE, CONFIG)
    assert waiting.notification is None and waiting.timers == (T0 + 3 * 3_600_000,)  # it waits for its time
    assert waiting.state.pending_feedback and waiting.counts == ()
    opened = fire(waiting.state, T0 + 3 * 3_600_000, CONFIG)
    assert opened.notification is not None and opened.notification.notification_id == sent_id
    assert "feedback_open" in opened.counts and opened.state.engagement.ignored == 0
    assert opened.state.pending_feedback == ()


def test_feedback_arriving_before_the_behaviour_that_led_to_its_message_still_finds_it():
    """The open comes by the short path; the view that planned the message by the item model's longer one."""
    sent_id = notification_id(pseudonym(USER, CONFIG.privacy.pseudonym_key), "t0", "marketing")
    early = handle(PushState(), feedback("open", sent_id, T0 + 3 * 3_600_000), USER, CREATED, NO_SIDE, CONFIG)
    planned = handle(early.state, item_signal(event_id="t0", ts=T0), USER, CREATED, NO_SIDE, CONFIG)
    assert planned.notification is None
    decided = fire(planned.state, T0 + 3 * 3_600_000, CONFIG)  # the watermark passes the open
    assert decided.notification.notification_id == sent_id and "feedback_open" in decided.counts
    assert decided.state.engagement.sent[sent_id].opened


def test_an_unsubscribe_does_not_wait():
    state = handle(PushState(), feedback("unsubscribe", None, T0), USER, CREATED, NO_SIDE, CONFIG).state
    assert state.directory.opted_out_at == T0 and state.pending_feedback == ()


actions = st.lists(st.one_of(
    st.tuples(st.just("send"), st.sampled_from(["push", "email"]), st.booleans()),  # channel, marketing?
    st.tuples(st.sampled_from(["delivered", "open", "click", "dismiss"]), st.integers(0, 30), st.just(None))),
    max_size=60)


@given(actions)
def test_engagement_agrees_with_a_plain_model_of_the_same_history(history):
    """ignored = marketing messages reported delivered or dismissed, not opened, since the last open or click
    of a message still remembered; per channel clicks <= opens <= sends; unknown ids change nothing."""
    _, sent = send_days(PushState(), 1)
    template = sent[0]
    state, ids, ignored, now, model = Engagement(), [], 0, T0, {}
    for kind, arg, marketing in history:
        now += 60_000
        if kind == "send":
            nid = f"n{len(ids)}"
            ids.append(nid)
            note = replace(template, notification_id=nid, channel=arg, scheduled_at=now,
                           kind="marketing" if marketing else "transactional",
                           journey="recommendation" if marketing else "order_status")
            state = engagement.on_sent(state, note, FEEDBACK)
            model[nid] = {"marketing": marketing, "opened": False, "clicked": False, "ignored": False}
            continue
        nid = ids[arg] if arg < len(ids) else "never-sent"
        before = state
        remembered = nid in state.sent
        mine = model.get(nid) if remembered else None
        first_engagement = mine is not None and kind in ("open", "click") and not (
            mine["opened"] if kind == "open" else mine["clicked"])
        if mine is not None and kind in ("delivered", "dismiss") and mine["marketing"] and not mine["opened"] \
                and not mine["ignored"]:
            mine["ignored"] = True
            ignored += 1
        if first_engagement:
            mine["opened"] = True
            mine["clicked"] = mine["clicked"] or kind == "click"
        state, counts = engagement.on_feedback(
            state, FeedbackEvent(event_id=f"f{now}", user_id=USER, action=kind, ts=now, notification_id=nid), FEEDBACK)
        if not remembered:
            assert state == before and counts == ("feedback_unknown_notification",)
        if first_engagement:
            ignored = 0
        assert state.ignored == ignored
    assert state.ignored == ignored and len(state.sent) <= FEEDBACK.notes_kept
    for rates in [*state.channels.values(), *state.journeys.values()]:
        assert rates.clicks <= rates.opens + 1e-9 and rates.opens <= rates.sends + 1e-9
