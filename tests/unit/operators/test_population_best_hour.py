"""Shoppers with little history wait for the population's best hour on their own clock: the local hour
most shoppers with a best hour of their own have (issue 9, send-time optimisation)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from operators import journeys, push_policy
from operators.local_pipeline import MemorySideInputs
from operators.privacy import pseudonym
from operators.steps import VoteBestHour
from state_schemas.hops import UserSummary
from state_schemas.state import PushState, UserDirectory
from tests.unit.fakes import FakeSide
from tests.unit.operators.test_journeys import CONFIG, DAY, HOUR, MIDNIGHT, SIDE, Shopper, behaviour

BERLIN = PushState(directory=UserDirectory(listed_at=1, time_zone="Europe/Berlin", channels=("push",),
                                           consent={"marketing": ("push",)}))
AFTERNOON = MIDNIGHT + 14 * HOUR  # 2023-11-14 15:00 in Berlin (UTC+1)
USER = pseudonym("u", CONFIG.privacy.pseudonym_key)


def trigger(ts=AFTERNOON, recent=5, hours=(("19", 1.0), ("8", 0.4)), event_id="t"):
    return replace(behaviour("view", ts, trigger=True, event_id=event_id),
                   summary=UserSummary(active_hours=hours, recent=tuple(f"i{n}" for n in range(recent))))


def votes(shopper):
    return [e for e in shopper.effects if isinstance(e, VoteBestHour)]


class Recording(Shopper):
    """A shopper whose steps' effects are kept too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.effects = []

    def _take(self, step):
        super()._take(step)
        self.effects += step.effects


def test_the_most_common_hour_wins_from_enough_shoppers_and_a_tie_goes_to_the_earlier():
    counts = [0] * 24
    counts[20], counts[9], counts[7] = 30, 15, 15
    assert journeys.population_hour(counts, 60) == 20
    assert journeys.population_hour(counts, 61) is None  # too few shoppers with a best hour yet
    assert journeys.population_hour(counts, 0) is None  # switched off
    counts[9] = 30
    assert journeys.population_hour(counts, 10) == 9


def test_a_newcomer_waits_for_the_populations_hour_on_their_clock_and_the_platforms_without_one():
    """A session ending at 15:30 in Berlin: the population's 17:00 (local) is 16:00 UTC; without enough
    voters, the platform's 19:00 local (18:00 UTC)."""
    crowd = FakeSide(cards=SIDE.card_map, population_hour=17)
    newcomer = Shopper(side=crowd, state=BERLIN).send(trigger(recent=4)).until(AFTERNOON + DAY)
    assert newcomer.journeys()[0][1] == MIDNIGHT + 16 * HOUR
    alone = Shopper(state=BERLIN).send(trigger(recent=4)).until(AFTERNOON + DAY)
    assert alone.journeys()[0][1] == MIDNIGHT + 18 * HOUR
    regular = Shopper(side=crowd, state=BERLIN).send(trigger(recent=5)).until(AFTERNOON + DAY)
    assert regular.journeys()[0][1] == MIDNIGHT + 19 * HOUR  # their own hour, 19:00 UTC, still wins


def test_a_shopper_votes_their_own_hour_on_their_clock_again_when_it_moves_or_a_day_on():
    shopper = Recording(state=BERLIN).send(trigger())
    assert votes(shopper) == [VoteBestHour(USER, 20, AFTERNOON, push_policy.VOTES_KEPT_MS)]  # 19 UTC = 20 Berlin
    shopper.send(trigger(ts=AFTERNOON + HOUR, event_id="t2"))
    assert len(votes(shopper)) == 1  # the same hour within a day: no write
    shopper.send(trigger(ts=AFTERNOON + 2 * HOUR, hours=(("8", 1.0),), event_id="t3"))
    assert votes(shopper)[-1].hour == 9  # it moved
    shopper.send(trigger(ts=AFTERNOON + 2 * HOUR + DAY, hours=(("8", 1.0),), event_id="t4"))
    assert [v.hour for v in votes(shopper)] == [20, 9, 9]  # renewed a day on, so it does not age out
    quiet = Recording(state=BERLIN).send(trigger(recent=4))
    assert votes(quiet) == []  # too little history: no hour of their own to count


def test_a_shoppers_vote_follows_daylight_saving():
    summer = MIDNIGHT - 150 * DAY  # June 2023: Berlin is UTC+2
    shopper = Recording(state=BERLIN).send(trigger(ts=summer))
    assert votes(shopper)[0].hour == 21


@settings(max_examples=100, deadline=None)
@given(moves=st.lists(st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 23)),
                                st.integers(0, 40 * DAY)), max_size=40))
def test_the_populations_hour_counts_each_shoppers_latest_vote_once_and_drops_old_ones(moves):
    side = MemorySideInputs(CONFIG)
    latest = {}
    for user, hour, at in sorted(moves, key=lambda m: m[2]):
        side.apply(VoteBestHour(f"u{user}", hour, at, 30 * DAY))
        latest = {u: v for u, v in latest.items() if u != f"u{user}"}
        if hour is not None:
            latest[f"u{user}"] = (hour, at)
            latest = {u: (h, t) for u, (h, t) in latest.items() if t >= at - 30 * DAY}  # older votes are dropped
    counts = [sum(1 for h, _ in latest.values() if h == hour) for hour in range(24)]
    assert [len(side.votes.get(hour, {})) for hour in range(24)] == counts
    assert side.population_best_hour(1) == (None if not latest else max(range(24), key=lambda h: (counts[h], -h)))
