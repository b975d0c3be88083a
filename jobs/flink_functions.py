"""Thin Flink shells around the functional core: load state, call the core, store or clear, emit.

Records between keyed hops are tuples of strings whose payload is an explicit, versioned JSON
encoding from `state_schemas`; keyed state is one ValueState[str] per operator and key.
"""
from __future__ import annotations

from pyflink.common import Duration, Types
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor

from jobs.config import JobConfig
from jobs.side_inputs import ItemCardStore, RedisSideInputs
from operators import catalog_intake, inbox, intake, item_model, push_policy, segments, trending, user_context
from operators.content import item_terms, tfidf_vector
from state_schemas import codec
from state_schemas.events import BehaviourEvent, CatalogItem, decode_event
from state_schemas.outputs import DeadLetter, Notification, ServingRecord
from state_schemas.segments import SegmentAssignment, SegmentModel, SegmentUpdate
from state_schemas.state import ItemModel, ItemSignal, ItemUpdate, ListedItem, PushState, UserContext

# (user id, event time, normalised event JSON)
ADMITTED = Types.TUPLE([Types.STRING(), Types.LONG(), Types.STRING()])
# (routing key, payload kind, payload JSON)
ROUTED = Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING()])
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
TO_PUSH_POLICY = OutputTag("to-push-policy", ROUTED)
TO_SEGMENTER = OutputTag("to-segmenter", ROUTED)
ACCEPTED = OutputTag("accepted-behaviour", ADMITTED)  # deduplicated behaviour events, for the windows
# Scorer output: (KIND_NOTIFICATION | KIND_SERVING, JSON), in the order decided
DECIDED = Types.TUPLE([Types.STRING(), Types.STRING()])

END_OF_STREAM = 2**63 - 1  # event-time timers here fire only when a bounded input ends
KIND_EVENT = "event"
KIND_UPDATE = "update"
KIND_CATALOG = "catalog"
KIND_SIGNAL = "signal"
KIND_SEGMENT = "segment"
KIND_NOTIFICATION = "notification"
KIND_SERVING = "serving"
SEGMENTER_KEY = "segments"  # one small global model: k centroids and k trend lists


def _redis(config: JobConfig):
    import redis

    return redis.Redis.from_url(config.redis.url, socket_timeout=10)


def _card_store(client, config: JobConfig) -> ItemCardStore:
    items = config.item_model
    return ItemCardStore(client, config.redis.key_prefix, int(config.flink.state_ttl_hours * 3600),
                         items.card_cache_ms, items.card_cache_size, items.card_flush_ms)


def routing_key(record) -> str:
    return record[0]


def _dead_letter(reason: str, stage: str, raw: str | bytes, now_ms: int) -> str:
    raw_bytes = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    return DeadLetter(reason=reason, stage=stage, raw=raw_bytes, rejected_at=now_ms).encode().decode()


def _value_state(ctx: RuntimeContext, name: str, ttl_hours: float):
    descriptor = ValueStateDescriptor(name, Types.STRING())
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


