"""Windowed aggregates to Redis: trending items and behaviour counts, for the scorer and dashboards.

    events ─► behaviours ─┬► key_by(item) sliding window: weighted count
                          │     ─► key_by(category) top-N per window ─► key_by(constant) global top-N ─┐
                          ├► key_by(user) tumbling window: behaviour counts ────────────────────────────┤
                          └► key_by(category) tumbling window: behaviour counts ────────────────────────┴► Redis

A window's output carries the window's last millisecond as its timestamp, so each ranking stage
collects one sliding window's results in a tumbling window of slide_ms: sliding windows end
slide_ms apart, exactly one end falls in each. The global stage sees only the per-category top-N
lists; the global top N is among them because every item ranks under exactly one category.
"""
from __future__ import annotations

import functools

from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream import ProcessFunction, RuntimeContext
from pyflink.datastream.functions import AggregateFunction, ProcessWindowFunction
from pyflink.datastream.window import SlidingEventTimeWindows, TumblingEventTimeWindows

from jobs.config import JobConfig
from operators import trending
from state_schemas.codec import SchemaError
from state_schemas.events import BehaviourEvent, decode_event
from state_schemas.trending import GLOBAL, BehaviourCounts, TrendingList

# (user id, item id, category id, behaviour); "" where the event has no item or category
BEHAVIOUR = Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING()])
# (item id, category id or "", window end, weighted count)
ITEM_SCORE = Types.TUPLE([Types.STRING(), Types.STRING(), Types.LONG(), Types.DOUBLE()])
# (kind, TrendingList or BehaviourCounts JSON)
WINDOW_RESULT = Types.TUPLE([Types.STRING(), Types.STRING()])

KIND_TRENDING = "trending"
KIND_COUNTS = "counts"


class ReadBehavioursFunction(ProcessFunction):
    """Keeps behaviour events; orders, feedback and erasures carry no behaviour to count."""

    def open(self, ctx: RuntimeContext):
        self.unreadable = ctx.get_metrics_group().counter("window_events_unreadable")

    def process_element(self, value, ctx: ProcessFunction.Context):
        try:
            event = decode_event(value[2])
        except SchemaError:  # already sent to the dead-letter topic upstream
            self.unreadable.inc()
            return
        if isinstance(event, BehaviourEvent):
            yield event.user_id, event.item_id or "", event.category_id or "", event.behavior


class WeightedCount(AggregateFunction):
    """Accumulator (weighted count, category or "") of one item in one window."""

    def __init__(self, weights: dict):
        self.weights = dict(weights)

    def create_accumulator(self):
        return 0.0, ""

    def add(self, value, accumulator):
        _, item, category, behavior = value
        return (accumulator[0] + trending.weight(behavior, item, self.weights),
                trending.merge_category(accumulator[1], category))

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a[0] + b[0], trending.merge_category(a[1], b[1])


class AttachWindowEnd(ProcessWindowFunction):
    def process(self, key, context: ProcessWindowFunction.Context, elements):
        for score, category in elements:
            yield key, category, context.window().end, score


class RankCategory(ProcessWindowFunction):
    """One category's top N of one sliding window."""

    def __init__(self, top_n: int):
        self.top_n = top_n

    def process(self, key, context: ProcessWindowFunction.Context, elements):
        records = list(elements)
        items = trending.top_items(((item, score) for item, _, _, score in records), self.top_n)
        yield KIND_TRENDING, TrendingList(scope=trending.category_scope(key), window_end=records[0][2],
                                          items=tuple(items)).encode()


class RankGlobal(ProcessWindowFunction):
    """The top N of one sliding window, from the per-category top-N lists."""

    def __init__(self, top_n: int):
        self.top_n = top_n

    def process(self, key, context: ProcessWindowFunction.Context, elements):
        lists = [TrendingList.decode(payload) for _, payload in elements]
        items = trending.top_items((pair for ranked in lists for pair in ranked.items), self.top_n)
        yield KIND_TRENDING, TrendingList(scope=GLOBAL, window_end=lists[0].window_end, items=tuple(items)).encode()


class CountBehaviours(AggregateFunction):
    def create_accumulator(self):
        return {}

    def add(self, value, accumulator):
        behavior = value[3]
        return {**accumulator, behavior: accumulator.get(behavior, 0) + 1}

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return {behavior: a.get(behavior, 0) + b.get(behavior, 0) for behavior in {*a, *b}}


