"""Windowed aggregates to Redis: trending items and behaviour counts, for the scorer and dashboards.

    events ─► behaviour rows (Python, chained) ─► Flink SQL, on the Java side:
                 HOP window: weighted count per item ─► window Top-N per category, and globally
                 TUMBLE window: behaviour counts per user, per category
              ─► lists assembled per (scope, window) ─► Redis

The windows run as Flink SQL so Python never touches per-event window state: PyFlink's Python
window operators did ~12 state accesses per event (one per overlapping sliding window) and cut
the job from ~2 900 to ~480 events/s on this machine (`bench/README.md`). An item counts under
the smallest category its events name in the window ("uncategorised" if none), so arrival order
does not matter.
"""
from __future__ import annotations


from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import Schema, StreamTableEnvironment

from config import JobConfig
from jobs.side_inputs import write_counts
from jobs.stage_functions import HOP
from operators import trending
from state_schemas.codec import SchemaError
from state_schemas.events import BEHAVIOURS
from state_schemas.hops import AcceptedBehaviour
from state_schemas.redis_keys import RedisKeys
from state_schemas.trending import GLOBAL, BehaviourCounts, PendingRanks, TrendingList

COUNTED = sorted(BEHAVIOURS)
BEHAVIOUR_ROW = Types.ROW_NAMED(["user_scope", "item", "category", "behavior", "weight", "ts"],
                                [Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.DOUBLE(),
                                 Types.LONG()])
# (scope, window end, item, score) of one ranked item
RANKED = Types.TUPLE([Types.STRING(), Types.LONG(), Types.STRING(), Types.DOUBLE()])
# (kind, TrendingList or BehaviourCounts JSON)
WINDOW_RESULT = Types.TUPLE([Types.STRING(), Types.STRING()])

KIND_TRENDING = "trending"
KIND_COUNTS = "counts"


class ReadBehavioursFunction(ProcessFunction):
    """Deduplicated behaviour events as flat rows for SQL."""

    def __init__(self, config: JobConfig):
        self.weights = dict(config.profile.event_weights)
        self.key = config.privacy.pseudonym_key

    def open(self, ctx: RuntimeContext):
        self.unreadable = ctx.get_metrics_group().counter("window_events_unreadable")

    def process_element(self, value, ctx: ProcessFunction.Context):
        try:
            event = AcceptedBehaviour.decode(value[2]).event
        except SchemaError:  # written by the user context stage: only a bug gets here
            self.unreadable.inc()
            return
        # The user leaves Python only as a pseudonym: SQL state never holds raw ids.
        yield Row(trending.user_counts_scope(event.user_id, self.key), event.item_id or "",
                  event.category_id or "", event.behavior,
                  trending.weight(event.behavior, event.item_id, self.weights), event.ts)


class AssembleTrendingLists(KeyedProcessFunction):
    """Scope-keyed: collects one window's ranked rows (they arrive together, when the watermark
    passes the window) and emits the whole list once the watermark moves on."""

    def open(self, ctx: RuntimeContext):
        self.pending = ctx.get_state(ValueStateDescriptor("pending-ranks", Types.STRING()))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        _, window_end, item, score = value
        pending = trending.collect_ranked(PendingRanks.decode(self.pending.value()), window_end, item, score)
        self.pending.update(pending.encode())
        ctx.timer_service().register_event_time_timer(window_end)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        pending, lists = trending.complete_lists(PendingRanks.decode(self.pending.value()), ctx.get_current_key(),
                                                 timestamp)
        if pending is None:
            self.pending.clear()
        else:
            self.pending.update(pending.encode())
        for ranked in lists:
            yield KIND_TRENDING, ranked.encode()


def _epoch_ms(column: str) -> str:
    # Window bounds are wall-clock TIMESTAMPs in the session time zone, set to UTC; whole seconds.
    return f"CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', {column}) AS BIGINT) * 1000"


def _ranked(row) -> tuple:
    return row[0], row[1], row[2], float(row[3])


def _counts(row) -> tuple:
    counts = {behavior: int(row[n + 3]) for n, behavior in enumerate(COUNTED) if row[n + 3]}
    return KIND_COUNTS, BehaviourCounts(scope=row[0], window_start=row[1], window_end=row[2], counts=counts).encode()