class EventTimeAssigner(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return value[1]


class CatalogTimeAssigner(TimestampAssigner):
    """Catalogue records carry their listing time; unreadable ones (dead-lettered next) sort first."""

    def extract_timestamp(self, value, record_timestamp: int) -> int:
        try:
            ts = codec.loads_object(value, "catalogue item").get("ts")
        except codec.SchemaError:
            return 0
        return ts if type(ts) is int else 0


def catalog_watermarks(config: JobConfig) -> WatermarkStrategy:
    # Mostly idle in production: idleness keeps it from holding back the item hop's event time.
    return (WatermarkStrategy
            .for_bounded_out_of_orderness(Duration.of_millis(config.intake.out_of_orderness_ms))
            .with_idleness(Duration.of_millis(config.intake.idleness_ms))
            .with_timestamp_assigner(CatalogTimeAssigner()))


def event_time_watermarks(config: JobConfig) -> WatermarkStrategy:
    return (WatermarkStrategy
            .for_bounded_out_of_orderness(Duration.of_millis(config.intake.out_of_orderness_ms))
            .with_idleness(Duration.of_millis(config.intake.idleness_ms))
            .with_timestamp_assigner(EventTimeAssigner()))


class AdmitEventsFunction(ProcessFunction):
    """Parses and checks raw records; rejects go to the dead-letter side output with the reason."""

    def __init__(self, config: JobConfig):
        self.limits = config.intake

    def open(self, ctx: RuntimeContext):
        metrics = ctx.get_metrics_group()
        self.admitted = metrics.counter("events_admitted")
        self.rejected = metrics.counter("events_dead_lettered")

    def process_element(self, value: str, ctx: ProcessFunction.Context):
        now = ctx.timer_service().current_processing_time()
        raw = value.encode("utf-8", "surrogateescape")
        try:
            event = intake.admit(raw, now, self.limits)
        except intake.Rejected as rejection:
            self.rejected.inc()
            yield DEAD_LETTERS, _dead_letter(rejection.reason, "admit", raw, now)
            return
        self.admitted.inc()
        yield event.user_id, event.ts, codec.dumps_str(event.to_dict())


class TrackUserContextFunction(KeyedProcessFunction):
    """User-keyed: dedup, recent items, category affinity; routes each event onwards."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.state = _value_state(ctx, "user-context", self.config.flink.state_ttl_hours)
        # PyFlink refuses a side output nobody consumes: only feed the windows when they exist.
        self.windows_on = self.config.trending.enabled and self.config.redis.enabled
        metrics = ctx.get_metrics_group()
        self.duplicates = metrics.counter("events_duplicate")
        self.erasures = metrics.counter("users_erased")
        self.failures = metrics.counter("user_context_failures")

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        user_id, _, payload = value
        try:
            event = decode_event(payload)
            step = user_context.observe(UserContext.decode(self.state.value()), event,
                                        self.config.intake, self.config.profile, self.config.segments)
        except Exception as exc:  # a bug must not take the job down with it; the record is kept
            self.failures.inc()
            yield DEAD_LETTERS, _dead_letter(f"user context failed: {exc!r}", "user-context", payload,
                                             ctx.timer_service().current_processing_time())
            return
        if step.state is None:
            self.state.clear()
            self.erasures.inc()
        else:
            self.state.update(step.state.encode())
        if step.duplicate:
            self.duplicates.inc()
        elif self.windows_on and isinstance(event, BehaviourEvent):
            yield ACCEPTED, value
        if step.to_item_hop is not None:
            yield step.to_item_hop.event["item_id"], KIND_UPDATE, step.to_item_hop.encode()
        if step.to_segmenter is not None:
            yield TO_SEGMENTER, (SEGMENTER_KEY, KIND_SEGMENT, step.to_segmenter.encode())
        if step.to_push_hop is not None:
            yield TO_PUSH_POLICY, (user_id, KIND_EVENT, codec.dumps_str(step.to_push_hop.to_dict()))


class AdmitCatalogFunction(ProcessFunction):
    """Checks catalogue records: missing fields, negative or absurd prices, unknown categories -> dead letters."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        metrics = ctx.get_metrics_group()
        self.admitted = metrics.counter("catalog_admitted")
        self.rejected = metrics.counter("catalog_dead_lettered")

    def process_element(self, value: str, ctx: ProcessFunction.Context):
        now = ctx.timer_service().current_processing_time()
        raw = value.encode("utf-8", "surrogateescape")
        try:
            item = catalog_intake.admit_catalog(raw, now, self.config.catalog, self.config.intake)
        except intake.Rejected as rejection:
            self.rejected.inc()
            yield DEAD_LETTERS, _dead_letter(rejection.reason, "admit-catalog", raw, now)
            return
        self.admitted.inc()
        yield SEGMENTER_KEY, KIND_CATALOG, codec.dumps_str(item.to_dict())


class WeighCatalogTermsFunction(KeyedProcessFunction):
    """One global vocabulary (document frequencies) turns each catalogue record into a TF-IDF vector.

    Catalogue traffic is small next to events, so one instance suffices; df lives in MapState so a
    record touches only its own terms. Each record counts as a document (a compacted topic holds
    one per item); vectors keep the IDF of the moment the record arrived."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.documents = ctx.get_state(ValueStateDescriptor("catalog-documents", Types.LONG()))
        self.frequency = ctx.get_map_state(MapStateDescriptor("term-document-frequency", Types.STRING(), Types.LONG()))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        item = CatalogItem.from_dict(codec.loads_object(value[2], "catalogue item"))
        terms = item_terms(item)
        documents = (self.documents.value() or 0) + 1
        self.documents.update(documents)
        frequency = {}
        for term in terms:
            frequency[term] = (self.frequency.get(term) or 0) + 1
            self.frequency.put(term, frequency[term])
        vector = tfidf_vector(terms, frequency, documents, self.config.catalog.terms_per_item)
        yield item.item_id, KIND_CATALOG, ListedItem(item=item.to_dict(), vector=vector).encode()


class UpdateItemModelFunction(KeyedProcessFunction):
    """Item-keyed: catalogue join, popularity, co-occurrence, cosine top-K; a signal per event to the scorer."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.state = _value_state(ctx, "item-model", self.config.flink.state_ttl_hours)
        self.client = _redis(self.config)
        self.cards = _card_store(self.client, self.config)
        metrics = ctx.get_metrics_group()
        self.failures = metrics.counter("item_model_failures")
        self.unlisted = metrics.counter("events_for_unlisted_items")

    def close(self):
        self.cards.flush()
        self.client.close()

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        item_id, kind, payload = value
        try:
            state = ItemModel.decode(self.state.value())
            if kind == KIND_CATALOG:
                listed = ListedItem.decode(payload)
                step = item_model.join_catalog(state, CatalogItem.from_dict(listed.item), listed.vector)
                if step.state.listed_at is not None and step.state is not state:
                    self.cards.list_item(item_id, step.state.category_id, step.state.listed_at)
            else:
                step = item_model.update_item(state, ItemUpdate.decode(payload), self.cards.get_many,
                                              self.config.item_model, self.config.profile,
                                              self.config.catalog.terms_per_item)
                if step.state.listed_at is None:
                    self.unlisted.inc()
        except Exception as exc:
            self.failures.inc()
            yield DEAD_LETTERS, _dead_letter(f"item model failed: {exc!r}", "item-model", payload,
                                             ctx.timer_service().current_processing_time())
            return
        self.state.update(step.state.encode())
        self.cards.publish(item_id, step.card)
        if step.refresh_at is not None:
            ctx.timer_service().register_event_time_timer(step.refresh_at)
            ctx.timer_service().register_event_time_timer(END_OF_STREAM)
        if step.signal is not None:
            yield step.signal.event["user_id"], KIND_SIGNAL, step.signal.encode()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        # Recompute top-K with newer denominators. When a bounded stream ends, the watermark jumps
        # to the end of time: every item with a row refreshes once more, with all counts final.
        state = ItemModel.decode(self.state.value())
        if not state.row:
            return
        final = timestamp == END_OF_STREAM
        if final:
            self.cards.flush()
        refreshed = item_model.refresh_neighbours(state, lambda items: self.cards.get_many(items, fresh=final),
                                                  self.config.item_model)
        self.state.update(refreshed.encode())
        self.cards.publish_neighbours(ctx.get_current_key(), refreshed.neighbours)
        yield from ()  # emits nothing; process mode needs an iterable back, not None


class SegmentUsersFunction(KeyedProcessFunction):
    """Streaming k-means over profile vectors (one small global model); tells each user's scorer its segment."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.state = ctx.get_state(ValueStateDescriptor("segment-model", Types.STRING()))
        self.failures = ctx.get_metrics_group().counter("segmenter_failures")
        # The last model written, decoded: validating k x d floats on every update was most of
        # this operator's cost. State stays the truth: the cache is used only if it matches it.
        self.decoded: tuple[str | None, SegmentModel] = (None, SegmentModel())

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        try:
            raw = self.state.value()
            if raw != self.decoded[0]:
                self.decoded = (raw, SegmentModel.decode(raw) if raw is not None else SegmentModel())
            model, assignment = segments.update_segments(self.decoded[1], SegmentUpdate.decode(value[2]),
                                                         self.config.segments)
        except Exception as exc:
            self.failures.inc()
            yield DEAD_LETTERS, _dead_letter(f"segmenter failed: {exc!r}", "segmenter", value[2],
                                             ctx.timer_service().current_processing_time())
            return
        encoded = model.encode()
        self.state.update(encoded)
        self.decoded = (encoded, model)
        yield assignment.user_id, KIND_SEGMENT, assignment.encode()


class DecideNotificationsFunction(KeyedProcessFunction):
    """User-keyed: content vector, segment, hybrid score, caps, cooldowns, opt-out, transactional first."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.state = _value_state(ctx, "push-state", self.config.flink.state_ttl_hours)
        self.client = _redis(self.config)
        self.side = RedisSideInputs(_card_store(self.client, self.config), self.config.trending.top_n,
                                    self.config.trending.read_cache_ms)
        metrics = ctx.get_metrics_group()
        self.sent = metrics.counter("notifications_sent")
        self.suppressed = metrics.counter("notifications_suppressed")
        self.failures = metrics.counter("push_policy_failures")

    def close(self):
        self.client.close()

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        user_id, kind, payload = value
        created_at = ctx.timer_service().current_processing_time()
        try:
            if kind == KIND_SIGNAL:
                message = ItemSignal.decode(payload)
            elif kind == KIND_SEGMENT:
                message = SegmentAssignment.decode(payload)
            else:
                message = decode_event(payload)
            step = push_policy.handle(PushState.decode(self.state.value()), message, user_id, created_at,
                                      self.side, self.config)
        except Exception as exc:
            self.failures.inc()
            yield DEAD_LETTERS, _dead_letter(f"push policy failed: {exc!r}", "push-policy", payload, created_at)
            return
        if step.state is None:
            self.state.clear()
        else:
            self.state.update(step.state.encode())
        for record in step.serving:
            yield KIND_SERVING, record.encode()
        if step.notification is not None:
            self.sent.inc()
            yield KIND_NOTIFICATION, step.notification.encode().decode()
        elif step.suppressed is not None:
            self.suppressed.inc()


class WriteToRedisFunction(ProcessFunction):
    """The one Redis writer after the scorer, so a user's writes keep their order (an erasure is
    never overtaken by an older inbox write): inbox entries, profiles and top-N lists, erasures.
    Notifications pass on to the Kafka sink. Every write is idempotent on replay."""

    def __init__(self, config: JobConfig):
        self.config = config.redis

    def open(self, ctx: RuntimeContext):
        import redis

        self.client = redis.Redis.from_url(self.config.url, socket_timeout=10)
        metrics = ctx.get_metrics_group()
        self.inbox_writes = metrics.counter("inbox_writes")
        self.serving_writes = metrics.counter("serving_writes")

    def close(self):
        self.client.close()

    def process_element(self, value, ctx: ProcessFunction.Context):
        kind, payload = value
        if kind == KIND_SERVING:
            self._serve(ServingRecord.decode(payload))
            self.serving_writes.inc()
            return
        if self.config.enabled:
            self._store_in_inbox(Notification.decode(payload))
            self.inbox_writes.inc()
        yield payload

    def _store_in_inbox(self, notification: Notification) -> None:
        write = inbox.inbox_write(notification, self.config)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(write.body_key, write.notification_id, write.body)
        pipe.zadd(write.index_key, {write.notification_id: write.score})
        # Keep the newest `keep` entries; bodies of dropped ids are removed with them.
        pipe.zrange(write.index_key, 0, -(write.keep + 1))
        pipe.zremrangebyrank(write.index_key, 0, -(write.keep + 1))
        pipe.expire(write.index_key, write.ttl_s)
        pipe.expire(write.body_key, write.ttl_s)
        dropped = pipe.execute()[2]
        if dropped:
            self.client.hdel(write.body_key, *dropped)

    def _serve(self, record: ServingRecord) -> None:
        prefix = self.config.key_prefix
        if record.kind == "erase":
            # Everything served under the pseudonym: profile, top-N, inbox, windowed counts.
            keys = [f"{prefix}:profile:{record.user}", f"{prefix}:topn:{record.user}",
                    f"{prefix}:topn:{record.user}:reason", inbox.inbox_key(record.user, prefix),
                    inbox.inbox_key(record.user, prefix) + ":body",
                    *self.client.scan_iter(trending.counts_key(prefix, f"user:{record.user}", "*"), count=1000)]
            self.client.delete(*keys)
            return
        key = f"{prefix}:{record.kind}:{record.user}"
        ttl = int(self.config.ttl_hours * 3600)
        pipe = self.client.pipeline(transaction=True)
        if record.kind == "topn":
            pipe.delete(key, key + ":reason")
            items = record.body["items"]
            if items:
                pipe.zadd(key, {item: score for item, score, _ in items})
                pipe.hset(key + ":reason", mapping={item: reason for item, _, reason in items})
                pipe.expire(key + ":reason", ttl)
        else:
            pipe.set(key, codec.dumps(record.body))
        pipe.expire(key, ttl)
        pipe.execute()
