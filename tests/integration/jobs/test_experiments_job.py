"""The holdout and attribution through the real broker and job (issue 11): a shopper in the holdout never receives
marketing, but what they would have received is on the exposures topic, exactly what a run without a holdout sends
them; carts and purchases after a message (or an exposure) are on the outcomes topic, naming it."""
from __future__ import annotations

import csv
import hashlib

import pytest
import yaml

from config import to_dict
from notify_engine import consumer, generator, producer, report
from operators.privacy import pseudonym
from tests.integration.conftest import job_config, make_topics, read_back, run_bounded

pytestmark = pytest.mark.slow

SHOP = generator.GeneratorConfig(users=60, items=40, events=1500, seed=3, start_ms=1_790_000_000_000)
SALT, SHARE = "holdout-test", 0.4


def held_out(user: str) -> bool:
    """The documented scheme, written out again: SHA-256(salt NUL user id), first 64 bits, below the share."""
    return int.from_bytes(hashlib.sha256(f"{SALT}\0{user}".encode()).digest()[:8], "big") / 2 ** 64 < SHARE


def _run(broker, redis_server, connector_jar, events, share: float):
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    config = job_config(broker, redis_server, topics, experiments={"holdout_share": share, "holdout_salt": SALT},
                        journeys={"best_hour_journeys": []})
    run_bounded(config, connector_jar)
    notifications, dead_letters = read_back(broker, topics)
    exposures = list(consumer.read_exposures(broker.bootstrap, topics.exposures, idle_timeout_s=2.0))
    outcomes = list(consumer.read_outcomes(broker.bootstrap, topics.outcomes, idle_timeout_s=2.0))
    return config, notifications, exposures, outcomes, dead_letters


def _report(config, tmp_path) -> dict:
    """`notify-engine report` over the run's topics: its CSV rows by (experiment, variant, metric)."""
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    assert report.main(["--config", str(path), "--out", str(tmp_path), "--idle-timeout", "2"]) == 0
    with (tmp_path / "kpis.csv").open() as lines:
        return {(r["experiment"], r["variant"], r["metric"]): float(r["value"]) for r in csv.DictReader(lines)}


def test_the_holdout_gets_no_marketing_and_its_would_be_sends_are_exposures(broker, redis_server, connector_jar,
                                                                           tmp_path):
    events = list(generator.generate_events(SHOP))
    config, told, exposed, outcomes, dead = _run(broker, redis_server, connector_jar, events, SHARE)
    _, everyone, nobody, all_outcomes, _ = _run(broker, redis_server, connector_jar, events, 0.0)
    assert dead == [] and nobody == []

    key = config.privacy.pseudonym_key
    holdout = {pseudonym(user, key) for user in {e.user_id for e in events} if held_out(user)}
    marketing = [n for n in everyone if n.kind == "marketing"]
    assert len({n.user for n in marketing} & holdout) >= 5, "the holdout should hold shoppers who get marketing"
    assert not [n for n in told if n.kind == "marketing" and n.user in holdout]
    assert {e.notification.user for e in exposed} <= holdout
    assert {e.experiment for e in exposed} == {"holdout"}
    # The would-be sends are what the shopper gets without a holdout; everyone else is told as before, and
    # order statuses reach the holdout too.
    assert sorted(e.notification.notification_id for e in exposed) == \
        sorted(n.notification_id for n in marketing if n.user in holdout)
    assert sorted(n.notification_id for n in told) == \
        sorted(n.notification_id for n in everyone if n.kind == "transactional" or n.user not in holdout)
    assert any(n.kind == "transactional" and n.user in holdout for n in told)

    # Outcomes name the message (or exposure) they follow, of their shopper, after it; the same carts and purchases
    # are attributed to the same messages whether or not they were sent.
    sent = {n.notification_id: n for n in told if n.kind == "marketing"}
    would = {e.notification.notification_id: e.notification for e in exposed}
    assert len(outcomes) >= 10 and any(o.holdout for o in outcomes) and any(not o.holdout for o in outcomes)
    for outcome in outcomes:
        message = (would if outcome.holdout else sent)[outcome.notification_id]
        assert outcome.user == message.user and (outcome.user in holdout) == outcome.holdout
        assert message.scheduled_at == outcome.sent_at <= outcome.ts and outcome.journey == message.journey
        assert outcome.item_id in message.item_ids or outcome.match == "category"
    assert sorted((o.event_id, o.notification_id) for o in outcomes) == \
        sorted((o.event_id, o.notification_id) for o in all_outcomes)

    kpis = _report(config, tmp_path)
    assert kpis[("holdout", "held out", "shoppers")] == len({e.notification.user for e in exposed})
    assert kpis[("holdout", "treated", "shoppers")] == len({n.user for n in told if n.kind == "marketing"})
    assert kpis[("holdout", "held out", "purchases_per_1000_users")] == pytest.approx(
        1000 * len({o.user for o in outcomes if o.holdout and o.behavior == "purchase"})
        / len({e.notification.user for e in exposed}))
    assert ("holdout", "treated", "uplift_purchases_per_1000_users") in kpis


def test_a_job_built_without_exposure_and_outcome_sinks_drops_those_records_and_runs_on(broker, redis_server,
                                                                                        connector_jar):
    """`JobSinks` leaves both optional: holdout exposures and outcomes are then dropped, and the job must not fail
    on its first one (PyFlink fails a job that sends to a side output nobody reads; `make bench` did so)."""
    from jobs import notification_job as job

    events = list(generator.generate_events(SHOP))
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    config = job_config(broker, redis_server, topics, experiments={"holdout_share": SHARE, "holdout_salt": SALT},
                        journeys={"best_hour_journeys": []})
    env = job.create_environment(config, [connector_jar], {"restart-strategy.type": "none"})
    sinks = job.JobSinks(job.kafka_sink(config, topics.notifications, "notifications", keyed=True),
                         job.kafka_sink(config, topics.dead_letters, "dead-letters"))
    job.build_pipeline(env, job.JobSources(job.kafka_source(config, topics.events)), sinks, config)
    env.execute("no-record-sinks")  # raises if the job failed

    told, dead = read_back(broker, topics)
    key = config.privacy.pseudonym_key
    holdout = {pseudonym(user, key) for user in {e.user_id for e in events} if held_out(user)}
    assert dead == [] and told
    marketing = [n for n in told if n.kind == "marketing"]
    assert marketing and not [n for n in marketing if n.user in holdout]
    assert list(consumer.read_exposures(broker.bootstrap, topics.exposures, idle_timeout_s=2.0)) == []
