"""The notification job: behaviour events and the catalogue in, personalised notifications out.

    events (event time per partition) ─► admit ─► by_user: user context (dedup, history, profile)
    user context ─► by_item: item model (catalogue join, CF rows, cosine top-K, cards ⇄ Redis)
                 ─► one instance: segmenter (streaming k-means)
                 ─► one instance: purchase intent (FTRL logistic regression, test then train)
                 ─► windows (Flink SQL): trending, behaviour counts ─► Redis (its event time ─► push policy)
    catalog (event time per partition) ─► admit ─► by_item: catalogue terms
    catalogue terms ─► one instance: vocabulary (TF-IDF) ─► by_item: item model
    users (directory; event time per partition) ─► admit ─► by_user: push policy (consent, zone, locale)
    item model, segmenter, intent, user context (orders, feedback, erasure) ─► by_user: push policy
    push policy (score, decide; inbox, profile, top-N ─► Redis) ─► notifications topic
                                                         ├─► exposures topic (the holdout's would-be sends)
                                                         └─► outcomes topic (carts, purchases after a message)
    every stage's rejects ─► dead-letter topic

Each stage is a shell over a step of `operators/`, named in `operators/topology.py`; each message
names the stage it goes to and the key it is routed by (`state_schemas/hops.py`). Every keyed edge hands
each key's records on in event-time order (`jobs/ordering.py`), so the same input leads to the same
decisions at any parallelism, after any restart, however the network interleaved them.
Submit to a cluster with `flink run -py jobs/notification_job.py -j <connector.jar> -- --config FILE`.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `flink run -py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import JobConfig, load_config  # noqa: E402
from jobs.runtime import create_environment  # noqa: E402
from operators.topology import BY_ITEM, BY_USER, ONE_INSTANCE  # noqa: E402
from state_schemas.outputs import DEAD_LETTER_MAX_BYTES  # noqa: E402


@dataclass(frozen=True)
class JobSources:
    events: object  # a Flink Source of strings
    catalog: object | None = None
    users: object | None = None  # the user directory


@dataclass(frozen=True)
class JobSinks:
    notifications: object  # a Flink Sink of rows (the user's pseudonym as the record key, the notification)
    dead_letters: object
    exposures: object | None = None  # rows as the notifications' (the holdout's would-be sends); None: dropped
    outcomes: object | None = None  # rows as the notifications' (carts and purchases attributed to a message)


@dataclass(frozen=True)
class _Edge:
    """Streams into a keyed stage, keyed by routing key when the stage is added (its uid names the edge's
    operators), each key's records handed on in event-time order (`jobs/ordering.py`): several upstream
    instances may send one key's records (as may several partitions of a topic not keyed by it)."""

    name: str  # BY_USER, BY_ITEM or ONE_INSTANCE
    streams: tuple

    def keyed(self, uid: str):
        from jobs.ordering import ordered_by_key
        from jobs.stage_functions import HOP

        merged = self.streams[0].union(*self.streams[1:]) if len(self.streams) > 1 else self.streams[0]
        return ordered_by_key(merged, HOP, uid, one_instance=self.name == ONE_INSTANCE)


class _Dataflow:
    """Adds stages one line at a time and keeps every stage's dead letters for one sink."""

    def __init__(self, env, config: JobConfig):
        from pyflink.common import Types

        self.env, self.config, self.dead_letters, self.string = env, config, [], Types.STRING()

    def source(self, source, admit, name: str, sparse: bool = False):
        """A Kafka source timed per partition by its records' `ts` (`jobs/ordering.py`; `sparse`: a topic read
        once and then mostly quiet) and its admission (rejects to the dead letters); admitted records keep their
        time and the source's watermarks."""
        from jobs.ordering import source_watermarks
        from jobs.stage_functions import HOP

        raw = self.env.from_source(source, source_watermarks(self.config, sparse), name).uid(f"{name}-source")
        return self.stage(raw, admit, f"admit {name}", f"admit-{name}", output_type=HOP)

    def stage(self, stream, function, name: str, uid: str, output_type=None):
        """A stage reading `stream` (or a keyed `_Edge`); its dead letters join the others. A keyed stage must be
        fed by the edge its topology names, so the wiring here and `operators/topology.py` cannot disagree."""
        from jobs.stage_functions import DEAD_LETTERS, HOP

        edge = stream.name if isinstance(stream, _Edge) else None
        wanted = getattr(function, "stage", None)
        if wanted is not None and edge != wanted.keyed_by:
            raise ValueError(f"stage {uid} is keyed by {wanted.keyed_by}, but fed by {edge or 'no keyed edge'}")
        if isinstance(stream, _Edge):
            stream = stream.keyed(uid)
        out = stream.process(function, output_type=output_type or HOP).name(name).uid(uid)
        if edge == ONE_INSTANCE:
            out = out.set_parallelism(1)
        self.dead_letters.append(out.get_side_output(DEAD_LETTERS))
        return out

    @staticmethod
    def keyed(edge: str):
        """An edge: the union of streams, keyed by each record's routing key, which names a user, an item
        or the one global key; `edge` says which, as the diagram does."""
        def key(*streams):
            return _Edge(edge, streams)
        return key

    @staticmethod
    def spread(single, name: str):
        """A single-instance stage's output, spread over the job's parallelism. PyFlink keys a union
        through a map that follows its inputs by forward partitioning, which a change of parallelism
        forbids, so the spread is an explicit rebalance into a pass-through map."""
        from jobs.stage_functions import HOP

        return single.rebalance().map(lambda record: record, output_type=HOP).name(f"spread {name}") \
            .uid(f"spread-{name}")


