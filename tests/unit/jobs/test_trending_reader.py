"""The Redis read model's trending reader, against Redis's own tie order (no Redis needed for the order)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.side_inputs import read_trending
from state_schemas.redis_keys import RedisKeys
from tests.unit.operators.test_trending import ranked_by_brute_force, scored_pairs

PROPERTY = settings(max_examples=150, deadline=None)


class FakeRedis:
    """ZREVRANGE as Redis documents it: score descending, equal scores by member descending."""

    def __init__(self, zsets):
        self.zsets = zsets

    def zrevrange(self, key, start, stop, withscores):
        assert (start, stop, withscores) == (0, -1, True)
        members = sorted(self.zsets.get(key, {}).items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return [(member.encode(), score) for member, score in members]


@PROPERTY
@given(scored=scored_pairs, n=st.integers(1, 12))
def test_read_trending_ranks_ties_as_the_job_does(scored, n):
    client = FakeRedis({"p:trending:global": dict(scored)})
    assert read_trending(client, RedisKeys("p"), "global", n) == ranked_by_brute_force(scored, n)
    assert read_trending(client, RedisKeys("p"), "cat:none", n) == []
