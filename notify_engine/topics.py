"""The topics a config names, each with the settings it needs, and `notify-engine topics` to create them.

The catalogue and the user directory are compacted (the latest record per key is the truth, a tombstone
deletes it); the dead letters are deleted after `kafka.dead_letter_retention_ms`: they keep rejected
payloads as they came, raw user ids among them, where an erasure request cannot reach them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from config import JobConfig
from state_schemas.outputs import DEAD_LETTER_MAX_BYTES

COMPACTED = {"cleanup.policy": "compact"}


# A dead letter keeps up to 1 MiB of raw payload, base64 when it is not UTF-8: larger than the broker's default.
DEAD_LETTERS = {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}


def topic_settings(config: JobConfig) -> dict[str, dict[str, str]]:
    """Topic name -> the topic settings it needs (empty: the broker's defaults)."""
    kafka = config.kafka
    expiring = {"cleanup.policy": "delete", "retention.ms": str(kafka.dead_letter_retention_ms), **DEAD_LETTERS}
    settings = {kafka.events_topic: {}, kafka.notifications_topic: {}, kafka.dead_letter_topic: expiring,
                kafka.exposures_topic: {}, kafka.outcomes_topic: {}}
    if config.catalog.enabled:
        settings[config.catalog.topic] = COMPACTED
    if config.directory.enabled:
        settings[config.directory.topic] = COMPACTED
    return settings


def create_topics(bootstrap: str, topics: dict[str, int], settings: dict[str, dict[str, str]] | None = None,
                  replication: int = 1) -> list[str]:
    """Create topics that do not exist yet (name -> partitions), each with its topic settings if given;
    the names created (existing topics are left as they are)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="notify-engine-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, partitions, replication, topic_configs=(settings or {}).get(name, {}))
                  for name, partitions in topics.items() if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return [topic.name for topic in wanted]
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    from config import load_config

    parser = argparse.ArgumentParser(prog="notify-engine topics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--bootstrap-servers", help="default: kafka.bootstrap_servers of the config")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    settings = topic_settings(config)
    created = create_topics(args.bootstrap_servers or config.kafka.bootstrap_servers,
                            {name: args.partitions for name in settings}, settings, args.replication_factor)
    for name, topic in settings.items():
        state = "created" if name in created else "exists, left as it is"
        print(f"{name} ({state}): {', '.join(f'{k}={v}' for k, v in topic.items()) or 'broker defaults'}")
    return 0
