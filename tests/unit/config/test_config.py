"""The job's YAML config: defaults, overrides, rejection of unknown keys and wrong types with their path."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from config import ConfigError, JobConfig, load_config, render_defaults, to_dict

# The defaults as released: a change to them shows here, and must come with a new version of this file.
RELEASED_DEFAULTS = Path(__file__).with_name("default-config-0.4.0.yaml")


def rejected(overrides: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=overrides)
    return str(caught.value)


def test_the_defaults_are_valid_and_what_load_config_returns():
    assert JobConfig().validate() == JobConfig()
    assert load_config() == JobConfig()
    assert load_config(overrides={}) == JobConfig()


def test_config_values_cannot_be_changed_after_validation():
    config = load_config(overrides={"profile": {"event_weights": {"view": 2.0}, "trigger_behaviors": ["cart"]}})
    with pytest.raises(TypeError):
        config.profile.event_weights["view"] = 99.0
    with pytest.raises(AttributeError):
        config.profile.trigger_behaviors.append("search")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.policy.daily_marketing_cap = 9
    assert config.profile.event_weights == {"view": 2.0} and config.profile.trigger_behaviors == ("cart",)
    assert JobConfig().profile.event_weights["view"] == 1.0


def test_users_see_the_default_file_of_this_release():
    assert render_defaults() == RELEASED_DEFAULTS.read_text()


def test_an_override_changes_one_key_and_keeps_its_siblings():
    config = load_config(overrides={"policy": {"daily_marketing_cap": 5}})
    assert config.policy.daily_marketing_cap == 5
    assert dataclasses.replace(config.policy, daily_marketing_cap=3) == JobConfig().policy
    assert config.kafka == JobConfig().kafka


def test_overrides_stack_on_an_existing_config():
    config = load_config(overrides={"policy": {"daily_marketing_cap": 5}})
    config = config.with_overrides({"directory": {"default_locale": "zh-CN"}, "intake": {"dedup_max_ids": 9}})
    assert (config.policy.daily_marketing_cap, config.directory.default_locale, config.intake.dedup_max_ids) == \
        (5, "zh-CN", 9)


def test_event_weights_are_replaced_as_a_whole_not_merged():
    config = load_config(overrides={"profile": {"event_weights": {"view": 3.0}}})
    assert config.profile.event_weights == {"view": 3.0}


def test_a_file_and_overrides_combine_with_overrides_winning(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("policy:\n  daily_marketing_cap: 7\ndirectory:\n  default_time_zone: Asia/Tokyo\n"
                    "flink:\n  parallelism: 4\n")
    config = load_config(path, overrides={"directory": {"default_time_zone": "Europe/Lisbon"}})
    assert config.policy.daily_marketing_cap == 7 and config.directory.default_time_zone == "Europe/Lisbon"
    assert config.flink.parallelism == 4
    assert config.kafka == JobConfig().kafka


def test_an_empty_file_means_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing changed\n")
    assert load_config(path) == JobConfig()


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- kafka\n- flink\n")
    with pytest.raises(ConfigError, match="config must be a mapping"):
        load_config(path)


def test_a_section_that_is_not_a_mapping_is_rejected_with_its_name():
    message = rejected({"kafka": 5})
    assert "kafka" in message and "must be a mapping" in message


@pytest.mark.parametrize("overrides, path", [
    ({"bogus": 1}, "bogus"),
    ({"kafka": {"bootstrap_server": "x"}}, "kafka.bootstrap_server"),
    ({"policy": {"daily_cap": 1, "zzz": 2}}, "policy.daily_cap, policy.zzz"),
])
def test_unknown_keys_are_rejected_with_their_path(overrides, path):
    assert f"unknown config key(s) {path}" in rejected(overrides)


def test_unknown_keys_in_a_file_are_rejected_with_their_path(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("intake:\n  dedup_max_id: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) intake.dedup_max_id"):
        load_config(path)


@pytest.mark.parametrize("overrides, message", [
    ({"flink": {"parallelism": "4"}}, "config key flink.parallelism must be int, got '4'"),
    ({"flink": {"parallelism": True}}, "config key flink.parallelism must be int, got True"),
    ({"flink": {"parallelism": 2.0}}, "config key flink.parallelism must be int, got 2.0"),
    ({"kafka": {"bounded": "yes"}}, "config key kafka.bounded must be bool, got 'yes'"),
    ({"kafka": {"bootstrap_servers": 9092}}, "config key kafka.bootstrap_servers must be str, got 9092"),
    ({"profile": {"event_weights": ["view"]}}, "config key profile.event_weights must be dict"),
    ({"profile": {"trigger_behaviors": "view"}}, "config key profile.trigger_behaviors must be list"),
    ({"profile": {"half_life_hours": "72"}}, "config key profile.half_life_hours must be float"),
])
def test_wrong_types_are_rejected_with_their_path(overrides, message):
    assert message in rejected(overrides)


def test_an_integer_is_accepted_where_a_float_is_expected():
    config = load_config(overrides={"profile": {"half_life_hours": 24}})
    assert config.profile.half_life_hours == 24.0 and isinstance(config.profile.half_life_hours, float)


@pytest.mark.parametrize("overrides, message", [
    ({"kafka": {"transaction_timeout_ms": 900001}}, "kafka.transaction_timeout_ms must be in (0, 900000]"),
    ({"kafka": {"transaction_timeout_ms": 0}}, "kafka.transaction_timeout_ms must be in (0, 900000]"),
    ({"kafka": {"starting_offsets": "newest"}}, "kafka.starting_offsets must be earliest, latest or committed"),
    ({"flink": {"execution_mode": "cluster"}}, "flink.execution_mode must be thread or process"),
    ({"flink": {"parallelism": 0}}, "flink.parallelism must be >= 1"),
    ({"flink": {"parallelism": 4, "max_parallelism": 2}}, "flink.max_parallelism must be between flink.parallelism"),
    ({"flink": {"delivery_guarantee": "maybe"}}, "flink.delivery_guarantee must be"),
    ({"flink": {"checkpoint_interval_ms": 99}}, "flink.checkpoint_interval_ms must be >= 100"),
    ({"flink": {"state_ttl_hours": 0}}, "flink.state_ttl_hours must be > 0"),
    ({"intake": {"max_payload_bytes": 255}}, "intake.max_payload_bytes must be >= 256"),
    ({"intake": {"dedup_max_ids": 0}}, "intake.dedup_max_ids must be >= 1"),
    ({"profile": {"half_life_hours": 0}}, "profile.half_life_hours must be > 0"),
    ({"profile": {"event_weights": {"teleport": 1.0}}}, "profile.event_weights has an unknown behaviour"),
    ({"profile": {"event_weights": {"view": -1.0}}}, "profile.event_weights must be >= 0"),
    ({"profile": {"history_size": 0}}, "profile.history_size must be >= 1"),
    ({"item_model": {"neighbours": 65}}, "item_model.row_cap must be >= item_model.neighbours >= 1"),
    ({"item_model": {"neighbours": 0}}, "item_model.row_cap must be >= item_model.neighbours >= 1"),
    ({"item_model": {"popularity_half_life_hours": -1.0}}, "item_model.popularity_half_life_hours must be > 0"),
    ({"policy": {"daily_marketing_cap": -1}}, "policy.daily_marketing_cap must be >= 0"),
    ({"policy": {"daily_transactional_cap": -1}}, "policy.daily_transactional_cap must be >= 0"),
    ({"directory": {"default_time_zone": "Mars/Olympus"}}, "directory.default_time_zone must be an IANA time zone"),
    ({"directory": {"default_time_zone": "+08:00"}}, "directory.default_time_zone must be an IANA time zone"),
    ({"directory": {"default_locale": "chinese"}}, "directory.default_locale must be a BCP 47 tag"),
    ({"directory": {"default_channels": ["push", "fax"]}}, "directory.default_channels must be among"),
    ({"directory": {"implied_consent": {"ads": ["push"]}}}, "directory.implied_consent maps"),
    ({"directory": {"implied_consent": {"marketing": ["pigeon"]}}}, "directory.implied_consent maps"),
    ({"directory": {"channel_preference": {"marketing": "push"}}}, "directory.channel_preference maps"),
    ({"policy": {"items_per_notification": 0}}, "policy.items_per_notification must be >= 1"),
    ({"redis": {"url": "http://localhost"}}, "redis.url must be a redis:// URL"),
    ({"redis": {"inbox_size": 0}}, "redis.inbox_size must be >= 1"),
    ({"redis": {"ttl_hours": 0}}, "redis.ttl_hours must be > 0"),
    ({"privacy": {"pseudonym_key": "short"}}, "privacy.pseudonym_key must have at least 8 characters"),
    ({"item_model": {"neighbour_refresh_ms": 0}}, "item_model.neighbour_refresh_ms must be > 0"),
    ({"item_model": {"card_cache_ms": -1}}, "item_model.card_cache_ms must be >= 0"),
    ({"item_model": {"card_flush_ms": -1}}, "item_model.card_flush_ms must be >= 0"),
    ({"item_model": {"card_cache_size": 0}}, "item_model.card_cache_size must be >= 1"),
    ({"catalog": {"max_price": 0.0}}, "catalog.max_price must be > 0"),
    ({"catalog": {"terms_per_item": 0}}, "catalog.terms_per_item must be >= 1"),
    ({"catalog": {"content_half_life_hours": 0.0}}, "catalog.content_half_life_hours must be > 0"),
    ({"catalog": {"content_terms_per_user": 0}}, "catalog.content_terms_per_user must be >= 1"),
    ({"trending": {"slide_ms": 0}}, "trending.slide_ms must be in (0, trending.window_ms]"),
    ({"trending": {"slide_ms": 3600001}}, "trending.slide_ms must be in (0, trending.window_ms]"),
    ({"trending": {"top_n": 0}}, "trending.top_n must be >= 1"),
    ({"trending": {"counts_window_ms": 0}}, "trending.counts_window_ms must be > 0"),
    ({"trending": {"read_cache_ms": -1}}, "trending.read_cache_ms must be >= 0"),
    ({"segments": {"segments": 0}}, "segments.segments must be >= 1"),
    ({"segments": {"dimensions": 1}}, "segments.dimensions must be >= 2"),
    ({"segments": {"decay": 0.0}}, "segments.decay must be in (0, 1]"),
    ({"segments": {"decay": 1.01}}, "segments.decay must be in (0, 1]"),
    ({"segments": {"min_update_gap_ms": -1}}, "segments.min_update_gap_ms must be >= 0"),
    ({"segments": {"trend_items": 0}}, "segments.trend_items must be >= 1"),
    ({"segments": {"trend_half_life_hours": 0.0}}, "segments.trend_half_life_hours must be > 0"),
    ({"scoring": {"weight_cf": -0.1}}, "scoring weights must be >= 0"),
    ({"scoring": {"weight_content": -0.1}}, "scoring weights must be >= 0"),
    ({"scoring": {"weight_segment": -0.1}}, "scoring weights must be >= 0"),
    ({"scoring": {"weight_popularity": -0.1}}, "scoring weights must be >= 0"),
    ({"scoring": {"weight_affinity": -0.1}}, "scoring weights must be >= 0"),
    ({"scoring": {"diversity_penalty": -0.01}}, "scoring.diversity_penalty must be in [0, 1]"),
    ({"scoring": {"diversity_penalty": 1.01}}, "scoring.diversity_penalty must be in [0, 1]"),
    ({"scoring": {"top_n": 0}}, "scoring.top_n must be >= 1"),
], ids=lambda v: str(v)[:60])
def test_values_out_of_range_are_rejected(overrides, message):
    assert message in rejected(overrides)


@pytest.mark.parametrize("overrides", [
    {"kafka": {"transaction_timeout_ms": 900000}},
    {"directory": {"default_time_zone": "Pacific/Kiritimati", "default_locale": "zh-CN"}},
    {"directory": {"enabled": False}, "content": {"limits": {"sms": [0, 10]}}},
    {"policy": {"daily_marketing_cap": 0}},
    {"item_model": {"row_cap": 5, "neighbours": 5}},
    {"intake": {"max_payload_bytes": 256}},
    {"redis": {"url": "unix:///tmp/redis.sock"}},
    {"scoring": {"diversity_penalty": 0.0, "weight_cf": 0.0}},
    {"scoring": {"diversity_penalty": 1.0}},
    {"segments": {"decay": 1.0, "min_update_gap_ms": 0, "dimensions": 2, "segments": 1}},
    {"trending": {"slide_ms": 3600000}},
    {"item_model": {"card_cache_ms": 0, "card_flush_ms": 0, "card_cache_size": 1, "neighbour_refresh_ms": 1}},
], ids=lambda v: str(v)[:60])
def test_values_at_the_edge_of_their_range_are_accepted(overrides):
    config = load_config(overrides=overrides)
    section, values = next(iter(overrides.items()))
    for key, value in values.items():
        assert getattr(getattr(config, section), key) == value


def test_every_problem_is_reported_at_once():
    message = rejected({"flink": {"parallelism": 0}, "redis": {"inbox_size": 0}})
    assert "flink.parallelism must be >= 1" in message and "redis.inbox_size must be >= 1" in message


def test_rendered_defaults_load_back_as_the_defaults(tmp_path):
    rendered = render_defaults()
    expected = to_dict(JobConfig())
    del expected["content"]["templates"]  # the copy itself is read from content.templates_file
    assert yaml.safe_load(rendered) == expected
    path = tmp_path / "defaults.yaml"
    path.write_text(rendered)
    assert load_config(path) == JobConfig()


def rendered_sections() -> dict[str, list[str]]:
    """The rendered defaults split into sections: several sections share key names (enabled, top_n, topic)."""
    sections, current = {}, None
    for line in render_defaults().splitlines():
        if line.startswith("#"):
            continue
        if not line.startswith(" "):
            current = line.rstrip(":")
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


def test_rendered_defaults_document_every_key():
    sections = rendered_sections()
    assert list(sections) == [section.name for section in dataclasses.fields(JobConfig)]
    for section in dataclasses.fields(JobConfig):
        items = [item for item in dataclasses.fields(getattr(JobConfig(), section.name))
                 if not item.metadata.get("internal")]
        lines = sections[section.name]
        assert len(lines) == len(items)
        for item, line in zip(items, lines):
            assert line.startswith(f"  {item.name}: ")
            comment = line.split("  # ", 1)[1]
            assert comment.strip() and comment == item.metadata["doc"]


def test_keys_shared_by_several_sections_render_each_sections_own_default():
    sections = rendered_sections()
    for section, key in [("catalog", "enabled"), ("trending", "enabled"), ("segments", "enabled"),
                         ("trending", "top_n"), ("scoring", "top_n"), ("redis", "enabled")]:
        line = next(line for line in sections[section] if line.startswith(f"  {key}: "))
        assert yaml.safe_load(line.split("  # ", 1)[0]) == {key: getattr(getattr(JobConfig(), section), key)}


# --- validation gaps found by these tests, since closed ----------------------------------------

def test_a_non_number_event_weight_is_a_config_error():
    assert "profile.event_weights" in rejected({"profile": {"event_weights": {"view": "high"}}})


def test_an_unknown_trigger_behaviour_is_rejected():
    assert "profile.trigger_behaviors" in rejected({"profile": {"trigger_behaviors": ["teleport"]}})


@pytest.mark.parametrize("section, key", [("policy", "min_marketing_gap_ms"), ("policy", "renotify_cooldown_ms"),
                                          ("profile", "min_trigger_gap_ms"), ("intake", "dedup_window_ms")])
def test_negative_durations_are_rejected(section, key):
    assert f"{section}.{key}" in rejected({section: {key: -1}})


# --- the scoring section ---------------------------------------------------------------------------

def test_the_blend_weights_moved_from_policy_to_scoring():
    """A config written for the previous release names the old keys: refuse it rather than ignore the weights."""
    assert "unknown config key(s) policy.weight_cooccurrence" in rejected({"policy": {"weight_cooccurrence": 0.7}})
    assert "unknown config key(s) policy.weight_affinity" in rejected({"policy": {"weight_affinity": 0.3}})
    config = load_config(overrides={"scoring": {"weight_affinity": 0.3}})
    assert config.scoring.weight_affinity == 0.3 and config.policy == JobConfig().policy


def test_every_scoring_signal_takes_part_by_default():
    scoring = JobConfig().scoring
    assert all(w > 0 for w in [scoring.weight_cf, scoring.weight_content, scoring.weight_segment,
                               scoring.weight_popularity, scoring.weight_affinity])


def test_a_non_number_scoring_weight_is_rejected_with_its_path():
    assert "config key scoring.weight_cf must be float" in rejected({"scoring": {"weight_cf": "high"}})


@pytest.mark.parametrize("overrides, message", [
    ({"intent": {"ftrl_alpha": 0}}, "intent.ftrl_alpha must be > 0"),
    ({"blend": {"ftrl_l2": -1}}, "blend.ftrl_alpha must be > 0 and ftrl_beta, ftrl_l1, ftrl_l2 >= 0"),
    ({"blend": {"negatives": 0}}, "blend.negatives must be >= 1"),
    ({"factors": {"factors": 0}}, "factors.factors must be >= 1"),
    ({"factors": {"learning_rate": 0}}, "factors.learning_rate must be > 0"),
    ({"intent": {"horizon_hours": -1}}, "intent.horizon_hours must be > 0"),
    ({"scoring": {"weight_mf": -0.5}}, "scoring weights must be >= 0"),
])
def test_the_learning_sections_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_feedback_settings_are_validated():
    with pytest.raises(ConfigError, match="feedback settings must be positive"):
        load_config(overrides={"feedback": {"fatigue_after": 0}})
    with pytest.raises(ConfigError, match="feedback settings must be positive"):
        load_config(overrides={"feedback": {"channel_z": 0}})
