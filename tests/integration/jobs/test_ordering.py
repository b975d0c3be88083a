"""The Java parts of `jobs/ordering.py` on a MiniCluster: event time read from raw records at the source, and
a keyed stage that sees each key's records in event-time order whatever order several inputs delivered them in."""
from __future__ import annotations

import json
import threading
import time

import pytest
from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import KeyedProcessFunction, ProcessFunction

from config import load_config
from jobs.ordering import ordered_by_key, source_watermarks
from jobs.runtime import create_environment
from jobs.stage_functions import HOP

pytestmark = pytest.mark.slow

UNTIMED = -(2 ** 63)
NOW_MS = 1_790_000_000_000


class TimeOfRecord(ProcessFunction):
    def process_element(self, value, ctx):
        yield value, ctx.timestamp()


def test_event_time_comes_only_from_a_well_formed_record_with_a_plausible_time(connector_jar):
    config = load_config(overrides={"intake": {"max_payload_bytes": 4000}})
    records = {
        '{"type": "behaviour", "ts": 1790000000000, "user_id": "u"}': NOW_MS,
        '  {"user_id": "u", "extra": {"ts": 5}, "ts": 1790000000001}  ': NOW_MS + 1,
        '{"ts": 1790000000002, "list": [1, [2, {"ts": 3}]]}': NOW_MS + 2,
        '{"type": "behaviour", "user_id": "u"}': UNTIMED,  # no time
        '{"extra": {"ts": 1790000000003}}': UNTIMED,  # only a nested one
        '{"ts": "1790000000004"}': UNTIMED,  # a string
        '{"ts": 1790000000005.5}': UNTIMED,  # not an integer
        '{"ts": 1790000000006} trailing': UNTIMED,
        '{"ts": 1790000000007, "cut": [1, 2': UNTIMED,
        '{"ts": 1790000000008, "padding": "' + "x" * 4000 + '"}': UNTIMED,  # over the payload limit
        '{"ts": 1790000000009, "deep": ' + "[" * 1500 + "]" * 1500 + "}": UNTIMED,  # too deep
        '{"ts": 946684799999}': UNTIMED,  # before 2000
        '{"ts": 9999999999999}': UNTIMED,  # far ahead of the wall clock
        '[{"ts": 1790000000010}]': UNTIMED,  # not an object
        "not json": UNTIMED,
        "\0tombstone\0" + "1790000000011\0key": UNTIMED,  # the deserialiser's markers
        "\0undecodable\0/w==": UNTIMED,
    }
    env = create_environment(config, [connector_jar], {"restart-strategy.type": "none"})
    env.set_parallelism(1)
    timed = env.from_collection(list(records), type_info=Types.STRING()) \
        .assign_timestamps_and_watermarks(source_watermarks(config))
    seen = dict(timed.process(TimeOfRecord(), output_type=Types.TUPLE([Types.STRING(), Types.LONG()]))
                .execute_and_collect())
    assert seen == records


class HopTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return value[1]


class SeenInOrder(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield value[0], value[1], bytes(value[2]).decode()


def test_a_keyed_stage_sees_each_keys_records_in_event_time_order_whatever_order_they_came_in(connector_jar):
    config = load_config()
    env = create_environment(config, [connector_jar], {"restart-strategy.type": "none"})
    env.set_parallelism(2)
    first = [("u", 5000, b"e"), ("v", 9000, b"z"), ("u", 1000, b"b"), ("u", 3000, b"d"), ("v", 1000, b"y")]
    second = [("u", 4000, b"c"), ("u", 1000, b"a"), ("v", 500, b"x"), ("u", 7000, b"f")]
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(60_000)) \
        .with_timestamp_assigner(HopTime())
    streams = [env.from_collection(records, type_info=HOP).assign_timestamps_and_watermarks(watermarks)
               for records in (first, second)]
    keyed = ordered_by_key(streams[0].union(streams[1]), HOP, "ordering-test")
    seen = list(keyed.process(SeenInOrder(), output_type=Types.TUPLE([Types.STRING(), Types.LONG(), Types.STRING()]))
                .execute_and_collect())
    by_key = {key: [(ts, payload) for k, ts, payload in seen if k == key] for key in ("u", "v")}
    # time first, then the message's bytes: two records at one time come in one order on every run
    assert by_key == {"u": [(1000, "a"), (1000, "b"), (3000, "d"), (4000, "c"), (5000, "e"), (7000, "f")],
                      "v": [(500, "x"), (1000, "y"), (9000, "z")]}


