"""The Redis key layout, as the README documents it, and what an erasure deletes."""
from __future__ import annotations

from state_schemas.redis_keys import RedisKeys

KEYS = RedisKeys("notify")


def test_keys_follow_the_documented_layout():
    assert KEYS.trending("global") == "notify:trending:global"
    assert KEYS.trending("cat:42") == "notify:trending:cat:42"
    assert KEYS.counts("category:42", 3_600_000) == "notify:counts:category:42:3600000"
    assert KEYS.card("i1") == "notify:card:i1" and KEYS.neighbours("i1") == "notify:neighbours:i1"
    assert KEYS.arrivals("shoes") == "notify:arrivals:shoes"
    assert (KEYS.inbox("p1"), KEYS.inbox_bodies("p1")) == ("notify:inbox:p1", "notify:inbox:p1:body")
    assert (KEYS.profile("p1"), KEYS.top_n("p1"), KEYS.top_n_reasons("p1")) == (
        "notify:profile:p1", "notify:topn:p1", "notify:topn:p1:reason")


def test_an_erasure_names_every_per_user_key_and_finds_the_windowed_counts_by_pattern():
    assert set(KEYS.user_keys("p1")) == {"notify:profile:p1", "notify:topn:p1", "notify:topn:p1:reason",
                                         "notify:inbox:p1", "notify:inbox:p1:body", "notify:intent:p1"}
    assert KEYS.user_key_patterns("p1") == ("notify:counts:user:p1:*",)
