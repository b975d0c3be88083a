"""The windowed aggregates on a MiniCluster over a slice of the real Taobao log, read back from a real
Redis and compared with a recount of every window written here from the raw events."""
from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyflink.common import Duration, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import ProcessFunction

from config import load_config
from jobs.runtime import create_environment
from jobs.side_inputs import read_trending
from jobs.stage_functions import HOP
from jobs.windowed_aggregations import add_windowed_aggregations
from notify_engine import datasets
from operators.privacy import pseudonym
from state_schemas.hops import AcceptedBehaviour
from state_schemas.redis_keys import RedisKeys
from state_schemas.trending import BehaviourCounts, TrendingList

pytestmark = pytest.mark.slow

EVENTS = 4000  # about six minutes of the log
WINDOW_MS, SLIDE_MS, COUNTS_MS, TOP_N = 90_000, 30_000, 60_000, 20


@pytest.fixture(scope="module")
def events(dataset_dir):
    return datasets.sorted_by_time(datasets.read_events(dataset_dir / "taobao_userbehavior_stream.csv",
                                                        limit=EVENTS))


class HopTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return value[1]


class RecordResults(ProcessFunction):
    """Appends each result to a file of its own per subtask. (`execute_and_collect` would not do: it
    runs only the collected stream's lineage, so nothing would reach Redis.)"""

    def __init__(self, folder: str):
        self.folder = folder

    def open(self, ctx):
        self.out = open(f"{self.folder}/{uuid.uuid4().hex}.tsv", "w")

    def close(self):
        self.out.close()

    def process_element(self, value, ctx):
        self.out.write(f"{value[0]}\t{value[1]}\n")  # the JSON escapes tabs and newlines


