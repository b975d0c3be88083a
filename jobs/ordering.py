"""Event time that does not hang on timing: per-partition watermarks at the sources, and keyed stages that
see each key's records in event-time order (`jobs/java/notify_engine/ordering`).

Two runs of the same input used to disagree on about a tenth of their marketing decisions at parallelism 2,
and a run restored from a checkpoint or at another parallelism with them: a watermark made after the source
let one partition's batch run ahead and made the other's records late, and a stage fed by several upstream
instances (the push policy hears of one shopper's views from the item model instances of different items)
saw each key's records in whatever order the network delivered them. Both are Java, so ordering costs no
Python call per record.
"""
from __future__ import annotations

from config import JobConfig


def _jvm():
    from pyflink.java_gateway import get_gateway

    return get_gateway().jvm


def source_watermarks(config: JobConfig, sparse: bool = False):
    """Event time from each raw record's top-level `ts` (a record that is not a well-formed JSON object within
    the payload limit with a plausible time does not move it), a watermark per Kafka partition, and a quiet
    partition's event time following the wall clock if its records were live; else held at its newest record,
    or for a `sparse` topic (catalogue, directory) no longer holding the others back (`PartitionWatermarks.java`).
    For `from_source` only: the source's own output, which reads no record, gets a generator that says nothing."""
    from pyflink.common import WatermarkStrategy

    intake = config.intake
    return WatermarkStrategy(_jvm().notify_engine.ordering.PartitionWatermarks.strategy(
        intake.out_of_orderness_ms, intake.idleness_ms, intake.min_event_time_ms, intake.max_future_skew_ms,
        intake.max_payload_bytes, sparse))


def ordered_by_key(stream, hop_type, uid: str, one_instance: bool = False):
    """`stream` (hop records) keyed by routing key, each key's records in event-time order: a PyFlink
    KeyedStream a Python keyed stage can process, keyed exactly as PyFlink's `key_by` keys (so its state's key
    groups are unchanged). `one_instance`: for a stage that runs as one instance."""
    from pyflink.common import Types
    from pyflink.datastream.data_stream import KeyedStream

    jvm = _jvm()
    keyed_row = Types.ROW([Types.STRING(), hop_type]).get_java_type_info()
    key_type = Types.ROW([Types.STRING()]).get_java_type_info()
    routed = stream._j_data_stream.map(jvm.notify_engine.ordering.RoutedByKey(), keyed_row) \
        .name(f"{uid} routing key").uid(f"{uid}-routing-key")
    ordered = routed.keyBy(jvm.KeyByKeySelector(), key_type) \
        .process(jvm.notify_engine.ordering.EventTimeOrder(), keyed_row) \
        .name(f"{uid} in event-time order").uid(f"{uid}-event-time-order")
    if one_instance:
        ordered = ordered.setParallelism(1)
    keyed = jvm.org.apache.flink.streaming.api.datastream.DataStreamUtils.reinterpretAsKeyedStream(
        ordered, jvm.KeyByKeySelector(), key_type)
    return KeyedStream(keyed, hop_type, stream)