class WriteWindowsToRedisFunction(ProcessFunction):
    """Replaces each key whole in one transaction: readers see the old value or the new one, and a
    replay after a failure rewrites the same values."""

    def __init__(self, config: JobConfig):
        self.config = config.redis

    def open(self, ctx: RuntimeContext):
        import redis

        self.client = redis.Redis.from_url(self.config.url, socket_timeout=10)
        self.keys = RedisKeys(self.config.key_prefix)
        self.ttl_s = max(1, int(self.config.ttl_hours * 3600))
        self.written = ctx.get_metrics_group().counter("window_results_written")
        self.withheld = ctx.get_metrics_group().counter("window_results_of_erased_users")

    def close(self):
        self.client.close()

    def process_element(self, value, ctx: ProcessFunction.Context):
        kind, payload = value
        if kind == KIND_TRENDING:
            ranked = TrendingList.decode(payload)
            pipe = self.client.pipeline(transaction=True)
            # The latest list (dashboards), and this window's own, which decisions read as of their time
            for key in (self.keys.trending(ranked.scope), self.keys.trending_at(ranked.scope, ranked.window_end)):
                pipe.delete(key)
                pipe.zadd(key, dict(ranked.items))
                pipe.expire(key, self.ttl_s)
            pipe.execute()
            self.written.inc()
        elif write_counts(self.client, self.keys, BehaviourCounts.decode(payload), self.ttl_s):
            self.written.inc()
        else:
            self.withheld.inc()
        yield from ()  # a sink-like step; process mode needs an iterable back, not None


def add_windowed_aggregations(events, config: JobConfig):
    """Adds the windowed aggregates to the job. `events` are (user id, event time, event JSON) tuples with
    watermarks (event time is read from the JSON). Returns (the results written to Redis, as WINDOW_RESULT
    tuples, for a caller that also wants them elsewhere: a topic, a test; the writer's output, hop records of
    which there are none: its watermarks say which windows are in Redis, for a stage that reads them as of a
    time)."""
    settings = config.trending
    tables = StreamTableEnvironment.create(events.get_execution_environment())
    tables.get_config().set("table.local-time-zone", "UTC")
    rows = events.process(ReadBehavioursFunction(config), output_type=BEHAVIOUR_ROW) \
        .name("window behaviours").uid("window-behaviours")
    # Rows carry no record timestamps (they come from a side output), only the user context's watermarks.
    tables.create_temporary_view("behaviours", tables.from_data_stream(
        rows, Schema.new_builder().column_by_expression("rt", "TO_TIMESTAMP_LTZ(ts, 3)")
        .watermark("rt", "SOURCE_WATERMARK()").build()))

    def interval(ms: int) -> str:
        return f"INTERVAL '{ms / 1000:.3f}' SECOND(9, 3)"

    tables.create_temporary_view("item_scores", tables.sql_query(f"""
        SELECT window_start, window_end, item, SUM(weight) AS score,
               COALESCE(CONCAT('cat:', MIN(NULLIF(category, ''))), 'uncategorised') AS list_scope
        FROM TABLE(HOP(TABLE behaviours, DESCRIPTOR(rt), {interval(settings.slide_ms)}, {interval(settings.window_ms)}))
        WHERE item <> '' AND weight > 0
        GROUP BY window_start, window_end, item"""))
    ranked = None
    for partition in ("list_scope", f"'{GLOBAL}'"):
        top = tables.to_data_stream(tables.sql_query(f"""
            SELECT {partition} AS list_scope, {_epoch_ms("window_end")} AS end_ms, item, score
            FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, {partition}
                                               ORDER BY score DESC, item ASC) AS rn FROM item_scores)
            WHERE rn <= {settings.top_n}""")).map(_ranked, output_type=RANKED).start_new_chain()
        ranked = top if ranked is None else ranked.union(top)
    # The maps above start their own chains: chained to the global ranking (one instance, max parallelism 1) at
    # parallelism 1 and not at 2, a savepoint taken at 1 gave the map max parallelism 1, and a restore at 2 was
    # refused (1 against 128).
    lists = (ranked.key_by(lambda r: r[0], key_type=Types.STRING())
             .process(AssembleTrendingLists(), output_type=WINDOW_RESULT).name("trending lists").uid("trending-lists"))

    columns = ", ".join(f"SUM(CASE WHEN behavior = '{b}' THEN 1 ELSE 0 END) AS `{b}`" for b in COUNTED)
    tumble = f"TABLE(TUMBLE(TABLE behaviours, DESCRIPTOR(rt), {interval(settings.counts_window_ms)}))"
    counts = [tables.to_data_stream(tables.sql_query(f"""
        SELECT {scope} AS count_scope, {_epoch_ms("window_start")} AS start_ms,
               {_epoch_ms("window_end")} AS end_ms, {columns} FROM {tumble} {where}
        GROUP BY window_start, window_end, {scope}""")).map(_counts, output_type=WINDOW_RESULT)
        for scope, where in (("user_scope", ""), ("CONCAT('category:', category)", "WHERE category <> ''"))]

    results = lists.union(*counts)
    written = results.process(WriteWindowsToRedisFunction(config), output_type=HOP).name("windows to redis") \
        .uid("windows-to-redis")
    return results, written
