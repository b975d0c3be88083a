"""The notification job: behaviour events and the catalogue in, personalised notifications out.

    events ─► admit (dead letters ─► DLQ) ─► watermarks
           ─► key_by(user)  user context: dedup, history, profile ─► key_by(const) segmenter (k-means) ──┐
                            └─ deduplicated behaviour ─► windows: trending, behaviour counts ─► Redis     │
    catalog ─► admit ─► key_by(const) TF-IDF weigher ─┐                                                 │
           ─► key_by(item)  item model: catalogue join, CF rows, cosine top-K (cards ⇄ Redis) ─┐        │
                            orders/feedback/erasure ─────────────────────────────────────────┴───────┴─►
           ─► key_by(user)  scorer + push policy (side inputs from Redis) ─► Redis profile, top-N
           ─► Redis inbox (idempotent) ─► notifications topic

Submit to a cluster with `flink run -py jobs/notification_job.py -j <connector.jar> -- --config FILE`.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `flink run -py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.config import JobConfig, load_config  # noqa: E402
from jobs.runtime import create_environment  # noqa: E402


@dataclass(frozen=True)
class JobSources:
    events: object  # a Flink Source of strings
    catalog: object | None = None


@dataclass(frozen=True)
class JobSinks:
    notifications: object  # a Flink Sink of strings
    dead_letters: object


def fan_out(single, output_type, name: str):
    """A single-instance stage's output, spread over the job's parallelism. PyFlink keys a union
    through a map that follows its inputs by forward partitioning, which a change of parallelism
    forbids, so the spread is an explicit rebalance into a pass-through map."""
    return single.rebalance().map(lambda record: record, output_type=output_type).name(f"spread {name}").uid(f"spread-{name}")


def build_pipeline(env, sources: JobSources, sinks: JobSinks, config: JobConfig):
    from pyflink.common import Types, WatermarkStrategy

    from jobs.flink_functions import (ACCEPTED, ADMITTED, DEAD_LETTERS, DECIDED, ROUTED, TO_PUSH_POLICY, TO_SEGMENTER,
                                      AdmitCatalogFunction, AdmitEventsFunction, DecideNotificationsFunction,
                                      SegmentUsersFunction, TrackUserContextFunction, UpdateItemModelFunction,
                                      WeighCatalogTermsFunction, WriteToRedisFunction, catalog_watermarks,
                                      event_time_watermarks, routing_key)
    from jobs.windowed_aggregations import add_windowed_aggregations

    raw = env.from_source(sources.events, WatermarkStrategy.no_watermarks(), "events").uid("events-source")
    admitted = raw.process(AdmitEventsFunction(config), output_type=ADMITTED).name("admit events").uid("admit-events")
    timed = admitted.assign_timestamps_and_watermarks(event_time_watermarks(config)).name("event time").uid("event-time")
    by_user = timed.key_by(routing_key, key_type=Types.STRING())
    contexts = by_user.process(TrackUserContextFunction(config), output_type=ROUTED).name("user context").uid("user-context")
    if config.trending.enabled and config.redis.enabled:
        # Python operators pass no timestamps to side outputs: event time is read again.
        accepted = contexts.get_side_output(ACCEPTED).assign_timestamps_and_watermarks(event_time_watermarks(config)).name("accepted event time").uid("accepted-event-time")
        add_windowed_aggregations(accepted, config)
    to_items = contexts
    dead_letters = [admitted.get_side_output(DEAD_LETTERS), contexts.get_side_output(DEAD_LETTERS)]
    if sources.catalog is not None:
        listings = env.from_source(sources.catalog, catalog_watermarks(config), "catalog").uid("catalog-source")
        admitted_listings = listings.process(AdmitCatalogFunction(config), output_type=ROUTED).name("admit catalog").uid("admit-catalog")
        weighed = admitted_listings.key_by(routing_key, key_type=Types.STRING()).process(WeighCatalogTermsFunction(config), output_type=ROUTED).name("weigh catalog terms").uid("weigh-catalog-terms").set_parallelism(1)
        weighed = fan_out(weighed, ROUTED, "catalog")
        to_items = contexts.union(weighed)
        dead_letters.append(admitted_listings.get_side_output(DEAD_LETTERS))
    signals = to_items.key_by(routing_key, key_type=Types.STRING()).process(UpdateItemModelFunction(config), output_type=ROUTED).name("item model").uid("item-model")
    to_policy = signals.union(contexts.get_side_output(TO_PUSH_POLICY))
    if config.segments.enabled:
        assignments = contexts.get_side_output(TO_SEGMENTER).key_by(routing_key, key_type=Types.STRING()).process(SegmentUsersFunction(config), output_type=ROUTED).name("segment users").uid("segment-users").set_parallelism(1)
        to_policy = to_policy.union(fan_out(assignments, ROUTED, "segments"))
        dead_letters.append(assignments.get_side_output(DEAD_LETTERS))
    decided = to_policy.key_by(routing_key, key_type=Types.STRING()).process(DecideNotificationsFunction(config), output_type=DECIDED).name("score and decide").uid("push-policy")
    notifications = decided.process(WriteToRedisFunction(config), output_type=Types.STRING()).name("redis inbox, profiles, top-N").uid("redis-inbox")
    notifications.sink_to(sinks.notifications).name("notifications sink").uid("notifications-sink")
    dead_letters += [signals.get_side_output(DEAD_LETTERS), decided.get_side_output(DEAD_LETTERS)]
    dead_letters[0].union(*dead_letters[1:]).sink_to(sinks.dead_letters).name("dead-letter sink").uid("dead-letter-sink")
    return notifications


def kafka_source(config: JobConfig, topic: str, group_suffix: str = ""):
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kafka import KafkaOffsetResetStrategy, KafkaOffsetsInitializer, KafkaSource

    starting = {
        "earliest": KafkaOffsetsInitializer.earliest,
        "latest": KafkaOffsetsInitializer.latest,
        "committed": lambda: KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST),
    }[config.kafka.starting_offsets]()
    builder = (KafkaSource.builder()
               .set_bootstrap_servers(config.kafka.bootstrap_servers)
               .set_topics(topic)
               .set_group_id(config.kafka.group_id + group_suffix)
               .set_starting_offsets(starting)
               .set_value_only_deserializer(SimpleStringSchema())
               .set_property("partition.discovery.interval.ms", "10000"))
    if config.kafka.bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def kafka_sink(config: JobConfig, topic: str, id_suffix: str):
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

    guarantee = (DeliveryGuarantee.EXACTLY_ONCE if config.flink.delivery_guarantee == "exactly-once"
                 else DeliveryGuarantee.AT_LEAST_ONCE)
    return (KafkaSink.builder()
            .set_bootstrap_servers(config.kafka.bootstrap_servers)
            .set_record_serializer(KafkaRecordSerializationSchema.builder()
                                   .set_topic(topic)
                                   .set_value_serialization_schema(SimpleStringSchema())
                                   .build())
            .set_delivery_guarantee(guarantee)
            .set_transactional_id_prefix(f"{config.kafka.transactional_id_prefix}-{id_suffix}")
            .set_property("transaction.timeout.ms", str(config.kafka.transaction_timeout_ms))
            .set_property("linger.ms", "5")
            .build())


def run(config: JobConfig, jars: list[Path], job_name: str = "notify-engine", extra_flink: dict | None = None,
        wait: bool = True):
    """Builds and runs the job on Kafka; returns when a bounded job ends (or at once if not `wait`)."""
    env = create_environment(config, jars, extra_flink)
    sinks = JobSinks(notifications=kafka_sink(config, config.kafka.notifications_topic, "notifications"),
                     dead_letters=kafka_sink(config, config.kafka.dead_letter_topic, "dead-letters"))
    sources = JobSources(events=kafka_source(config, config.kafka.events_topic),
                         catalog=kafka_source(config, config.catalog.topic, "-catalog") if config.catalog.enabled else None)
    build_pipeline(env, sources, sinks, config)
    if wait:
        return env.execute(job_name)
    return env.execute_async(job_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the notification job.")
    parser.add_argument("--config", help="YAML job config (defaults: `notify-engine config`)")
    parser.add_argument("--jar", action="append", default=[], type=Path,
                        help="connector jar for a local run (`flink run -j` ships it on a cluster)")
    args = parser.parse_args(argv)
    run(load_config(args.config), args.jar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