def build_pipeline(env, sources: JobSources, sinks: JobSinks, config: JobConfig):
    from jobs import stage_functions as f
    from jobs.runtime import pin_operator_ids
    from jobs.windowed_aggregations import add_windowed_aggregations
    from state_schemas.hops import (CATALOG_TERMS, INTENT, ITEM_MODEL, PUSH_POLICY, SEGMENTER, USER_CONTEXT, VOCABULARY,
                                    WINDOWS)

    flow = _Dataflow(env, config)
    by_user, by_item, one_instance = flow.keyed(BY_USER), flow.keyed(BY_ITEM), flow.keyed(ONE_INSTANCE)
    events = flow.source(sources.events, f.AdmitEventsFunction(config), "events")
    sides = ((PUSH_POLICY,) + (SEGMENTER,) * config.segments.enabled + (INTENT,) * config.intent.enabled
             + (WINDOWS,) * config.windows_enabled)
    contexts = flow.stage(by_user(events), f.TrackUserContextFunction(config, ITEM_MODEL, sides), "user context",
                          USER_CONTEXT)
    listings = []
    if sources.catalog is not None:
        catalog = flow.source(sources.catalog, f.AdmitCatalogFunction(config), "catalog", sparse=True)
        terms = flow.stage(by_item(catalog), f.ObserveCatalogTermsFunction(config, VOCABULARY), "catalog terms",
                           CATALOG_TERMS)
        vocabulary = flow.stage(one_instance(terms), f.WeighCatalogTermsFunction(config, ITEM_MODEL),
                                "weigh catalog terms", VOCABULARY)
        listings = [flow.spread(vocabulary, "catalog")]
    signals = flow.stage(by_item(contexts, *listings), f.UpdateItemModelFunction(config, PUSH_POLICY), "item model",
                         ITEM_MODEL)
    assignments = []
    if config.segments.enabled:
        segmented = flow.stage(one_instance(contexts.get_side_output(f.side_output(SEGMENTER))),
                               f.SegmentUsersFunction(config, PUSH_POLICY), "segment users", SEGMENTER)
        assignments = [flow.spread(segmented, "segments")]
    if config.intent.enabled:
        intents = flow.stage(one_instance(contexts.get_side_output(f.side_output(INTENT))),
                             f.ScorePurchaseIntentFunction(config, PUSH_POLICY), "score purchase intent", INTENT)
        assignments.append(flow.spread(intents, "intent"))
    directory = []
    if sources.users is not None:
        directory = [flow.source(sources.users, f.AdmitUsersFunction(config), "users", sparse=True)]
    windows = []
    if config.windows_enabled:
        # Python operators pass no timestamps to side outputs, but watermarks: SQL reads time from the events.
        # The writer's (empty) output joins the push policy's input, whose event time then waits for the lists.
        windows = [add_windowed_aggregations(contexts.get_side_output(f.side_output(WINDOWS)), config)[1]]
    to_policy = by_user(signals, contexts.get_side_output(f.side_output(PUSH_POLICY)), *assignments, *directory,
                        *windows)
    record_sinks = {"exposures": sinks.exposures, "outcomes": sinks.outcomes}
    wired = tuple(name for name, sink in record_sinks.items() if sink is not None)  # the others are dropped
    notifications = flow.stage(to_policy, f.DecideNotificationsFunction(config, None, records=wired),
                               "score and decide", PUSH_POLICY, output_type=f.KEYED_NOTIFICATION)
    # Kafka refuses record times far ahead of its clock, and a recommendation sent by a timer carries the
    # timer's event time, which an end-of-input flush puts hours ahead: the record is stamped when it was made.
    notifications.assign_timestamps_and_watermarks(f.stamped_when_made()).name("stamp notifications") \
        .uid("stamp-notifications").sink_to(sinks.notifications).name("notifications sink").uid("notifications-sink")
    for name in wired:
        tag = f.RECORD_OUTPUTS[name]
        notifications.get_side_output(tag).assign_timestamps_and_watermarks(f.stamped_when_made(tag)) \
            .name(f"stamp {name}").uid(f"stamp-{name}").sink_to(record_sinks[name]).name(f"{name} sink") \
            .uid(f"{name}-sink")
    flow.dead_letters[0].union(*flow.dead_letters[1:]).sink_to(sinks.dead_letters).name("dead-letter sink") \
        .uid("dead-letter-sink")  # every stage has a dead-letter output, so there are always several
    pin_operator_ids(env)  # savepoints restore whatever stages are added or removed around these
    return notifications


