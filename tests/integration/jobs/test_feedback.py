"""Feedback through the real broker and job changes the next decision for that shopper (issue 11)."""
from __future__ import annotations

from notify_engine import producer
from operators.privacy import notification_id, pseudonym
from state_schemas.events import BehaviourEvent, FeedbackEvent
from tests.integration.conftest import job_config, make_topics, read_back, run_bounded

DAY, HOUR = 86_400_000, 3_600_000
BASE = 1_700_000_000_000 // DAY * DAY + 10 * HOUR  # 10:00 UTC
DAYS = 5


def test_a_shopper_who_ignores_marketing_gets_less_and_one_who_opens_it_does_not(broker, redis_server,
                                                                                   connector_jar):
    topics = make_topics(broker, partitions=1)
    # No quiet hours and no best hour: the messages go out when the session ends, half an hour after the view.
    # No trending and no segments: their lists come by other paths and may hold later days' items in a fast
    # replay (issue 12); so each message names the item viewed that day alone.
    config = job_config(broker, redis_server, topics, policy={"quiet_hours": ["00:00", "00:00"]},
                        journeys={"best_hour_journeys": []}, trending={"enabled": False}, segments={"enabled": False})
    key = config.privacy.pseudonym_key
    events = []
    for day in range(DAYS):
        for user in ("ignorer", "reader"):
            view = BehaviourEvent(event_id=f"{user}-view-{day}", user_id=user, behavior="view", ts=BASE + day * DAY,
                                  item_id=f"{user}-item-{day}", category_id="c")
            events.append(view)
            # Each message is reported delivered an hour after the view; the reader opens it half an hour later.
            sent = notification_id(pseudonym(user, key), view.event_id, "marketing")
            events.append(FeedbackEvent(event_id=f"{user}-delivered-{day}", user_id=user, action="delivered",
                                        ts=view.ts + 60 * 60_000, notification_id=sent))
            if user == "reader":
                events.append(FeedbackEvent(event_id=f"open-{day}", user_id=user, action="open",
                                            ts=view.ts + 90 * 60_000, notification_id=sent))
    producer.publish(sorted(events, key=lambda e: e.ts), broker.bootstrap, topics.events)
    run_bounded(config, connector_jar)
    notifications, dead_letters = read_back(broker, topics)
    assert dead_letters == []
    assert all(n.item_ids == (n.source_event_id.replace("view", "item"),) for n in notifications)
    days = {user: sorted((n.scheduled_at - BASE) // DAY for n in notifications if n.user == pseudonym(user, key))
            for user in ("ignorer", "reader")}
    assert days["reader"] == [0, 1, 2, 3, 4]  # every open ends the count of messages ignored
    # Four delivered and ignored by day 3: the least gap is two days by day 4, so day 4's is dropped as fatigue.
    assert days["ignorer"] == [0, 1, 2, 3]