def run_job(config, events, record_to: Path | None = None) -> None:
    middle = events[len(events) // 2]
    rows = [(e.user_id, e.ts, AcceptedBehaviour(event=e).encode()) for e in events]
    # A record the aggregates must pass over: only a bug upstream could send it, but it must not stop them.
    rows[len(rows) // 2:len(rows) // 2] = [(middle.user_id, middle.ts, b"not json")]
    env = create_environment(config, [], {"restart-strategy.type": "none"})
    # Watermarks as the user context's side output carries them (its records carry no timestamps).
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(5000)).with_timestamp_assigner(
        HopTime())
    stream = env.from_collection(rows, type_info=HOP).assign_timestamps_and_watermarks(watermarks)
    results, _ = add_windowed_aggregations(stream, config)
    if record_to is not None:
        results.process(RecordResults(str(record_to))).name("record results")
    env.execute("windowed-aggregations-test")


@pytest.fixture(scope="module")
def config(redis_server):
    return load_config(overrides={
        "redis": {"url": redis_server.url, "key_prefix": f"test-windows-{uuid.uuid4().hex[:8]}"},
        "trending": {"window_ms": WINDOW_MS, "slide_ms": SLIDE_MS, "counts_window_ms": COUNTS_MS, "top_n": TOP_N},
        "flink": {"parallelism": 2},  # per-category lists from two subtasks meet in the global ranking
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


@dataclass
class Run:
    trending: dict  # (scope, window end) -> [(item, score)]
    counts: dict  # (scope, window start) -> {behaviour: count}
    redis: dict  # key -> members or fields


@pytest.fixture(scope="module")
def run(config, redis_server, events, tmp_path_factory):
    folder = tmp_path_factory.mktemp("window-results")
    run_job(config, events, record_to=folder)
    trending, counts = {}, {}
    for kind, payload in (line.split("\t") for path in folder.iterdir() for line in path.read_text().splitlines()):
        if kind == "trending":
            ranked = TrendingList.decode(payload)
            assert (ranked.scope, ranked.window_end) not in trending, "a window was ranked twice"
            trending[ranked.scope, ranked.window_end] = list(ranked.items)
        else:
            counted = BehaviourCounts.decode(payload)
            assert (counted.scope, counted.window_start) not in counts, "a window was counted twice"
            assert counted.window_end == counted.window_start + COUNTS_MS
            counts[counted.scope, counted.window_start] = counted.counts
    return Run(trending, counts, dump(redis_server.client(), config.redis.key_prefix))


def recount_trending(events, weights) -> dict:
    """Every sliding window holding a weighted event, from scratch: (scope, window end) -> ranked items."""
    starts = {start for e in events for start in range(e.ts - e.ts % SLIDE_MS, e.ts - WINDOW_MS, -SLIDE_MS)}
    out = {}
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
        end = start + WINDOW_MS
        out["global", end] = ranked[:TOP_N]
        scope_of = {item: "cat:" + min(categories[item]) if categories[item] else "uncategorised" for item in scores}
        for scope in set(scope_of.values()):
            out[scope, end] = [kv for kv in ranked if scope_of[kv[0]] == scope][:TOP_N]
    return out


def recount_counts(events, key) -> dict:
    counts = defaultdict(Counter)
    for e in events:
        start = e.ts - e.ts % COUNTS_MS
        counts[f"user:{pseudonym(e.user_id, key)}", start][e.behavior] += 1
        if e.category_id:
            counts[f"category:{e.category_id}", start][e.behavior] += 1
    return {window: dict(c) for window, c in counts.items()}


def test_every_sliding_window_ranks_the_recounted_top_n_per_category_and_globally(config, run, events):
    expected = recount_trending(events, config.profile.event_weights)
    assert run.trending == expected
    ends = sorted({end for _, end in expected})
    assert len(ends) >= 10 and ends == list(range(ends[0], ends[-1] + 1, SLIDE_MS))
    # The input exercises what could go wrong: cut lists, and categories with several items in the global list.
    assert max(len(expected["global", end]) for end in ends) == TOP_N
    assert any(len(ranked) == TOP_N for (scope, _), ranked in expected.items() if scope != "global")
    category = {e.item_id: "cat:" + e.category_id for e in events}
    assert any(any(n > 1 for n in Counter(category[item] for item, _ in expected["global", end]).values())
               for end in ends)


def test_redis_holds_each_scopes_latest_window_and_reads_back_in_rank_order(config, run, redis_server):
    prefix = config.redis.key_prefix
    latest = {}
    for (scope, end), ranked in sorted(run.trending.items(), key=lambda kv: kv[0][1]):
        latest[scope] = ranked
    assert len(latest) > 100, "the slice should cover many categories"
    keys = RedisKeys(prefix)
    per_window = {keys.trending_at(scope, end): dict(ranked) for (scope, end), ranked in run.trending.items()}
    written = {key: members for key, members in run.redis.items() if key.startswith(keys.trending(""))}
    assert {key: members for key, members in written.items() if key not in per_window} == \
        {keys.trending(scope): dict(ranked) for scope, ranked in latest.items()}
    # and each window's own list, which a decision reads as of its time
    assert {key: members for key, members in written.items() if key in per_window} == per_window
    client = redis_server.client()
    for scope, ranked in latest.items():
        assert read_trending(client, RedisKeys(prefix), scope, TOP_N) == ranked
    assert any(len(r) != len({s for _, s in r}) for r in latest.values()), "equal scores should occur"


def test_behaviour_counts_are_the_recounted_counts_of_every_window(config, run, events):
    expected = recount_counts(events, config.privacy.pseudonym_key)
    assert run.counts == expected
    assert len({start for _, start in expected}) >= 6, "several count windows"
    prefix = config.redis.key_prefix
    keys = RedisKeys(prefix)  # every key that is not a trending list holds counts (see the test below)
    assert {key: fields for key, fields in run.redis.items() if not key.startswith(keys.trending(""))} == \
        {keys.counts(scope, start): counts for (scope, start), counts in expected.items()}


def test_every_key_expires_and_nothing_else_is_written(config, run, redis_server):
    client = redis_server.client()
    ttl = config.redis.ttl_hours * 3600
    assert all(0 < client.ttl(key) <= ttl for key in run.redis)
    assert {key.split(":")[1] for key in run.redis} == {"trending", "counts"}


def test_a_replay_rewrites_the_same_values(config, run, events, redis_server):
    run_job(config, events)
    assert dump(redis_server.client(), config.redis.key_prefix) == run.redis
