"""The Flink-free pipeline keeps timers as Flink does: one per key and time, deleted when a step says so. A live
(unbounded) job must not keep a timer for every shopper and item it ever met: timers outlive the state TTL."""
from __future__ import annotations

from config import load_config
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from operators.steps import END_OF_STREAM
from state_schemas.events import BehaviourEvent, encode

T0 = 1_700_000_000_000
DAY_MS = 86_400_000


def visit(shopper: int, start: int):
    """A shopper carts co-visited items for ten minutes and never comes back."""
    for n in range(6):
        yield encode(BehaviourEvent(event_id=f"s{shopper}-{n}", user_id=f"u{shopper}", behavior="cart",
                                    ts=start + n * 120_000, item_id=f"i{(shopper + n) % 7}", category_id="c1"))


def end_of_input_timers(bounded: bool, shoppers: int = 30):
    pipeline, out = LocalPipeline(load_config(overrides={"kafka": {"bounded": bounded}}), DictStore()), Outputs()
    for shopper in range(shoppers):  # two days apart: each is decided long before the next comes
        start = T0 + shopper * 2 * DAY_MS
        for raw in visit(shopper, start):
            pipeline.process(raw, start, out)
    waiting = {(stage, key) for time, stage, key in pipeline.pending_timers if time == END_OF_STREAM}
    return waiting, out


def test_a_live_job_keeps_an_end_of_input_timer_only_for_what_still_waits():
    waiting, out = end_of_input_timers(bounded=False)
    assert len([n for n in out.notifications if n.kind == "marketing"]) >= 20  # they were told, then left
    assert {key for stage, key in waiting if stage == "push-policy"} <= {"u29"}  # only the last may wait
    assert not {key for stage, key in waiting if stage == "item-model"}


def test_a_bounded_replay_keeps_them_to_decide_what_waits_at_its_end():
    waiting, _ = end_of_input_timers(bounded=True)
    assert len({key for stage, key in waiting if stage == "item-model"}) == 7
