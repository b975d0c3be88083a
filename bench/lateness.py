"""How late the timer-driven marketing messages go out: their arrival on the sink topic against the time
their journey meant them for.

Marketing waits on purpose (the session's end, quiet hours, the best hour), so its latency from the
triggering event says nothing; its lateness does. The shop's log is paced into a live job with every
event stamped with the wall clock as it is sent, so event time runs with the wall clock and a due time
is a wall-clock instant. The journeys' waits are shortened (a 5 s session gap, cart reminders after
10 s and 30 s, no quiet hours, no best hour) so that many fall due within one run, and the caps are
eased so that they go out.

Figures: arrival (this process's clock) minus `scheduled_at` (when the message was due: the system's
own lag, which is the watermark's lag behind the wall clock, the timers and the sink), for messages due
while events still flowed; minus `intended_at` (when its journey first meant it, the deliberate waits
included: a session that went on, say); `created_at` minus `scheduled_at` (the job's part, before the
sink). Messages due after the input stops fire when event time, which then follows the wall clock
`intake.idleness_ms` behind (`jobs/ordering.py`), reaches their time: they are counted apart.
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

from msgspec.structs import replace

from bench.harness import (LOW_LATENCY_FLINK, Services, at_rate, job_config, marker_times, new_topics, publish_records,
                           ticker)
from jobs import notification_job
from notify_engine import consumer
from state_schemas.events import encode

SESSION_GAP_MS = 5_000
CART_REMINDERS_MS = [10_000, 30_000]
SHORT_JOURNEYS = {
    "policy": {"session_gap_ms": SESSION_GAP_MS, "recommendation_delay_ms": 0, "quiet_hours": ["00:00", "00:00"],
               "daily_marketing_cap": 50, "min_marketing_gap_ms": 0},
    "journeys": {"cart_reminders_ms": CART_REMINDERS_MS, "best_hour_journeys": []},
}


@dataclass(frozen=True)
class LatenessResult:
    samples: int  # marketing messages due while events flowed
    p50_ms: float  # arrival against scheduled_at
    p99_ms: float
    p50_intended_ms: float  # arrival against intended_at
    p99_intended_ms: float
    p50_decided_ms: float  # created_at (the wall clock of the decision) against scheduled_at
    p99_decided_ms: float
    after_input: int  # messages due once the input had stopped: fired as event time follows the wall clock
    after_input_p50_ms: float
    journeys: str  # samples per journey


def marketing_lateness(env: Services, events: list, rate: float, seconds: float) -> LatenessResult:
    """Paced, wall-clock-stamped events into a live job (thread mode, at-least-once); the lateness of
    every marketing message that went out."""
    from kafka import KafkaProducer

    topics = new_topics(env)
    config = job_config(env, topics, bounded=False, mode="thread", guarantee="at-least-once") \
        .with_overrides(SHORT_JOURNEYS)
    flink_env = notification_job.create_environment(config, [env.jar], LOW_LATENCY_FLINK)
    sinks = notification_job.JobSinks(
        notification_job.kafka_sink(config, topics.notifications, "notifications", keyed=True),
        notification_job.kafka_sink(config, topics.dead_letters, "dead-letters"))
    sources = notification_job.JobSources(notification_job.kafka_source(config, config.kafka.events_topic))
    notification_job.build_pipeline(flink_env, sources, sinks, config)
    client = flink_env.execute_async("lateness")
    arrivals: dict[str, tuple[float, object]] = {}
    stop = threading.Event()
    try:
        with ticker("lateness job starting"):  # one malformed marker: its dead letter says the job reads
            publish_records(env.broker.bootstrap, topics.events, [(None, b'{"bench_marker": 0}')], "start marker")
            deadline = time.monotonic() + 300
            while 0 not in marker_times(env, topics.dead_letters):
                if time.monotonic() > deadline:
                    raise TimeoutError("the lateness job did not start in 5 minutes")

        def read():
            for notification in consumer.read_notifications(env.broker.bootstrap, topics.notifications,
                                                            idle_timeout_s=3600):
                arrivals.setdefault(notification.notification_id, (time.time() * 1000, notification))
                if stop.is_set():
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        paced = events[: int(rate * seconds)]
        sink = KafkaProducer(bootstrap_servers=env.broker.bootstrap, linger_ms=0, acks=1)
        for event in at_rate(paced, rate, f"wall-clock events at {rate:.0f} ev/s"):
            stamped = replace(event, ts=int(time.time() * 1000))
            sink.send(topics.events, encode(stamped), key=event.user_id.encode())
        sink.flush()
        last_sent = int(time.time() * 1000)
        # The last due times come a session gap and the longest reminder after the last event; the job's
        # wall-clock timers fire them out-of-orderness plus idleness later.
        wait_s = (SESSION_GAP_MS + max(CART_REMINDERS_MS) + config.intake.out_of_orderness_ms
                  + config.intake.idleness_ms) / 1000 + 10
        with ticker(f"waiting {wait_s:.0f} s for the last messages due"):
            time.sleep(wait_s)
        stop.set()
    finally:
        client.cancel().result()
    flowing_until = last_sent - config.intake.out_of_orderness_ms - 1000  # a due time the watermark still passed
    marketing = [(at, n) for at, n in arrivals.values() if n.kind == "marketing" and n.scheduled_at is not None]
    timed = [(at, n) for at, n in marketing if n.scheduled_at <= flowing_until]
    later = sorted(at - n.scheduled_at for at, n in marketing if n.scheduled_at > flowing_until)
    if len(timed) < 20:
        raise RuntimeError(f"only {len(timed)} marketing notifications were due while events flowed")
    due = sorted(at - n.scheduled_at for at, n in timed)
    intended = sorted(at - (n.intended_at or n.scheduled_at) for at, n in timed)
    decided = sorted(n.created_at - n.scheduled_at for _, n in timed)
    by_journey: dict[str, int] = {}
    for _, n in timed:
        by_journey[n.journey] = by_journey.get(n.journey, 0) + 1

    def cut(values):
        return statistics.quantiles(values, n=100, method="inclusive")

    return LatenessResult(samples=len(timed), p50_ms=cut(due)[49], p99_ms=cut(due)[98],
                          p50_intended_ms=cut(intended)[49], p99_intended_ms=cut(intended)[98],
                          p50_decided_ms=cut(decided)[49], p99_decided_ms=cut(decided)[98],
                          after_input=len(later), after_input_p50_ms=statistics.median(later) if later else 0.0,
                          journeys=", ".join(f"{j} {c}" for j, c in sorted(by_journey.items())))
