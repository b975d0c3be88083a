"""The volume controller: on a stationary stream of candidate messages it settles on the target per week, sending
the most useful ones; a shopper with fewer candidates than the target gets every one; in the push policy a message
below the threshold is dropped and counted."""
from __future__ import annotations

import random

import pytest
from msgspec.structs import replace
from config import load_config
from operators import volume
from operators.messages import decide_marketing
from state_schemas.state import Candidate, Planned, PushState
from tests.unit.operators.test_push_policy import T0, USER, who


def policy(target: float):
    return load_config(overrides={"policy": {"volume_target_per_week": target}}).policy


def stream(rate_per_day: float, weeks: int, target: float, seed: int):
    """Candidates at `rate_per_day` with utilities uniform in [0, 1), each sent if it clears the threshold:
    (sends per week over the last half, the utilities sent, the utilities offered)."""
    rng, settings, threshold, decided, sent, offered = random.Random(seed), policy(target), 0.0, (), [], []
    for day in range(weeks * 7):
        for _ in range(sum(rng.random() < rate_per_day / 10 for _ in range(10))):
            utility = rng.random()
            goes = utility >= threshold
            decided = volume.this_week(decided, day) + (day,)
            threshold = volume.moved(threshold, goes, len(decided), target, settings)
            if day >= weeks * 7 // 2:
                offered.append(utility)
                sent += [utility] * goes
    return len(sent) / (weeks / 2), sent, offered


@pytest.mark.parametrize("seed", range(5))
def test_a_stationary_stream_settles_on_the_target_with_the_most_useful_messages(seed):
    per_week, sent, offered = stream(rate_per_day=3.0, weeks=40, target=5.0, seed=seed)
    assert abs(per_week - 5.0) <= 0.5  # within 10% of the target
    # 5 of ~21 offered a week: the ones sent are the upper part, far above a random fifth's mean of ~0.5
    assert sum(sent) / len(sent) > 0.7 > sum(offered) / len(offered)


def test_a_shopper_with_fewer_candidates_than_the_target_gets_nearly_every_one():
    per_week, sent, offered = stream(rate_per_day=0.3, weeks=40, target=5.0, seed=1)
    # ~2 a week: only a week that happens to bring more than 5 lifts the threshold, and then briefly
    assert len(sent) >= 0.9 * len(offered) and per_week < 5.0


def test_the_threshold_moves_by_the_share_the_target_allows_within_its_bounds():
    settings = policy(2.0)  # 2 of 8 decided this week may go: a send lifts it 3/4 of a step, a skip lowers it 1/4
    assert volume.moved(0.5, True, 8, 2.0, settings) == pytest.approx(0.5 + 0.75 * settings.volume_step)
    assert volume.moved(0.5, False, 8, 2.0, settings) == pytest.approx(0.5 - 0.25 * settings.volume_step)
    assert volume.moved(0.5, True, 1, 2.0, settings) == 0.5  # fewer decisions than the target: every one may go
    assert volume.moved(0.0, False, 8, 2.0, settings) == 0.0
    assert volume.moved(settings.volume_max_threshold, True, 100, 2.0, settings) == settings.volume_max_threshold


def test_a_segment_with_a_target_of_its_own_holds_it_and_the_others_hold_the_default():
    config = load_config(overrides={"policy": {"volume_target_per_week": 3.0,
                                               "volume_targets_by_segment": {1: 1.0, 2: 0.0}}})
    assert [volume.target(segment, config.policy) for segment in (None, 0, 1, 2)] == [3.0, 3.0, 1.0, 0.0]
    with pytest.raises(Exception, match="volume_targets_by_segment maps segment numbers"):
        load_config(overrides={"policy": {"volume_targets_by_segment": {"vip": 1.0}}})


def test_the_push_policy_holds_the_shoppers_segment_target():
    config = load_config(overrides={"policy": {"volume_target_per_week": 5.0, "volume_targets_by_segment": {3: 1.0},
                                               "min_marketing_gap_ms": 0, "quiet_hours": ["00:00", "00:00"]}})
    reach, base = who(config), PushState(send_threshold=0.6, decided_days=(T0 // 86_400_000,) * 4)
    # 5 decided this week: against a target of 5 a send leaves it where it is, against 1 it lifts it
    default = decide_marketing(base, candidate_message(0.9, 1), T0, T0, USER, reach, config)
    segment = decide_marketing(replace(base, segment=3), candidate_message(0.9, 1), T0, T0, USER, reach, config)
    assert default.state.send_threshold == pytest.approx(0.6)
    assert segment.state.send_threshold == pytest.approx(0.6 + config.policy.volume_step * (1 - 1 / 5))


def candidate_message(score: float, n: int) -> list:
    return [Planned("recommendation", source=f"e{n}", intended_at=T0 + n, earliest=T0 + n,
                    candidates=(Candidate(f"i{n}", score, "c", "because"),))]


def test_the_push_policy_drops_a_message_below_the_threshold_and_moves_it():
    config = load_config(overrides={"policy": {"volume_target_per_week": 1.0, "min_marketing_gap_ms": 0,
                                               "quiet_hours": ["00:00", "00:00"]}})
    reach = who(config)
    state = PushState(send_threshold=0.6)
    low = decide_marketing(state, candidate_message(0.5, 1), T0, T0, USER, reach, config)
    assert low.notification is None and low.suppressed == "below_threshold"
    assert low.state.send_threshold < 0.6 and low.state.decided_days == (T0 // 86_400_000,)
    high = decide_marketing(state, candidate_message(0.9, 2), T0, T0, USER, reach, config)
    assert high.notification is not None and high.state.send_threshold == pytest.approx(0.6)  # one of one may go
    off = load_config(overrides={"policy": {"quiet_hours": ["00:00", "00:00"]}})
    assert decide_marketing(state, candidate_message(0.5, 3), T0, T0, USER, who(off), off).notification is not None