class EmitCounts(ProcessWindowFunction):
    def __init__(self, scope):
        self.scope = scope  # key -> BehaviourCounts scope

    def process(self, key, context: ProcessWindowFunction.Context, elements):
        window = context.window()
        for counts in elements:
            yield KIND_COUNTS, BehaviourCounts(scope=self.scope(key), window_start=window.start,
                                               window_end=window.end, counts=dict(counts)).encode()


class WriteWindowsToRedisFunction(ProcessFunction):
    """Replaces each key whole in one transaction: readers see the old value or the new one, and a
    replay after a failure rewrites the same values."""

    def __init__(self, config: JobConfig):
        self.config = config.redis

    def open(self, ctx: RuntimeContext):
        import redis

        self.client = redis.Redis.from_url(self.config.url, socket_timeout=10)
        self.ttl_s = max(1, int(self.config.ttl_hours * 3600))
        self.written = ctx.get_metrics_group().counter("window_results_written")

    def close(self):
        self.client.close()

    def process_element(self, value, ctx: ProcessFunction.Context):
        kind, payload = value
        pipe = self.client.pipeline(transaction=True)
        if kind == KIND_TRENDING:
            ranked = TrendingList.decode(payload)
            key = trending.trending_key(self.config.key_prefix, ranked.scope)
            pipe.delete(key)
            pipe.zadd(key, dict(ranked.items))
        else:
            counted = BehaviourCounts.decode(payload)
            key = trending.counts_key(self.config.key_prefix, counted.scope, counted.window_start)
            pipe.delete(key)
            pipe.hset(key, mapping=counted.counts)
        pipe.expire(key, self.ttl_s)
        pipe.execute()
        self.written.inc()
        yield from ()  # a sink-like step; process mode needs an iterable back, not None


def add_windowed_aggregations(events, config: JobConfig):
    """Adds the windowed aggregates to the job. `events` are (user id, event time, event JSON) tuples
    with event-time timestamps and watermarks. Returns the results written to Redis, as WINDOW_RESULT
    tuples, for a caller that also wants them elsewhere (a topic, a test)."""
    settings = config.trending
    weights = dict(config.profile.event_weights)
    behaviours = events.process(ReadBehavioursFunction(), output_type=BEHAVIOUR) \
        .name("window behaviours").uid("window-behaviours")

    scored = behaviours.filter(lambda b: trending.weight(b[3], b[1], weights) > 0) \
        .name("trending events").uid("trending-events")
    item_scores = scored.key_by(lambda b: b[1], key_type=Types.STRING()) \
        .window(SlidingEventTimeWindows.of(Time.milliseconds(settings.window_ms),
                                           Time.milliseconds(settings.slide_ms))) \
        .aggregate(WeightedCount(weights), AttachWindowEnd(),
                   accumulator_type=Types.TUPLE([Types.DOUBLE(), Types.STRING()]), output_type=ITEM_SCORE) \
        .name("trending item windows").uid("trending-item-windows")
    per_window = TumblingEventTimeWindows.of(Time.milliseconds(settings.slide_ms))
    by_category = item_scores.key_by(lambda s: s[1], key_type=Types.STRING()).window(per_window) \
        .process(RankCategory(settings.top_n), output_type=WINDOW_RESULT) \
        .name("trending per category").uid("trending-per-category")
    overall = by_category.key_by(lambda _: GLOBAL, key_type=Types.STRING()).window(per_window) \
        .process(RankGlobal(settings.top_n), output_type=WINDOW_RESULT) \
        .name("trending global").uid("trending-global")

    per_counts_window = TumblingEventTimeWindows.of(Time.milliseconds(settings.counts_window_ms))
    counts_accumulator = Types.MAP(Types.STRING(), Types.LONG())
    user_counts = behaviours.key_by(lambda b: b[0], key_type=Types.STRING()).window(per_counts_window) \
        .aggregate(CountBehaviours(),
                   EmitCounts(functools.partial(trending.user_counts_scope,
                                                pseudonym_key=config.privacy.pseudonym_key)),
                   accumulator_type=counts_accumulator, output_type=WINDOW_RESULT) \
        .name("counts per user").uid("counts-per-user")
    category_counts = behaviours.filter(lambda b: b[2] != "").name("categorised events").uid("categorised-events") \
        .key_by(lambda b: b[2], key_type=Types.STRING()).window(per_counts_window) \
        .aggregate(CountBehaviours(), EmitCounts(trending.category_counts_scope),
                   accumulator_type=counts_accumulator, output_type=WINDOW_RESULT) \
        .name("counts per category").uid("counts-per-category")

    results = by_category.union(overall, user_counts, category_counts)
    results.process(WriteWindowsToRedisFunction(config)).name("windows to redis").uid("windows-to-redis")
    return results
