"""The simulated shoppers of `make experiment`: their own behaviour does not depend on what else is simulated, an
answer depends only on its message, and they open what is relevant and well timed more, and tire of volume."""
from __future__ import annotations

import re
from dataclasses import replace

from evaluation import experiment
from evaluation import simulated_shoppers as sim
from state_schemas.events import BehaviourEvent, FeedbackEvent
from state_schemas.outputs import Notification

WORLD = sim.World(shoppers=50, days=4)


def message(items: tuple[str, ...], hour: int, n: int = 1) -> Notification:
    at = WORLD.start_ms + hour * sim.HOUR
    return Notification(notification_id=f"n{n}", user="p", channel="push", kind="marketing", title="t", body="b",
                        item_ids=items, reason="r", created_at=at, source_event_time=at, source_event_id="e",
                        scheduled_at=at)


def test_a_shoppers_own_behaviour_is_theirs_whatever_else_is_simulated():
    small, large = sim.shoppers(WORLD), sim.shoppers(replace(WORLD, shoppers=80))
    assert small == large[:50]
    assert sim.organic(WORLD, small[3]) == sim.organic(replace(WORLD, shoppers=80), large[3])
    events = [e for s in small for e in sim.organic(WORLD, s)]
    assert events and all(WORLD.start_ms <= e.ts < WORLD.start_ms + (WORLD.days + 1) * sim.DAY for e in events)
    assert {e.behavior for e in events} == {"view", "purchase"}


def test_relevance_timing_and_fatigue_move_the_chance_of_an_open():
    shopper = sim.Shopper("s", (0.7, 0.1, 0.1, 0.1), 1.0, best_hour=20, buys_per_session=0.05)
    liked, other = message(("c0-i1",), 20), message(("c1-i1",), 20)
    assert sim.relevance(shopper, liked) == 0.7 * 4 and sim.relevance(shopper, other) == 0.1 * 4
    assert sim.p_open(shopper, liked, 0) > sim.p_open(shopper, other, 0)
    assert sim.p_open(shopper, liked, 0) > sim.p_open(shopper, message(("c0-i1",), 8), 0)  # twelve hours off
    assert sim.p_open(shopper, liked, 0) > sim.p_open(shopper, liked, 6)


def test_an_answer_depends_on_its_message_alone_and_comes_after_it():
    shopper = sim.shoppers(WORLD)[0]
    sent = message(("c0-i1", "c1-i2"), 10, n=7)
    first, again = sim.answer(WORLD, shopper, sent, 0), sim.answer(WORLD, shopper, sent, 0)
    assert first == again and isinstance(first[0], FeedbackEvent) and first[0].action == "delivered"
    assert all(event.ts > sent.scheduled_at for event in first)
    bought = [e for e in first if isinstance(e, BehaviourEvent)]
    assert all(e.behavior == "purchase" and e.item_id == "c0-i1" for e in bought)


def test_make_experiment_ends_with_its_line(capsys):
    assert experiment.main(["--shoppers", "60", "--days", "9"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    names = ["true_lift", "estimated_lift", "ci_low", "ci_high", "volume_target", "volume_realised",
             "utility_per_send_controlled", "utility_per_send_random_drop"]
    found = dict(re.findall(r"(\w+)=(-?[\d.]+)", last))
    assert list(found) == names
    values = {name: float(value) for name, value in found.items()}
    assert values["ci_low"] <= values["estimated_lift"] <= values["ci_high"]
    assert values["volume_target"] == 2.0 and values["volume_realised"] > 0
