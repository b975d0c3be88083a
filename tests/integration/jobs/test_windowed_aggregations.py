"""The windowed aggregates on a MiniCluster over a slice of the real Taobao log, read back from a real
Redis and compared with a recount of every window written here from the raw events."""
from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import pytest

from jobs.config import load_config
from jobs.runtime import create_environment
from notify_engine import datasets
from operators.push_policy import pseudonym
from operators.trending import read_trending
from state_schemas import codec
from state_schemas.events import ErasureRequest, OrderEvent

pytestmark = pytest.mark.slow

EVENTS = 4000  # about six minutes of the log
WINDOW_MS, SLIDE_MS, COUNTS_MS, TOP_N = 90_000, 30_000, 60_000, 5


@pytest.fixture(scope="module")
def events(dataset_dir):
    return datasets.sorted_by_time(datasets.read_events(dataset_dir / "taobao_userbehavior_stream.csv",
                                                        limit=EVENTS))


def run_job(config, events) -> None:
    from jobs.flink_functions import ADMITTED, event_time_watermarks
    from jobs.windowed_aggregations import add_windowed_aggregations

    middle = events[len(events) // 2]
    rows = [(e.user_id, e.ts, codec.dumps_str(e.to_dict())) for e in events]
    # Records the aggregates must pass over: other kinds of event, and one the intake would have rejected.
    rows[len(rows) // 2:len(rows) // 2] = [
        (middle.user_id, middle.ts, codec.dumps_str(OrderEvent("o-1", middle.user_id, "o1", "shipped",
                                                               middle.ts).to_dict())),
        (middle.user_id, middle.ts, codec.dumps_str(ErasureRequest("x-1", "someone", middle.ts).to_dict())),
        (middle.user_id, middle.ts, "not json"),
    ]
    env = create_environment(config, [], {"restart-strategy.type": "none"})
    stream = env.from_collection(rows, type_info=ADMITTED).assign_timestamps_and_watermarks(
        event_time_watermarks(config))
    add_windowed_aggregations(stream, config)
    env.execute("windowed-aggregations-test")


@pytest.fixture(scope="module")
def config(redis_server):
    return load_config(overrides={
        "redis": {"url": redis_server.url, "key_prefix": f"test-windows-{uuid.uuid4().hex[:8]}"},
        "trending": {"window_ms": WINDOW_MS, "slide_ms": SLIDE_MS, "counts_window_ms": COUNTS_MS, "top_n": TOP_N},
    })


def dump(client, prefix: str) -> dict:
    out = {}
    for raw_key in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw_key.decode()
        if client.type(key) == b"zset":
            out[key] = {m.decode(): s for m, s in client.zrange(key, 0, -1, withscores=True)}
        else:
            out[key] = {f.decode(): int(v) for f, v in client.hgetall(key).items()}
    return out


@pytest.fixture(scope="module")
def written(config, redis_server, events):
    run_job(config, events)
    return dump(redis_server.client(), config.redis.key_prefix)


def recount_trending(events, weights):
    """Every sliding window holding an event, in order; each scope keeps the last window it appears in,
    as the job overwrites its key. Returns scope -> ranked [(item, score)]."""
    starts = sorted({start for e in events
                     for start in range(e.ts - e.ts % SLIDE_MS, e.ts - WINDOW_MS, -SLIDE_MS)})
    latest = {}
    for start in starts:
        scores, categories = Counter(), defaultdict(set)
        for e in events:
            if start <= e.ts < start + WINDOW_MS and e.item_id and weights.get(e.behavior, 0) > 0:
                scores[e.item_id] += weights[e.behavior]
                if e.category_id:
                    categories[e.item_id].add(e.category_id)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ranked:
            continue
        latest["global"] = ranked[:TOP_N]
        scope_of = {item: "cat:" + min(categories[item]) if categories[item] else "uncategorised" for item in scores}
        for scope in set(scope_of.values()):
            latest[scope] = [kv for kv in ranked if scope_of[kv[0]] == scope][:TOP_N]
    return latest


def recount_counts(events, key):
    counts = defaultdict(Counter)
    for e in events:
        start = e.ts - e.ts % COUNTS_MS
        counts[f"user:{pseudonym(e.user_id, key)}:{start}"][e.behavior] += 1
        if e.category_id:
            counts[f"category:{e.category_id}:{start}"][e.behavior] += 1
    return counts


def test_trending_lists_are_the_recounted_top_n_of_each_scopes_last_window(config, written, events,
                                                                         redis_server):
    prefix = config.redis.key_prefix
    expected = recount_trending(events, config.profile.event_weights)
    assert len(expected) > 100, "the slice should cover many categories"
    got = {key.removeprefix(f"{prefix}:trending:"): members for key, members in written.items()
           if key.startswith(f"{prefix}:trending:")}
    assert got == {scope: dict(ranked) for scope, ranked in expected.items()}
    client = redis_server.client()
    ties = 0
    for scope, ranked in expected.items():
        assert read_trending(client, prefix, scope, TOP_N) == ranked
        ties += len(ranked) != len({score for _, score in ranked})
    assert ties, "equal scores should occur, so the tie order is checked"


def test_behaviour_counts_are_the_recounted_counts_of_every_window(config, written, events):
    prefix = config.redis.key_prefix
    expected = recount_counts(events, config.privacy.pseudonym_key)
    got = {key.removeprefix(f"{prefix}:counts:"): counts for key, counts in written.items()
           if key.startswith(f"{prefix}:counts:")}
    assert got == {key: dict(counts) for key, counts in expected.items()}
    assert len({key.rsplit(":", 1)[1] for key in got}) >= 6, "several count windows"
    assert not any(e.user_id in key.split(":") for e in events[:200] for key in got), "raw user ids leaked"


def test_every_key_expires_and_nothing_else_is_written(config, written, redis_server):
    client = redis_server.client()
    ttl = config.redis.ttl_hours * 3600
    assert all(0 < client.ttl(key) <= ttl for key in written)
    assert {key.split(":")[1] for key in written} == {"trending", "counts"}


def test_a_replay_rewrites_the_same_values(config, written, events, redis_server):
    run_job(config, events)
    assert dump(redis_server.client(), config.redis.key_prefix) == written
