"""`notify-engine topics` creates the topics a config names, on the real broker, with the settings each needs."""
from __future__ import annotations

import uuid

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from notify_engine import topics


def _settings(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Every setting of each topic, defaults included, as the broker reports them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-topics")
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
                                           config_filter="all")
    finally:
        admin.close()
    return {name: {key: entry["value"] if isinstance(entry, dict) else entry for key, entry in entries.items()}
            for name, entries in described["topic"].items()}


def test_the_dead_letters_expire_and_the_catalogue_and_directory_are_compacted(broker, tmp_path, capsys):
    run = uuid.uuid4().hex[:8]
    names = {"events": f"t-events-{run}", "notifications": f"t-out-{run}", "dead_letters": f"t-dlq-{run}",
             "catalog": f"t-catalog-{run}", "users": f"t-users-{run}", "exposures": f"t-exposures-{run}",
             "outcomes": f"t-outcomes-{run}"}
    config = tmp_path / "job.yaml"
    config.write_text(f"""
kafka:
  events_topic: {names['events']}
  notifications_topic: {names['notifications']}
  dead_letter_topic: {names['dead_letters']}
  dead_letter_retention_ms: 43200000
  exposures_topic: {names['exposures']}
  outcomes_topic: {names['outcomes']}
catalog:
  topic: {names['catalog']}
directory:
  topic: {names['users']}
""")
    assert topics.main(["--config", str(config), "--bootstrap-servers", broker.bootstrap, "--partitions", "3"]) == 0
    assert capsys.readouterr().out.count("(created)") == 7
    found = _settings(broker.bootstrap, list(names.values()))
    assert found[names["dead_letters"]]["retention.ms"] == "43200000"
    assert found[names["dead_letters"]]["cleanup.policy"] == "delete"
    # room for a dead letter keeping a 1 MiB payload as base64
    assert found[names["dead_letters"]]["max.message.bytes"] == "1500000"
    assert found[names["events"]]["max.message.bytes"] != "1500000"
    assert found[names["catalog"]]["cleanup.policy"] == found[names["users"]]["cleanup.policy"] == "compact"
    assert found[names["events"]]["cleanup.policy"] == "delete"
    assert found[names["events"]]["retention.ms"] != "43200000"  # the broker's default, not the dead letters'
    assert found[names["exposures"]]["cleanup.policy"] == found[names["outcomes"]]["cleanup.policy"] == "delete"

    # Run again: nothing is created twice, and nothing existing is changed.
    assert topics.main(["--config", str(config), "--bootstrap-servers", broker.bootstrap]) == 0
    assert capsys.readouterr().out.count("exists, left as it is") == 7
