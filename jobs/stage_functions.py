"""Thin Flink shells around the stages of `operators.topology`: load, call, store or clear, time, emit.

Records between stages are (routing key, event time, payload) tuples; the payload is a versioned
hop message from `state_schemas.hops` that names where it goes. Keyed state is one
ValueState[str] per stage and key, holding the stage's versioned state record. No shell decides
anything: each carries out the Step its stage's core function returned.
"""
from __future__ import annotations

import time

from pyflink.common import Row, Types
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor

from config import JobConfig
from jobs.side_inputs import ItemCardStore, RedisEffects, RedisSideInputs
from operators import catalog_intake, directory, intake, metrics
from operators.catalog import VocabularyView
from operators.steps import Step, StepContext
from operators.topology import DELETE_PART, STAGES, Stage
from state_schemas import codec
from state_schemas.hops import CATALOG_TERMS, INTENT, ITEM_MODEL, PUSH_POLICY, SEGMENTER, USER_CONTEXT, VOCABULARY
from state_schemas.outputs import DeadLetter, Exposure, Notification, Outcome, UserErased
from state_schemas.redis_keys import RedisKeys

# (routing key, event time, hop message JSON): every record that crosses an edge between stages
HOP = Types.TUPLE([Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
# A notification on its way to the sink: the user's pseudonym (the Kafka record key, so one user's
# notifications share a partition and keep their order) and the encoded notification.
KEYED_NOTIFICATION = Types.ROW([Types.STRING(), Types.STRING()])
EXPOSURES = OutputTag("exposures", KEYED_NOTIFICATION)  # the holdout's would-be sends, keyed like notifications
OUTCOMES = OutputTag("outcomes", KEYED_NOTIFICATION)  # carts and purchases attributed to a message, keyed alike


def side_output(destination: str) -> OutputTag:
    """Where a stage sends messages for `destination` when that is not its main output."""
    return OutputTag(f"to-{destination}", HOP)


def _dead_letter(reason: str, stage: str, raw: str | bytes, now_ms: int) -> str:
    raw_bytes = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    return DeadLetter(reason=reason, stage=stage, raw=raw_bytes, rejected_at=now_ms).encode().decode()


def _value_state(ctx: RuntimeContext, name: str, ttl_hours: float | None):
    descriptor = ValueStateDescriptor(name, Types.STRING())
    if ttl_hours is None:
        return ctx.get_state(descriptor)
    # Cleanup strategies are named explicitly: PyFlink's implicit RocksDB default builds a Duration
    # through py4j, which has no gateway inside a cluster TaskManager in thread mode and fails.
    ttl = (StateTtlConfig.new_builder(Time.milliseconds(int(ttl_hours * 3_600_000)))
           .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
           .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
           .disable_cleanup_in_background()
           .cleanup_incrementally(10, False)
           .cleanup_full_snapshot()
           .build())
    descriptor.enable_time_to_live(ttl)
    return ctx.get_state(descriptor)


class CreatedAtAssigner(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        if value[1] is None:  # an erasure's tombstone: it is made now
            return int(time.time() * 1000)
        return Notification.decode(value[1]).created_at


class ExposureMadeAssigner(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        if value[1] is None:
            return int(time.time() * 1000)
        return Exposure.decode(value[1]).notification.created_at


class NowAssigner(TimestampAssigner):
    """Outcomes carry no wall-clock time of their own; the record's time is when it passes."""

    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return int(time.time() * 1000)


def stamped_when_made(tag=None) -> WatermarkStrategy:
    """Notifications, or the records of the side output `tag`, timed by the wall clock of the decision, for the
    sink (Kafka refuses record times far ahead of its clock, and timers' event times can be)."""
    assigner = ExposureMadeAssigner() if tag is EXPOSURES else NowAssigner() if tag is OUTCOMES else CreatedAtAssigner()
    return WatermarkStrategy.no_watermarks().with_timestamp_assigner(assigner)


class _Counters:
    """Flink counters by the names the core gives them, registered on first use."""

    def __init__(self, ctx: RuntimeContext):
        self.group, self.known = ctx.get_metrics_group(), {}

    def inc(self, name: str) -> None:
        counter = self.known.get(name)
        if counter is None:
            counter = self.known[name] = self.group.counter(name)
        counter.inc()


RECORD_OUTPUTS = {"exposures": EXPOSURES, "outcomes": OUTCOMES}


class _Emitter:
    """Sends each message a step emitted to its destination's output: notifications on the main
    output of the push policy, hop messages on the main output or on a side output by destination.
    Exposures and outcomes go out only on the record outputs named in `records` (those with a sink):
    PyFlink fails the job on a record sent to a side output nobody reads."""

    def __init__(self, main: str | None, sides: tuple[str, ...], records: tuple[str, ...] = tuple(RECORD_OUTPUTS)):
        self.main, self.sides = main, {destination: side_output(destination) for destination in sides}
        self.exposures = EXPOSURES if "exposures" in records else None  # None: no sink, dropped
        self.outcomes = OUTCOMES if "outcomes" in records else None

    def records(self, step: Step):
        for message in step.emit:
            if isinstance(message, Notification):
                yield Row(message.user, message.encode().decode())
                continue
            if isinstance(message, Exposure):
                if self.exposures is not None:
                    yield self.exposures, Row(message.notification.user, message.encode().decode())
                continue
            if isinstance(message, Outcome):
                if self.outcomes is not None:
                    yield self.outcomes, Row(message.user, message.encode().decode())
                continue
            if isinstance(message, UserErased):  # a tombstone keyed like the user's records on each topic
                yield Row(message.user, None)
                tags = (tag for tag in (self.exposures, self.outcomes) if tag is not None)
                yield from ((tag, Row(message.user, None)) for tag in tags)
                continue
            record = (message.routing_key, message.event_time, message.encode())
            yield record if message.DESTINATION == self.main else (self.sides[message.DESTINATION], record)


class _AdmitFunction(ProcessFunction):
    """Parses and checks raw records; rejects go to the dead-letter side output with the reason."""

    STAGE: str  # named in dead letters
    COUNTED: str  # the counters' prefix: <COUNTED>_admitted, <COUNTED>_dead_lettered

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.counters = _Counters(ctx)

    def admit(self, raw: bytes, now: int):
        raise NotImplementedError

    def process_element(self, value: str, ctx: ProcessFunction.Context):
        now = ctx.timer_service().current_processing_time()
        raw = codec.source_bytes(value)
        try:
            record = self.admit(raw, now)
        except intake.Rejected as rejection:
            self.counters.inc(f"{self.COUNTED}_dead_lettered")
            self.counters.inc(metrics.dead_letter_counter(rejection.reason))
            yield DEAD_LETTERS, _dead_letter(rejection.reason, self.STAGE, raw, now)
            return
        self.counters.inc(f"{self.COUNTED}_admitted")
        yield record.routing_key, record.event_time, record.encode()


class AdmitEventsFunction(_AdmitFunction):
    """Behaviour, order, feedback and erasure events, on to the user context."""

    STAGE, COUNTED = "admit", "events"

    def admit(self, raw: bytes, now: int):
        return intake.admit(raw, now, self.config.intake)


class AdmitCatalogFunction(_AdmitFunction):
    """Catalogue records: missing fields, negative or absurd prices, unknown categories -> dead letters."""

    STAGE, COUNTED = "admit-catalog", "catalog"

    def admit(self, raw: bytes, now: int):
        return catalog_intake.admit_catalog(raw, now, self.config.catalog, self.config.intake)


class AdmitUsersFunction(_AdmitFunction):
    """User directory records: unknown time zones, bad locales, wrong types -> dead letters."""

    STAGE, COUNTED = "admit-users", "users"

    def admit(self, raw: bytes, now: int):
        return directory.admit_user_record(raw, now, self.config.intake)


class StageFunction(KeyedProcessFunction):
    """One keyed stage: decode the message, load the key's state, call the stage's step, carry it out.

    A failure inside the core dead-letters the record instead of taking the job down with it."""

    STAGE: str  # the stage of operators.topology this function runs
    READS_REDIS = False  # its steps read side inputs or ask for effects

    def reads_redis(self) -> bool:
        return self.READS_REDIS
    MEASURES_LATENCY = False  # counts event-to-decision latency (operators.metrics)

    def __init__(self, config: JobConfig, main: str | None, sides: tuple[str, ...] = (),
                 records: tuple[str, ...] = tuple(RECORD_OUTPUTS)):
        self.config, self.main, self.sides, self.records = config, main, sides, records
        self.stage: Stage = STAGES[self.STAGE]

    def open(self, ctx: RuntimeContext):
        self.emitter = _Emitter(self.main, self.sides, self.records)  # here: output tags do not survive pickling
        ttl = self.config.flink.state_ttl_hours if self.stage.expires else None
        self.state = _value_state(ctx, self.stage.state_name, ttl)
        durable = self.stage.durable
        self.durable = _value_state(ctx, durable.state_name, None) if durable is not None else None
        self.stored_part = None  # the durable part as loaded last, to store it only when it changed
        self.counters = _Counters(ctx)
        self.client = self.effects = self.side = None
        if self.reads_redis():
            import redis

            self.client = redis.Redis.from_url(self.config.redis.url, socket_timeout=10)
            items = self.config.item_model
            cards = ItemCardStore(self.client, RedisKeys(self.config.redis.key_prefix),
                                  int(self.config.flink.state_ttl_hours * 3600), items.card_cache_ms,
                                  items.card_cache_size, items.card_flush_ms)
            lists = self.config.trending
            self.side = RedisSideInputs(cards, lists.top_n, lists.read_cache_ms, lists.window_ms, lists.slide_ms)
            self.effects = RedisEffects(self.client, cards)

    def close(self):
        if self.client is not None:
            self.effects.cards.flush()
            self.client.close()

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        now = ctx.timer_service().current_processing_time()
        try:
            message = codec.decode(value[2], self.stage.accepts, self.stage.name)
            loaded = self.load()
            step = self.stage.step(loaded, message, StepContext(now, self.side, self.config))
        except Exception as exc:  # a bug must not take the job down with it; the record is kept
            yield from self.failed(exc, value[2], now)
            return
        if self.MEASURES_LATENCY:  # from the event's time to its decision: the pipeline's delay, live
            for name in metrics.latency_counters(now - value[1]):
                self.counters.inc(name)
        yield from self.carry_out(step, loaded, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        loaded = self.load()
        step = self.stage.on_timer(loaded, ctx.get_current_key(), timestamp,
                                   StepContext(ctx.timer_service().current_processing_time(), self.side, self.config))
        yield from self.carry_out(step, loaded, ctx)

    def load(self):
        state = self.stage.state.decode(self.state.value())
        if self.durable is None:
            return state
        state, self.stored_part = self.stage.durable.join(state, self.durable.value())
        return state

    def store(self, state) -> None:
        if state is None:
            self.state.clear()
            if self.durable is not None:
                self.durable.clear()
            return
        if self.durable is not None:
            state, part = self.stage.durable.split(state, self.stored_part)
            if part == DELETE_PART:
                self.durable.clear()
            elif part is not None:
                self.durable.update(part.encode())
        self.state.update(state.encode())

    def failed(self, exc: Exception, payload: bytes, now: int):
        reason = f"{self.stage.name} failed: {exc!r}"
        self.counters.inc(f"{self.stage.name.replace('-', '_')}_failures")
        self.counters.inc(metrics.dead_letter_counter(reason))
        yield DEAD_LETTERS, _dead_letter(reason, self.stage.name, payload, now)

    def carry_out(self, step: Step, loaded, ctx):
        if step.state is not loaded:
            self.store(step.state)
        # Event time, live or replayed: a quiet live input's event time follows the wall clock (jobs/ordering.py).
        for timestamp in step.cancelled_timers:
            ctx.timer_service().delete_event_time_timer(timestamp)
        for timestamp in step.timers:
            ctx.timer_service().register_event_time_timer(timestamp)
        for name in step.counts:
            self.counters.inc(name)
        if step.effects:
            self.effects.apply_all(step.effects)
        for effect in step.effects:
            self.counters.inc(effect.COUNTER)
        yield from self.emitter.records(step)


class TrackUserContextFunction(StageFunction):
    """User-keyed: dedup, recent items, the behaviour profile; sends each event on to where it is needed."""

    STAGE = USER_CONTEXT

    def reads_redis(self) -> bool:  # the streamed factors read item cards and the trending list
        return self.config.factors.enabled


class ObserveCatalogTermsFunction(StageFunction):
    """Item-keyed: what a catalogue record changes in the vocabulary (each item is one document)."""

    STAGE = CATALOG_TERMS


class WeighCatalogTermsFunction(StageFunction):
    """One global vocabulary turns each catalogue record into a TF-IDF vector. Document frequencies
    live in MapState, so a record touches only its own terms."""

    STAGE = VOCABULARY

    def open(self, ctx: RuntimeContext):
        self.emitter = _Emitter(self.main, self.sides)
        self.documents = ctx.get_state(ValueStateDescriptor("catalog-documents", Types.LONG()))
        self.frequency = ctx.get_map_state(MapStateDescriptor(self.stage.state_name, Types.STRING(), Types.LONG()))
        self.counters = _Counters(ctx)
        self.client = self.effects = self.side = None  # it reads nothing of other keys and writes no effects

    def load(self) -> VocabularyView:
        return VocabularyView(self.documents.value() or 0, self.frequency.get)

    def store(self, change) -> None:
        self.documents.update(change.documents)
        for term, count in change.frequencies.items():
            if count:
                self.frequency.put(term, count)
            else:
                self.frequency.remove(term)


class UpdateItemModelFunction(StageFunction):
    """Item-keyed: catalogue join, popularity, co-occurrence, cosine top-K; a signal per event to the scorer."""

    STAGE = ITEM_MODEL
    READS_REDIS = True


class ScorePurchaseIntentFunction(StageFunction):
    """The one purchase-intent model: learns the labels shoppers' events settle, scores each event for its scorer."""

    STAGE = INTENT


class SegmentUsersFunction(StageFunction):
    """Streaming k-means over profile vectors (one small global model); tells each user's scorer its segment."""

    STAGE = SEGMENTER

    def open(self, ctx: RuntimeContext):
        super().open(ctx)
        # The last model written, decoded: validating k x d floats on every update was most of this
        # operator's cost. State stays the truth: the cache is used only if it matches it.
        self.decoded: tuple[str | None, object] = (None, None)

    def load(self):
        raw = self.state.value()
        if raw is None or raw != self.decoded[0]:
            self.decoded = (raw, self.stage.state.decode(raw))
        return self.decoded[1]

    def store(self, state) -> None:
        encoded = state.encode()
        self.state.update(encoded)
        self.decoded = (encoded, state)


class DecideNotificationsFunction(StageFunction):
    """User-keyed: content vector, segment, hybrid score, caps, cooldowns, opt-out, transactional first;
    the inbox, profile and top-N in Redis; notifications on to the sink."""

    STAGE = PUSH_POLICY
    READS_REDIS = True
    MEASURES_LATENCY = True
