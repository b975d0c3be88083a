"""`notify-engine`: run the job, feed it, read what it sends, and manage the local services."""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

DEMO_TOPICS = {"events": "demo.behaviour-events", "notifications": "demo.notifications",
               "dead_letters": "demo.events-dead-letter", "catalog": "demo.catalog", "users": "demo.users",
               "exposures": "demo.notification-exposures", "outcomes": "demo.notification-outcomes"}
DEMO_REDIS_PREFIX = "demo"
DEMO_BAD_RECORDS = [
    b'{"type": "behaviour", "event_id": "bad-1", "user_id": "u1", "behavior": "view"',  # malformed JSON
    b'{"type": "behaviour", "event_id": "bad-2", "item_id": "i", "behavior": "view", "ts": 1}',  # no user_id
    b'{"type": "behaviour", "event_id": "bad-3", "user_id": "u1", "item_id": "i", "behavior": "view", "ts": "now"}',
    b'{"type": "teleport", "event_id": "bad-4", "user_id": "u1", "ts": 1700000000000}',
    b'{"type": "behaviour", "event_id": "bad-5", "user_id": "u1", "item_id": "i", "behavior": "view", '
    b'"ts": 99999999999999}',  # year 5138
]
DEMO_BAD_CATALOG = [
    b'{"type": "catalog", "item_id": "bad-c1", "category_id": "cat-00", "price": 5.0, "ts": 1700000000000}',  # no title
    b'{"type": "catalog", "item_id": "bad-c2", "title": "x", "category_id": "cat-00", "price": -1, '
    b'"ts": 1700000000000}',
]
DEMO_BAD_USERS = [
    b'{"type": "user", "user_id": "bad-u1", "ts": 1700000000000, "time_zone": "Mars/Olympus_Mons"}',
    b'{"type": "user", "user_id": "bad-u2", "ts": 1700000000000, "locale": "klingon", "channels": ["pigeon"]}',
]


def _step(number: int, total: int, text: str) -> None:
    print(f"[{number}/{total}] {text}", flush=True)


