"""Thin Flink shells around the functional core: load state, call the core, store or clear, emit.

Records between keyed hops are tuples of strings whose payload is an explicit, versioned JSON
encoding from `state_schemas`; keyed state is one ValueState[str] per operator and key.
"""
from __future__ import annotations

from pyflink.common import Duration, Types
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

from jobs.config import JobConfig
from operators import inbox, intake, item_model, push_policy, user_context
from state_schemas import codec
from state_schemas.events import decode_event
from state_schemas.outputs import DeadLetter, Notification
from state_schemas.state import CandidateSet, ItemModel, ItemUpdate, PushState, UserContext

# (user id, event time, normalised event JSON)
ADMITTED = Types.TUPLE([Types.STRING(), Types.LONG(), Types.STRING()])
# (routing key, payload kind, payload JSON)
ROUTED = Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING()])
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
TO_PUSH_POLICY = OutputTag("to-push-policy", ROUTED)

KIND_EVENT = "event"
KIND_CANDIDATES = "candidates"


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
        metrics = ctx.get_metrics_group()
        self.duplicates = metrics.counter("events_duplicate")
        self.erasures = metrics.counter("users_erased")
        self.failures = metrics.counter("user_context_failures")

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        user_id, _, payload = value
        try:
            step = user_context.observe(UserContext.decode(self.state.value()), decode_event(payload),
                                        self.config.intake, self.config.profile)
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
        if step.to_item_hop is not None:
            yield step.to_item_hop.event["item_id"], user_id, step.to_item_hop.encode()
        if step.to_push_hop is not None:
            yield TO_PUSH_POLICY, (user_id, KIND_EVENT, codec.dumps_str(step.to_push_hop.to_dict()))


class UpdateItemModelFunction(KeyedProcessFunction):
    """Item-keyed: popularity and co-occurrence; on triggers, sends candidates to the push policy."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.state = _value_state(ctx, "item-model", self.config.flink.state_ttl_hours)
        self.failures = ctx.get_metrics_group().counter("item_model_failures")

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        _, user_id, payload = value
        try:
            new_state, candidates = item_model.update_item(ItemModel.decode(self.state.value()),
                                                           ItemUpdate.decode(payload),
                                                           self.config.item_model, self.config.profile)
        except Exception as exc:
            self.failures.inc()
            yield DEAD_LETTERS, _dead_letter(f"item model failed: {exc!r}", "item-model", payload,
                                             ctx.timer_service().current_processing_time())
            return
        self.state.update(new_state.encode())
        if candidates is not None:
            yield user_id, KIND_CANDIDATES, candidates.encode()


class DecideNotificationsFunction(KeyedProcessFunction):
    """User-keyed push policy: caps, cooldowns, opt-out, transactional before marketing."""

    def __init__(self, config: JobConfig):
        self.config = config

    def open(self, ctx: RuntimeContext):
        self.state = _value_state(ctx, "push-state", self.config.flink.state_ttl_hours)
        metrics = ctx.get_metrics_group()
        self.sent = metrics.counter("notifications_sent")
        self.suppressed = metrics.counter("notifications_suppressed")
        self.failures = metrics.counter("push_policy_failures")

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        user_id, kind, payload = value
        created_at = ctx.timer_service().current_processing_time()
        try:
            message = CandidateSet.decode(payload) if kind == KIND_CANDIDATES else decode_event(payload)
            step = push_policy.handle(PushState.decode(self.state.value()), message, user_id, created_at,
                                      self.config.policy, self.config.privacy.pseudonym_key)
        except Exception as exc:
            self.failures.inc()
            yield DEAD_LETTERS, _dead_letter(f"push policy failed: {exc!r}", "push-policy", payload, created_at)
            return
        if step.state is None:
            self.state.clear()
        else:
            self.state.update(step.state.encode())
        if step.notification is not None:
            self.sent.inc()
            yield step.notification.encode().decode()
        elif step.suppressed is not None:
            self.suppressed.inc()


class StoreInboxInRedisFunction(ProcessFunction):
    """Writes each notification to the user's Redis inbox and passes it on to the Kafka sink."""

    def __init__(self, config: JobConfig):
        self.config = config.redis

    def open(self, ctx: RuntimeContext):
        import redis

        self.client = redis.Redis.from_url(self.config.url, socket_timeout=10)
        self.written = ctx.get_metrics_group().counter("inbox_writes")

    def close(self):
        self.client.close()

    def process_element(self, value: str, ctx: ProcessFunction.Context):
        write = inbox.inbox_write(Notification.decode(value), self.config)
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
        self.written.inc()
        yield value
