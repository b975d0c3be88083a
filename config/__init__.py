"""The job's one YAML config: sections with their defaults, and the loader that validates a file."""
from .loading import apply_overrides, load_config, render_defaults, to_dict
from .sections import (CatalogConfig, ConfigError, ContentConfig, DirectoryConfig, FlinkConfig, IntakeConfig,
                       ItemModelConfig, JobConfig, JourneysConfig, KafkaConfig, PolicyConfig, PrivacyConfig,
                       ProfileConfig, RedisConfig, ScoringConfig, SegmentConfig, TrendingConfig)

__all__ = ["CatalogConfig", "ConfigError", "ContentConfig", "DirectoryConfig", "FlinkConfig", "IntakeConfig",
           "ItemModelConfig", "JobConfig", "JourneysConfig", "KafkaConfig", "PolicyConfig", "PrivacyConfig",
           "ProfileConfig",
           "RedisConfig", "ScoringConfig", "SegmentConfig", "TrendingConfig", "apply_overrides", "load_config",
           "render_defaults", "to_dict"]