def demo(args) -> int:
    from config import load_config
    from jobs import notification_job
    from state_schemas.redis_keys import RedisKeys

    from . import consumer, generator, inbox, producer, services, topics

    total = 5
    _step(1, total, "starting local services (Kafka in KRaft mode, Redis) on 127.0.0.1")
    broker = services.default_broker().start()
    redis_server = services.default_redis().start()
    jar = services.ensure_connector_jar()
    services.use_metrics_plugin()
    print(f"      kafka {broker.bootstrap}, redis {redis_server.url}, connector {jar.name}")

    config = load_config(args.config, overrides={
        "kafka": {"bootstrap_servers": broker.bootstrap, "events_topic": DEMO_TOPICS["events"],
                  "notifications_topic": DEMO_TOPICS["notifications"],
                  "dead_letter_topic": DEMO_TOPICS["dead_letters"], "exposures_topic": DEMO_TOPICS["exposures"],
                  "outcomes_topic": DEMO_TOPICS["outcomes"], "bounded": True,
                  "starting_offsets": "earliest", "group_id": f"demo-{int(time.time())}"},
        "flink": {"execution_mode": args.mode},
        "redis": {"url": redis_server.url, "key_prefix": DEMO_REDIS_PREFIX},
        "catalog": {"topic": DEMO_TOPICS["catalog"]},
        "directory": {"topic": DEMO_TOPICS["users"]},
    })
    _step(2, total, "recreating the demo topics and clearing the demo's Redis keys")
    broker.delete_topics(list(DEMO_TOPICS.values()))
    client = redis_server.client()
    for key in client.scan_iter(f"{DEMO_REDIS_PREFIX}:*", count=1000):
        client.delete(key)
    broker.create_topics({topic: 2 for topic in DEMO_TOPICS.values()}, topics.topic_settings(config))

    # Four days back at half a session per shopper a day: the default input spans nearly four days, so orders
    # are delivered within it and their review requests fall due when the bounded input ends.
    start_ms = int(time.time() * 1000) - 4 * 86_400_000
    gen_config = generator.GeneratorConfig(users=args.users, items=args.items, events=args.events, seed=args.seed,
                                           start_ms=start_ms, sessions_per_user_day=args.sessions_per_day)
    _step(3, total, f"generating {args.events} events for {args.users} shoppers and {args.items} items "
                    f"(Zipf popularity, sessions, daily rhythm, orders) plus {len(DEMO_BAD_RECORDS)} bad records")
    events = list(generator.generate_events(gen_config))
    last_ts = max(event.ts for event in events)
    catalog = generator.generate_catalog(gen_config) + generator.generate_catalog_changes(gen_config, last_ts)
    listed = producer.publish(catalog, broker.bootstrap, DEMO_TOPICS["catalog"], key_of=lambda item: item.item_id)
    listed_bad = producer.publish_raw(DEMO_BAD_CATALOG, broker.bootstrap, DEMO_TOPICS["catalog"], key_prefix="bad-")
    users = producer.publish(generator.generate_users(gen_config), broker.bootstrap, DEMO_TOPICS["users"],
                             key_of=lambda record: record.user_id)
    users_bad = producer.publish_raw(DEMO_BAD_USERS, broker.bootstrap, DEMO_TOPICS["users"], key_prefix="bad-")
    sent = producer.publish(events, broker.bootstrap, DEMO_TOPICS["events"])
    sent_bad = producer.publish_raw(DEMO_BAD_RECORDS, broker.bootstrap, DEMO_TOPICS["events"])
    print(f"      published {listed} catalogue records (price cuts and restocks among them) and {listed_bad} bad ones "
          f"to {DEMO_TOPICS['catalog']}, "
          f"{users} directory records and {users_bad} bad ones to {DEMO_TOPICS['users']}, "
          f"{sent} events and {sent_bad} bad records to {DEMO_TOPICS['events']}")

    _step(4, total, f"running the job on a local mini-cluster ({args.mode} mode, "
                    f"{config.flink.delivery_guarantee} delivery) until it has read every event")
    started = time.monotonic()
    notification_job.run(config, [jar], job_name="notify-engine-demo", extra_flink={"restart-strategy.type": "none"})
    print(f"      the job finished in {time.monotonic() - started:.1f} s")

    _step(5, total, "writing the inboxes in Redis from the committed notifications (`notify-engine inbox`), "
                    "then reading them back with the sink consumer")
    written = inbox.InboxWriter(config, client).run(idle_timeout_s=3.0)
    print(f"      inbox writer: {written.line()}")
    notifications = list(consumer.read_notifications(broker.bootstrap, DEMO_TOPICS["notifications"],
                                                     idle_timeout_s=3.0))
    dead_letters = list(consumer.read_dead_letters(broker.bootstrap, DEMO_TOPICS["dead_letters"], idle_timeout_s=3.0))
    print("      a few of each journey, in each locale, with why and when they went out:")
    for (journey, locale), sample in sorted(_samples(notifications, args.show).items()):
        print(f"      {journey} [{locale}]")
        for notification in sample:
            print("        " + consumer.format_line(notification) + _when(notification))
    kinds = collections.Counter(n.kind for n in notifications)
    channels = collections.Counter(n.channel for n in notifications)
    users = len({n.user for n in notifications})
    print(f"\n{len(notifications)} notifications for {users} shoppers "
          f"({kinds['marketing']} marketing, {kinds['transactional']} transactional; by channel "
          f"{', '.join(f'{c} {n}' for c, n in channels.most_common())}) from {sent} events; "
          f"{len(dead_letters)} dead letters:")
    for letter in dead_letters:
        print(f"      - {letter['reason']}")
    exposures = list(consumer.read_exposures(broker.bootstrap, DEMO_TOPICS["exposures"], idle_timeout_s=3.0))
    print(f"{len(exposures)} marketing messages for {len({e.notification.user for e in exposures})} shoppers of the "
          f"{config.experiments.holdout_share:.0%} holdout logged as exposures instead of sent")
    keys = RedisKeys(DEMO_REDIS_PREFIX)
    inbox = list(client.scan_iter(keys.inbox_bodies("*"), count=1000))
    profiles = list(client.scan_iter(keys.profile("*"), count=1000))
    trending = client.zrevrange(keys.trending("global"), 0, 4)
    print(f"{len(inbox)} user inboxes, {len(profiles)} profiles with top-N lists in Redis ({redis_server.url}); "
          f"trending now: {', '.join(item.decode() for item in trending) or '-'}")
    if profiles:
        print(f"      a profile: {client.get(profiles[0]).decode()[:300]}")
    counts = _core_counts(config, gen_config)
    suppressed = sorted((name.removeprefix("suppressed_"), n) for name, n in counts.items()
                        if name.startswith("suppressed_"))
    print("suppressed, by reason (the job's core, `LocalPipeline`, over the same input; the job counts the same "
          "per Flink counter): " + ", ".join(f"{reason} {n}" for reason, n in suppressed))
    print("sent, by journey: " + ", ".join(f"{name.removeprefix('sent_')} {n}" for name, n in sorted(counts.items())
                                           if name.startswith("sent_") and not name.startswith("sent_channel_")
                                           and name not in ("sent_marketing", "sent_transactional")))
    print("deferred, exits: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())
                                          if name.startswith(("deferred_", "journey_exit_", "messages_deferred",
                                                              "transactional_held"))))
    print(f"Read them again: notify-engine consume --bootstrap-servers {broker.bootstrap} "
          f"--topic {DEMO_TOPICS['notifications']} --max 10")
    return 0 if notifications else 1