def kafka_source(config: JobConfig, topic: str, group_suffix: str = ""):
    """Record values as text; a tombstone (no value) as the marker the admission steps read
    (`state_schemas.codec.TOMBSTONE`), where the stock string schema would fail the job."""
    from pyflink.datastream.connectors.kafka import KafkaOffsetResetStrategy, KafkaOffsetsInitializer, KafkaSource
    from pyflink.java_gateway import get_gateway

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
               .set_property("partition.discovery.interval.ms", "10000"))
    # PyFlink's builder offers only a value-only deserializer, which sees no key: the Java builder is set.
    builder._j_builder.setDeserializer(get_gateway().jvm.notify_engine.kafka.TextOrMarkerDeserializationSchema())
    if config.kafka.bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def kafka_sink(config: JobConfig, topic: str, id_suffix: str, keyed: bool = False, max_record_bytes: int = 0):
    """A sink of strings, or with `keyed` of rows (record key, value), as the notifications are;
    `max_record_bytes` raises the producer's 1 MiB request limit."""
    from pyflink.common.serialization import SerializationSchema, SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
    from pyflink.java_gateway import get_gateway

    guarantee = (DeliveryGuarantee.EXACTLY_ONCE if config.flink.delivery_guarantee == "exactly-once"
                 else DeliveryGuarantee.AT_LEAST_ONCE)
    records = KafkaRecordSerializationSchema.builder().set_topic(topic)
    if keyed:  # the row's fields, by jobs/java/notify_engine/kafka/RowFieldSerializationSchema.java
        field = get_gateway().jvm.notify_engine.kafka.RowFieldSerializationSchema
        records = records.set_key_serialization_schema(SerializationSchema(field(0))) \
            .set_value_serialization_schema(SerializationSchema(field(1)))
    else:
        records = records.set_value_serialization_schema(SimpleStringSchema())
    return (KafkaSink.builder()
            .set_bootstrap_servers(config.kafka.bootstrap_servers)
            .set_record_serializer(records.build())
            .set_delivery_guarantee(guarantee)
            .set_transactional_id_prefix(f"{config.kafka.transactional_id_prefix}-{id_suffix}")
            .set_property("transaction.timeout.ms", str(config.kafka.transaction_timeout_ms))
            .set_property("linger.ms", "5")
            .set_property("max.request.size", str(max(max_record_bytes + 4096, 1_048_576)))
            .build())


def run(config: JobConfig, jars: list[Path], job_name: str = "notify-engine", extra_flink: dict | None = None,
        wait: bool = True):
    """Builds and runs the job on Kafka; returns when a bounded job ends (or at once if not `wait`)."""
    env = create_environment(config, jars, extra_flink)
    sinks = JobSinks(notifications=kafka_sink(config, config.kafka.notifications_topic, "notifications", keyed=True),
                     dead_letters=kafka_sink(config, config.kafka.dead_letter_topic, "dead-letters",
                                             max_record_bytes=DEAD_LETTER_MAX_BYTES),
                     exposures=kafka_sink(config, config.kafka.exposures_topic, "exposures", keyed=True),
                     outcomes=kafka_sink(config, config.kafka.outcomes_topic, "outcomes", keyed=True))
    catalog = kafka_source(config, config.catalog.topic, "-catalog") if config.catalog.enabled else None
    users = kafka_source(config, config.directory.topic, "-users") if config.directory.enabled else None
    sources = JobSources(events=kafka_source(config, config.kafka.events_topic), catalog=catalog, users=users)
    build_pipeline(env, sources, sinks, config)
    if wait:
        return env.execute(job_name)
    return env.execute_async(job_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the notification job.")
    parser.add_argument("--config", help="YAML job config (defaults: `notify-engine config`)")
    parser.add_argument("--jar", action="append", default=[], type=Path,
                        help="connector jar for a local run (`flink run -j` ships it on a cluster)")
    parser.add_argument("--parallelism", type=int,
                        help="overrides flink.parallelism (the job sets its parallelism, so `flink run -p` alone "
                             "would not change it; a restore at another parallelism passes both)")
    args = parser.parse_args(argv)
    overrides = {"flink": {"parallelism": args.parallelism}} if args.parallelism else None
    run(load_config(args.config, overrides=overrides), args.jar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