def _publish_slowly(bootstrap: str, topic: str, records: list[tuple[int, int, str]], start_at: float) -> None:
    """(partition, seconds after `start_at`, value): each sent at its moment, to its partition."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for partition, at, value in sorted(records, key=lambda record: record[1]):
        time.sleep(max(0.0, start_at + at - time.monotonic()))
        producer.send(topic, value=value.encode(), partition=partition)
        producer.flush()
    producer.close()


def test_a_source_read_for_many_idleness_periods_keeps_each_partitions_event_time(broker, connector_jar):
    """A Kafka source reads every record through one output per partition, each with a watermark generator of
    its own; it also makes one for its own main output, which sees no record. That one took the wall clock
    after six idleness periods, as an empty partition should, and as it speaks for the whole source, every
    record read after it was late and went on in the order it came: a shopper's triggers differed from run
    to run once a replay took longer than a minute to read (make chaos, with the purchase-intent stage)."""
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource, KafkaTopicPartition
    from pyflink.common.serialization import SimpleStringSchema

    topic = f"slow-partitions-{time.time_ns()}"
    broker.create_topics({topic: 2})
    per_partition, gap_s, lag_s = 60, 0.2, 0.5
    base = 1_511_658_000_000
    # Partition 1 has the odd times, each sent half a second after partition 0's next even one: read as it
    # came, a key's records are out of order; by event time, each waits for the slower partition.
    records = [(n % 2, (n // 2) * gap_s + (lag_s if n % 2 else 0.0),
                json.dumps({"ts": base + n * 1000, "user_id": "u", "n": n})) for n in range(2 * per_partition)]
    config = load_config(overrides={"intake": {"idleness_ms": 300, "out_of_orderness_ms": 0}})
    env = create_environment(config, [connector_jar], {"restart-strategy.type": "none"})
    env.set_parallelism(2)
    stop_at = {KafkaTopicPartition(topic, partition): per_partition for partition in (0, 1)}
    source = (KafkaSource.builder().set_bootstrap_servers(broker.bootstrap).set_topics(topic)
              .set_group_id(topic).set_starting_offsets(KafkaOffsetsInitializer.earliest())
              .set_value_only_deserializer(SimpleStringSchema())
              .set_bounded(KafkaOffsetsInitializer.offsets(stop_at)).build())
    raw = env.from_source(source, source_watermarks(config), "slow partitions")
    hops = raw.map(lambda value: ("u", json.loads(value)["ts"], value.encode()), output_type=HOP)
    keyed = ordered_by_key(hops, HOP, "slow-partitions")
    seen = keyed.process(SeenInOrder(), output_type=Types.TUPLE([Types.STRING(), Types.LONG(), Types.STRING()])) \
        .execute_and_collect()
    # The records come while the job reads: for 12 s, 40 periods of idleness (the first, read as the job
    # starts, may come at once).
    producer = threading.Thread(target=_publish_slowly, args=(broker.bootstrap, topic, records, time.monotonic()))
    producer.start()
    times = [ts for _, ts, _ in seen]
    producer.join()
    assert len(times) == 2 * per_partition
    assert times == sorted(times)


def test_a_source_instance_given_no_partition_holds_no_one_back(broker, connector_jar):
    """A one-partition topic read by two source instances, unbounded: one gets no partition, and only its own
    output speaks for it. Flink counts an instance idle only when that output is idle too, so until it says so
    the keyed stage behind waits on it and hands nothing on; after the idleness periods it says so."""
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource

    topic = f"one-partition-{time.time_ns()}"
    broker.create_topics({topic: 1})
    sent = [json.dumps({"ts": 1_511_658_000_000 + n * 1000, "user_id": "u", "n": n}) for n in range(30)]
    _publish_slowly(broker.bootstrap, topic, [(0, 0.0, value) for value in sent], time.monotonic())
    config = load_config(overrides={"intake": {"idleness_ms": 300, "out_of_orderness_ms": 0}})
    env = create_environment(config, [connector_jar], {"restart-strategy.type": "none"})
    env.set_parallelism(2)
    source = (KafkaSource.builder().set_bootstrap_servers(broker.bootstrap).set_topics(topic)
              .set_group_id(topic).set_starting_offsets(KafkaOffsetsInitializer.earliest())
              .set_value_only_deserializer(SimpleStringSchema()).build())
    raw = env.from_source(source, source_watermarks(config), "one partition")
    hops = raw.map(lambda value: ("u", json.loads(value)["ts"], value.encode()), output_type=HOP)
    seen = ordered_by_key(hops, HOP, "one-partition") \
        .process(SeenInOrder(), output_type=Types.TUPLE([Types.STRING(), Types.LONG(), Types.STRING()])) \
        .execute_and_collect()
    times: list[int] = []

    def collect():
        try:
            for _, ts, _ in seen:
                times.append(ts)
        except Exception:  # the iterator closed under it
            pass
    threading.Thread(target=collect, daemon=True).start()
    deadline = time.monotonic() + 90
    while len(times) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.5)
    seen.close()
    # The newest record's time is held as the watermark once its partition is quiet: every record goes on.
    assert times == [1_511_658_000_000 + n * 1000 for n in range(30)]