def _samples(notifications, per_group: int) -> dict:
    """Up to `per_group` // 4 (at least 2) notifications of each journey and locale, earliest first."""
    groups = collections.defaultdict(list)
    for notification in sorted(notifications, key=lambda n: (n.scheduled_at or 0, n.notification_id)):
        group = groups[(notification.journey or notification.kind, notification.locale or "-")]
        if len(group) < max(per_group // 4, 2):
            group.append(notification)
    return groups


def _when(notification) -> str:
    """When it was meant to go and when it went (event time, UTC)."""
    def clock(ms):
        return time.strftime("%d %H:%M", time.gmtime(ms / 1000))

    if notification.scheduled_at is None:
        return ""
    intended = notification.intended_at or notification.scheduled_at
    late = f", meant for {clock(intended)}" if intended != notification.scheduled_at else ""
    return f"  sent {clock(notification.scheduled_at)}{late}"


def _core_counts(config, gen_config) -> collections.Counter:
    """The counters of the job's core over the demo's input, replayed in this process."""
    from operators.local_pipeline import DictStore, LocalPipeline, Outputs
    from state_schemas.events import encode

    from . import generator

    pipeline, out, now = LocalPipeline(config, DictStore()), Outputs(), int(time.time() * 1000)
    events = list(generator.generate_events(gen_config))
    last_ts = max(event.ts for event in events)
    for item in generator.generate_catalog(gen_config) + generator.generate_catalog_changes(gen_config, last_ts):
        pipeline.process_catalog(encode(item), now, out)
    for record in generator.generate_users(gen_config):
        pipeline.process_user_record(encode(record), now, out)
    for event in events:
        pipeline.process(encode(event), now, out)
    pipeline.finish(now, out)
    return pipeline.counters


def run_job(args) -> int:
    from config import load_config
    from jobs import notification_job

    from .services import ensure_connector_jar, use_metrics_plugin

    use_metrics_plugin()
    notification_job.run(load_config(args.config), [ensure_connector_jar()])
    return 0


def produce(args) -> int:
    from config import load_config

    from . import datasets, generator, producer

    config = load_config(args.config)
    bootstrap = args.bootstrap_servers or config.kafka.bootstrap_servers
    topic = args.topic or config.kafka.events_topic
    if args.dataset:
        events = datasets.read_events(args.dataset, fmt=args.format, limit=args.limit)
    else:
        events = generator.generate_events(generator.GeneratorConfig(
            users=args.users, items=args.items, events=args.events, seed=args.seed,
            start_ms=int(time.time() * 1000) - 86_400_000))
    count = producer.publish(events, bootstrap, topic, rate_per_s=args.rate)
    print(f"published {count} events to {topic} on {bootstrap}")
    return 0


def print_config(args) -> int:
    from config import render_defaults

    sys.stdout.write(render_defaults())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    passthrough = {"services": "services", "cluster": "cluster", "consume": "consumer", "topics": "topics",
                   "inbox": "inbox", "dashboard": "dashboard", "report": "report"}
    if argv and argv[0] in passthrough:
        import importlib

        return importlib.import_module(f"notify_engine.{passthrough[argv[0]]}").main(argv[1:])

    parser = argparse.ArgumentParser(prog="notify-engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("services", "fetch | up | down | status the local Kafka and Redis"),
                       ("cluster", "up | down | status | submit on a standalone Flink cluster"),
                       ("consume", "read notifications (see `notify-engine consume --help`)"),
                       ("inbox", "keep the users' Redis inboxes from the committed notifications topic"),
                       ("dashboard", "a live page on 127.0.0.1: rates, suppressions, latency, a shopper's inbox"),
                       ("report", "KPIs per experiment and variant, uplift over the holdout, with 95% intervals"),
                       ("topics", "create the topics a config names, with their settings (dead-letter retention)")):
        commands.add_parser(name, help=text, add_help=False)

    demo_parser = commands.add_parser("demo", help="the whole path on local services, end to end")
    demo_parser.add_argument("--config", type=Path)
    demo_parser.add_argument("--events", type=int, default=20000)
    demo_parser.add_argument("--users", type=int, default=1500)
    demo_parser.add_argument("--items", type=int, default=800)
    demo_parser.add_argument("--seed", type=int, default=7)
    demo_parser.add_argument("--sessions-per-day", type=float, default=0.5, help="sessions per shopper a day")
    demo_parser.add_argument("--show", type=int, default=12, help="notifications to print")
    demo_parser.add_argument("--mode", choices=["thread", "process"], default="thread")
    demo_parser.set_defaults(handler=demo)

    run_parser = commands.add_parser("run", help="run the job on a local mini-cluster with a config")
    run_parser.add_argument("--config", type=Path)
    run_parser.set_defaults(handler=run_job)

    produce_parser = commands.add_parser("produce", help="publish generated events or a dataset file")
    produce_parser.add_argument("--config", type=Path)
    produce_parser.add_argument("--bootstrap-servers")
    produce_parser.add_argument("--topic")
    produce_parser.add_argument("--dataset", type=Path, help="Taobao UserBehavior or REES46 CSV file")
    produce_parser.add_argument("--format", choices=["auto", "taobao", "rees46"], default="auto")
    produce_parser.add_argument("--limit", type=int)
    produce_parser.add_argument("--events", type=int, default=10000)
    produce_parser.add_argument("--users", type=int, default=1000)
    produce_parser.add_argument("--items", type=int, default=500)
    produce_parser.add_argument("--seed", type=int, default=1)
    produce_parser.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    produce_parser.set_defaults(handler=produce)

    config_parser = commands.add_parser("config", help="print every config key with its default and meaning")
    config_parser.set_defaults(handler=print_config)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
