"""The job's config sections. Every default lives here, with a line saying what it means.

Config is immutable: lists are tuples and mappings are read-only views, so a section handed to the
core cannot be changed behind the back of the code that validated it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from state_schemas.events import BEHAVIOURS, CLOCK_PATTERN, LOCALE_PATTERN, ORDER_STATUSES, PURPOSES
from state_schemas.outputs import CHANNELS
from state_schemas.time_zones import is_known_zone

from . import templates as copy_rules
from .fields import ConfigError, doc, frozen, is_number as _is_number  # noqa: F401  (re-exported)
from .experiments import ExperimentsConfig, experiments_checks
from .learning import BlendConfig, FactorsConfig, FeedbackConfig, IntentConfig, learning_checks


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = doc("127.0.0.1:29092", "Kafka bootstrap servers")
    events_topic: str = doc("behaviour-events", "input: behaviour, order, erasure events (JSON)")
    notifications_topic: str = doc("notifications", "output: notifications (JSON)")
    dead_letter_topic: str = doc("events-dead-letter", "output: rejected input with the reason")
    exposures_topic: str = doc("notification-exposures", "output: the marketing the holdout would have been sent "
                                                         "(JSON, keyed like notifications)")
    outcomes_topic: str = doc("notification-outcomes", "output: carts and purchases attributed to the message "
                                                       "they followed (JSON, keyed like notifications)")
    dead_letter_retention_ms: int = doc(604800000, "dead letters carry raw payloads, raw user ids among them, "
                                        "which an erasure cannot reach: `notify-engine topics` sets this retention")
    group_id: str = doc("notify-engine", "consumer group of the KafkaSource")
    starting_offsets: str = doc("committed", "earliest | latest | committed (falls back to earliest)")
    bounded: bool = doc(False, "stop at the offsets current at start (replays, tests, benchmarks)")
    transactional_id_prefix: str = doc("notify-engine", "prefix of the exactly-once sink's transactions")
    transaction_timeout_ms: int = doc(600000, "must not exceed the broker's transaction.max.timeout.ms")


@dataclass(frozen=True)
class FlinkConfig:
    execution_mode: str = doc("thread", "python.execution-mode: thread (fast) or process")
    parallelism: int = doc(1, "default parallelism of every operator")
    max_parallelism: int = doc(128, "key groups: the highest parallelism a savepoint can be restored at; "
                                    "fixed for the job's life (changing it orphans keyed state)")
    delivery_guarantee: str = doc("exactly-once", "exactly-once | at-least-once for the notification sink")
    checkpoint_interval_ms: int = doc(2000, "exactly-once output becomes visible at each checkpoint")
    checkpoint_dir: str = doc("file:///tmp/notify-engine/checkpoints",
                              "durable checkpoint storage (JobManager memory holds at most 5 MB of state)")
    state_ttl_hours: float = doc(72.0, "keyed state untouched this long expires (idle users and items)")
    bundle_size: int = doc(100000, "python.fn-execution.bundle.size (process mode)")
    bundle_time_ms: int = doc(100, "python.fn-execution.bundle.time: latency bound of a bundle")


@dataclass(frozen=True)
class IntakeConfig:
    max_payload_bytes: int = doc(16384, "larger records go to the dead-letter topic")
    min_event_time_ms: int = doc(946684800000, "earlier timestamps are absurd (2000-01-01)")
    max_future_skew_ms: int = doc(86400000, "timestamps further ahead of the wall clock are absurd")
    out_of_orderness_ms: int = doc(5000, "watermark lag behind the highest event time seen")
    idleness_ms: int = doc(10000, "a partition silent this long stops holding the watermark back")
    dedup_window_ms: int = doc(3600000, "an event id seen again within this event-time window is dropped")
    dedup_max_ids: int = doc(256, "event ids remembered per user (bounded state)")


@dataclass(frozen=True)
class ProfileConfig:
    half_life_hours: float = doc(72.0, "half-life of category affinities")
    event_weights: Mapping = doc({"view": 1.0, "click": 2.0, "search": 0.5, "cart": 4.0, "favourite": 5.0,
                               "purchase": 8.0}, "affinity and popularity weight per behaviour")
    history_size: int = doc(12, "recent distinct items kept per user (bounds co-occurrence work); above "
                                "scoring.recent_items, so an excluded item (bought, or the trigger) does not shorten "
                                "the own items a ranking names")
    max_categories: int = doc(32, "categories kept in a profile; the weakest are dropped")
    trigger_behaviors: tuple = doc(["view", "click", "cart", "favourite", "purchase"],
                                  "behaviours that may lead to a marketing notification")
    min_trigger_gap_ms: int = doc(600000, "at most one marketing trigger per user in this event-time gap")


@dataclass(frozen=True)
class ItemModelConfig:
    popularity_half_life_hours: float = doc(6.0, "half-life of item popularity")
    row_cap: int = doc(64, "co-occurring items kept per item (bounded state and work)")
    neighbours: int = doc(10, "top-K similar items kept per item and sent to the scorer per trigger")
    neighbour_refresh_ms: int = doc(300000, "event time between recomputations of an item's top-K (and at the end "
                                            "of a bounded stream)")
    card_cache_ms: int = doc(5000, "item cards (counts, vectors, stock) read from Redis are reused this long")
    card_cache_size: int = doc(100000, "item cards kept in each instance's read cache")
    card_flush_ms: int = doc(200, "item cards are written to Redis in batches at least this often")


@dataclass(frozen=True)
class CatalogConfig:
    enabled: bool = doc(True, "read the catalogue topic and join it into item state")
    topic: str = doc("catalog", "input: catalogue items (JSON, compacted topic)")
    known_categories: tuple = doc([], "if not empty, catalogue items of other categories are dead-lettered")
    max_price: float = doc(1000000.0, "catalogue prices above this are dead-lettered as absurd")
    terms_per_item: int = doc(16, "strongest TF-IDF terms kept per item vector")
    content_half_life_hours: float = doc(72.0, "half-life of the user's content vector")
    content_terms_per_user: int = doc(64, "strongest terms kept in a user's content vector")


@dataclass(frozen=True)
class TrendingConfig:
    enabled: bool = doc(True, "windowed trending and behaviour counts to Redis")
    window_ms: int = doc(3600000, "sliding event-time window of trending items")
    slide_ms: int = doc(300000, "how often the trending window advances")
    top_n: int = doc(20, "trending items kept, globally and per category")
    counts_window_ms: int = doc(3600000, "tumbling window of per-user and per-category behaviour counts")
    read_cache_ms: int = doc(30000, "the population's best hour, counted from Redis, is reused this long (trending "
                                    "lists are read as of each decision's time)")


@dataclass(frozen=True)
class SegmentConfig:
    enabled: bool = doc(True, "cluster users by profile (streaming k-means) and recommend what their segment likes")
    segments: int = doc(8, "number of k-means segments")
    dimensions: int = doc(32, "hashed profile-vector dimensions")
    decay: float = doc(0.999, "forgetting factor of centroid weights per update (1.0 never forgets)")
    min_update_gap_ms: int = doc(3600000, "a user's profile vector is sent to the segmenter at most this often")
    min_history: int = doc(3, "users with fewer recent items have no profile worth clustering yet (and would "
                              "flood the single segmenter with one-event visitors)")
    trend_items: int = doc(20, "items each segment's trend list keeps")
    trend_half_life_hours: float = doc(24.0, "half-life of a segment's item scores")


@dataclass(frozen=True)
class ScoringConfig:
    weight_cf: float = doc(0.5, "blend weight of item-item similarity to the trigger and recent items")
    weight_content: float = doc(0.2, "blend weight of content similarity to the user's content vector")
    weight_segment: float = doc(0.1, "blend weight of the user's segment trend")
    weight_popularity: float = doc(0.1, "blend weight of trending popularity (cold start for new users and items)")
    weight_affinity: float = doc(0.1, "blend weight of the user's category affinity")
    weight_recency: float = doc(1.0, "blend weight of the shopper's own recent items, newest strongest")
    weight_mf: float = doc(0.0, "blend weight of the streamed matrix factorisation (user . item factors)")
    recent_first: bool = doc(True, "the shopper's newest recent_items admissible own items rank ahead of every "
                                   "other candidate (ordered among themselves by the blend; not if weight_recency is "
                                   "0); the other signals fill the places left")
    recent_items: int = doc(10, "own items ranked first with recent_first (no more than the history holds)")
    name_trigger_item: bool = doc(True, "a browse-abandonment message may name the item that triggered it "
                                        "(re-engagement); false: only other items (discovery)")
    diversity_penalty: float = doc(0.3, "score x (1 - penalty) per recent send, and per item already picked, "
                                        "in the same category")
    top_n: int = doc(20, "recommendations per user written to Redis")


@dataclass(frozen=True)
class PolicyConfig:
    daily_marketing_cap: int = doc(3, "marketing notifications per user per local day")
    daily_transactional_cap: int = doc(20, "transactional notifications per user per local day")
    weekly_marketing_cap: int = doc(10, "marketing notifications per user per 7 local days, all channels together")
    channel_caps: Mapping = doc({"push": [2, 8], "email": [1, 3], "sms": [1, 2], "inbox": [3, 15]},
                                "marketing per channel [per local day, per 7 local days]; a capped channel gives "
                                "way to the next one the shopper agreed to")
    min_marketing_gap_ms: int = doc(3600000, "least event time between two marketing notifications")
    renotify_cooldown_ms: int = doc(604800000, "an item is not recommended again to a user within this")
    min_score: float = doc(0.05, "marketing candidates scoring lower are not sent")
    min_intent: float = doc(0.0, "no marketing to a shopper whose purchase intent (intent section) is below this; "
                                 "0 = off. Transactional messages are not affected")
    items_per_notification: int = doc(3, "items named in one marketing notification")
    session_gap_ms: int = doc(1800000, "no event for this long ends a shopper's session; no marketing before")
    recommendation_delay_ms: int = doc(0, "after the session ends, wait this long before recommending")
    quiet_hours: tuple = doc(["21:00", "08:00"], "local clock times without marketing (equal: none); a message "
                                                 "due inside is deferred to their end")
    max_deferral_ms: int = doc(43200000, "a recommendation not out within this of its intended time is dropped")
    volume_target_per_week: float = doc(0.0, "marketing messages per shopper per week a send threshold on each "
                                             "message's utility (its best item's score) moves to hold; 0: no "
                                             "threshold (operators/volume.py)")
    volume_step: float = doc(0.5, "how far the threshold moves per decision (in score units), times the gap between "
                                  "sending and the share of decisions the target allows")
    volume_max_threshold: float = doc(3.0, "the highest the threshold goes")
    volume_targets_by_segment: Mapping = doc({}, "segment (segments.*, k-means) -> its own weekly target; shoppers "
                                                 "of other segments, or none yet, take volume_target_per_week")


JOURNEYS = ("recommendation", "cart_abandonment", "price_drop", "back_in_stock", "review_request")


@dataclass(frozen=True)
class JourneysConfig:
    """Journeys beyond browse abandonment (`policy` times the recommendation): when each plans a
    message, when it exits, and what a cap does to it. Every marketing journey keeps to the session,
    quiet-hour and cap rules of `policy`."""

    enabled: tuple = doc(list(JOURNEYS), "the marketing journeys that run (recommendation: browse abandonment)")
    cart_reminders_ms: tuple = doc([3600000, 86400000], "a cart not bought: a reminder this long after it, for each "
                                                        "(exits on purchase of the item, out of stock, opt-out)")
    price_drop_min_pct: float = doc(5.0, "a catalogue price at least this many percent below the last tells watchers")
    watch_ms: int = doc(1209600000, "a view, cart or favourite makes the shopper the item's watcher for this long")
    watchers_per_item: int = doc(200, "watchers kept per item, newest first: bounds one price change's fan-out")
    review_delay_ms: int = doc(259200000, "a review request this long after delivery (exits on cancel or refund)")
    night_deferred_statuses: tuple = doc(["delivered"], "order statuses held until the shopper's quiet hours end")
    on_cap: Mapping = doc({"recommendation": "drop", "cart_abandonment": "defer", "price_drop": "defer",
                           "back_in_stock": "defer", "review_request": "defer"},
                          "a capped message is dropped or deferred (to the next local day, or the end of the gap)")
    digest_items: int = doc(6, "items named in a digest: several messages due at once for one shopper go as one")
    best_hour_journeys: tuple = doc(["recommendation", "back_in_stock", "review_request"],
                                    "journeys sent at the shopper's best hour (cart reminders and price drops "
                                    "keep their time)")
    best_hour_max_wait_ms: int = doc(21600000, "wait at most this for the best hour; a message due further from "
                                               "it goes when due")
    best_hour_min_items: int = doc(5, "distinct recent items a shopper needs before their own best hour is used; "
                                      "below, the population's")
    population_min_shoppers: int = doc(50, "shoppers with a best hour of their own before the most common of those "
                                           "hours (each on its shopper's clock) is the one for shoppers with little "
                                           "history; 0: always platform_best_hour")
    platform_best_hour: int = doc(19, "local hour for shoppers with little history until population_min_shoppers "
                                      "have one of their own")
    open_weight: float = doc(3.0, "an opened notification counts this many events towards the hour it was opened in")

    def problems(self) -> list[str]:
        return [message for ok, message in (
            (set(self.enabled) <= set(JOURNEYS), f"journeys.enabled: journeys are {', '.join(JOURNEYS)}"),
            (all(isinstance(ms, int) and ms > 0 for ms in self.cart_reminders_ms),
             "journeys.cart_reminders_ms must be delays > 0"),
            (list(self.cart_reminders_ms) == sorted(set(self.cart_reminders_ms)),
             "journeys.cart_reminders_ms must be increasing"),
            (0 < self.price_drop_min_pct < 100, "journeys.price_drop_min_pct must be in (0, 100)"),
            (self.watch_ms > 0 and self.review_delay_ms > 0, "journeys.watch_ms and review_delay_ms must be > 0"),
            (self.watchers_per_item >= 1 and self.digest_items >= 1,
             "journeys.watchers_per_item and digest_items must be >= 1"),
            (set(self.best_hour_journeys) <= set(JOURNEYS), f"journeys.best_hour_journeys: journeys are "
                                                             f"{', '.join(JOURNEYS)}"),
            (0 <= self.platform_best_hour <= 23, "journeys.platform_best_hour must be an hour, 0 to 23"),
            (self.best_hour_max_wait_ms >= 0 and self.best_hour_min_items >= 0 and self.open_weight >= 0
             and self.population_min_shoppers >= 0,
             "journeys.best_hour_max_wait_ms, best_hour_min_items, population_min_shoppers and open_weight must be "
             ">= 0"),
            (set(self.on_cap) == set(JOURNEYS) and set(self.on_cap.values()) <= {"drop", "defer"},
             f"journeys.on_cap maps each of {', '.join(JOURNEYS)} to drop or defer"),
        ) if not ok]


@dataclass(frozen=True)
class DirectoryConfig:
    """The user directory, and the platform defaults for what a shopper's record does not say."""

    enabled: bool = doc(True, "read the user directory topic into the push policy's durable state")
    topic: str = doc("users", "input: user records (JSON, compacted topic keyed by user id)")
    default_time_zone: str = doc("UTC", "IANA zone of shoppers whose record names none (daily caps)")
    default_locale: str = doc("en", "locale of shoppers whose record names none")
    default_channels: tuple = doc(["push", "inbox"], "reachable channels of a shopper whose record names none")
    implied_consent: Mapping = doc({"marketing": ["push", "inbox"], "transactional": ["push", "email", "sms", "inbox"]},
                                   "purpose -> channels assumed for shoppers without a record (opt-in shops: "
                                   "marketing [])")
    channel_preference: Mapping = doc({"marketing": ["push", "email", "inbox", "sms"],
                                       "transactional": ["push", "sms", "email", "inbox"]},
                                      "purpose -> channels in the order tried: the first reachable and consented")

    def problems(self) -> list[tuple[bool, str]]:
        def channels(values) -> bool:
            return isinstance(values, (list, tuple)) and set(values) <= CHANNELS

        return [
            (is_known_zone(self.default_time_zone), "directory.default_time_zone must be an IANA time zone"),
            (isinstance(self.default_locale, str) and re.match(LOCALE_PATTERN, self.default_locale) is not None,
             "directory.default_locale must be a BCP 47 tag such as zh-CN or en"),
            (channels(self.default_channels), f"directory.default_channels must be among {sorted(CHANNELS)}"),
            (set(self.implied_consent) <= PURPOSES and all(map(channels, self.implied_consent.values())),
             f"directory.implied_consent maps {sorted(PURPOSES)} to channels among {sorted(CHANNELS)}"),
            (set(self.channel_preference) == PURPOSES and all(map(channels, self.channel_preference.values())),
             f"directory.channel_preference maps each of {sorted(PURPOSES)} to channels among {sorted(CHANNELS)}"),
        ]


@dataclass(frozen=True)
class ContentConfig:
    """What notifications say: the copy per template and locale, links, and each channel's length limits."""

    templates_file: str = doc("", "YAML copy per template and locale (relative to the config file); "
                                  "empty: the built-in config/templates.yaml")
    locales: tuple = doc(["en", "zh-CN"], "locales every template must have; other locales fall back by "
                                          "language, then to directory.default_locale")
    deeplink: str = doc("https://shop.example.com/item/{item_id}?nid={notification_id}",
                        "link to an item, carrying the notification id for attribution")
    order_link: str = doc("https://shop.example.com/orders/{order_id}?nid={notification_id}", "link to an order")
    limits: Mapping = doc({"push": [50, 150], "sms": [0, 160], "email": [120, 1000], "inbox": [80, 500]},
                          "per channel [title, body] in characters (0: no title); longer copy is cut with '…'")
    # The copy itself, read from templates_file when the config loads (not a key users set).
    templates: Mapping = field(default_factory=lambda: _BUILT_IN_COPY, metadata={"internal": True})

    def problems(self) -> list[tuple[bool, str]]:
        limits = self.limits
        return [
            (bool(self.locales) and all(isinstance(x, str) and re.match(LOCALE_PATTERN, x) for x in self.locales),
             "content.locales must be BCP 47 tags such as zh-CN or en"),
            (set(limits) == CHANNELS and all(isinstance(v, tuple) and len(v) == 2 and all(
                isinstance(n, int) and n >= 0 for n in v) and v[1] >= 10 for v in limits.values()),
             f"content.limits maps each of {sorted(CHANNELS)} to [title, body] characters, body >= 10"),
            *((False, message) for message in _link_problems("content.deeplink", self.deeplink,
                                                             {"item_id", "notification_id"})),
            *((False, message) for message in _link_problems("content.order_link", self.order_link,
                                                             {"order_id", "notification_id"})),
            *((False, message) for message in copy_rules.problems(self.templates, self.locales)),
        ]


def _link_problems(key: str, pattern: str, allowed: set[str]) -> list[str]:
    used = copy_rules.placeholders(pattern)
    if used is None:
        return [f"{key} must be a text with {{placeholders}} in matched braces"]
    return [f"{key} has unknown placeholder(s) {', '.join(sorted(used - allowed))}"] if used - allowed else []


_BUILT_IN_COPY = frozen(copy_rules.read(copy_rules.BUILT_IN))


@dataclass(frozen=True)
class RedisConfig:
    enabled: bool = doc(True, "write trending to Redis, and keep inboxes (`notify-engine inbox`); item cards, "
                              "profiles and top-N always use it")
    url: str = doc("redis://127.0.0.1:26379/0", "Redis the job writes to")
    key_prefix: str = doc("notify", "prefix of every key the job writes")
    inbox_size: int = doc(20, "notifications kept per user inbox (by the inbox writer)")
    ttl_hours: float = doc(168.0, "inbox keys expire this long after the last write")


@dataclass(frozen=True)
class PrivacyConfig:
    pseudonym_key: str = doc("change-me-in-production", "HMAC key that turns user ids into pseudonyms")


@dataclass(frozen=True)
class JobConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    flink: FlinkConfig = field(default_factory=FlinkConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    item_model: ItemModelConfig = field(default_factory=ItemModelConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    trending: TrendingConfig = field(default_factory=TrendingConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    intent: IntentConfig = field(default_factory=IntentConfig)
    factors: FactorsConfig = field(default_factory=FactorsConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    journeys: JourneysConfig = field(default_factory=JourneysConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)

    @property
    def windows_enabled(self) -> bool:
        """Trending and behaviour counts run only where they have somewhere to go."""
        return self.trending.enabled and self.redis.enabled

    def validate(self) -> "JobConfig":
        """The config checked, and each experiment's variants as they change it."""
        self.checked()
        problems = []
        for name, experiment in self.experiments.tests.items():
            for variant in experiment["variants"]:
                try:
                    self.for_variants(((name, variant),))
                except ConfigError as error:
                    problems.append(f"experiments.tests.{name}.variants.{variant}: {error}")
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))
        return self

    @cached_property
    def _variant_configs(self) -> dict:
        return {}

    def for_variants(self, variants: tuple[tuple[str, str], ...]) -> "JobConfig":
        """This config as the (experiment, variant) pairs change it, in that order; made once per combination."""
        if not variants:
            return self
        made = self._variant_configs.get(variants)
        if made is None:
            from .loading import with_changes

            changes = [self.experiments.tests[name]["variants"][variant].get("overrides", {})
                       for name, variant in variants]
            made = self._variant_configs[variants] = with_changes(self, changes)
        return made

    def checked(self) -> "JobConfig":
        """The settings' own checks (a variant's config is checked by these alone)."""
        checks = [
            (self.kafka.starting_offsets in ("earliest", "latest", "committed"),
             "kafka.starting_offsets must be earliest, latest or committed"),
            (self.kafka.dead_letter_retention_ms > 0, "kafka.dead_letter_retention_ms must be > 0 (dead letters "
                                                      "carry raw user ids and must not be kept forever)"),
            (0 < self.kafka.transaction_timeout_ms <= 900000,
             "kafka.transaction_timeout_ms must be in (0, 900000] (the broker's default maximum)"),
            (self.flink.execution_mode in ("thread", "process"), "flink.execution_mode must be thread or process"),
            (self.flink.parallelism >= 1, "flink.parallelism must be >= 1"),
            (self.flink.parallelism <= self.flink.max_parallelism <= 32768,
             "flink.max_parallelism must be between flink.parallelism and 32768"),
            (self.flink.delivery_guarantee in ("exactly-once", "at-least-once"),
             "flink.delivery_guarantee must be exactly-once or at-least-once"),
            (self.flink.checkpoint_interval_ms >= 100, "flink.checkpoint_interval_ms must be >= 100"),
            (self.flink.state_ttl_hours > 0, "flink.state_ttl_hours must be > 0"),
            ("://" in self.flink.checkpoint_dir,
             "flink.checkpoint_dir must be a URI such as file:///path or s3://bucket/path"),
            (self.intake.max_payload_bytes >= 256, "intake.max_payload_bytes must be >= 256"),
            (self.intake.dedup_max_ids >= 1, "intake.dedup_max_ids must be >= 1"),
            (self.profile.half_life_hours > 0, "profile.half_life_hours must be > 0"),
            (set(self.profile.event_weights) <= BEHAVIOURS, "profile.event_weights has an unknown behaviour"),
            (all(_is_number(w) for w in self.profile.event_weights.values()), "profile.event_weights must be numbers"),
            (all(not _is_number(w) or w >= 0 for w in self.profile.event_weights.values()),
             "profile.event_weights must be >= 0"),
            (set(self.profile.trigger_behaviors) <= BEHAVIOURS, "profile.trigger_behaviors has an unknown behaviour"),
            *[(value >= 0, f"{name} must be >= 0") for name, value in (
                ("intake.dedup_window_ms", self.intake.dedup_window_ms),
                ("intake.out_of_orderness_ms", self.intake.out_of_orderness_ms),
                ("intake.idleness_ms", self.intake.idleness_ms),
                ("profile.min_trigger_gap_ms", self.profile.min_trigger_gap_ms),
                ("policy.min_marketing_gap_ms", self.policy.min_marketing_gap_ms),
                ("policy.renotify_cooldown_ms", self.policy.renotify_cooldown_ms))],
            (self.profile.history_size >= 1, "profile.history_size must be >= 1"),
            (self.item_model.row_cap >= self.item_model.neighbours >= 1,
             "item_model.row_cap must be >= item_model.neighbours >= 1"),
            (self.item_model.popularity_half_life_hours > 0, "item_model.popularity_half_life_hours must be > 0"),
            *[(value >= 0, f"item_model.{name} must be >= 0") for name, value in (
                ("card_cache_ms", self.item_model.card_cache_ms), ("card_flush_ms", self.item_model.card_flush_ms))],
            (self.item_model.neighbour_refresh_ms > 0, "item_model.neighbour_refresh_ms must be > 0"),
            (self.item_model.card_cache_size >= 1, "item_model.card_cache_size must be >= 1"),
            (self.catalog.max_price > 0, "catalog.max_price must be > 0"),
            (self.catalog.terms_per_item >= 1, "catalog.terms_per_item must be >= 1"),
            (self.catalog.content_half_life_hours > 0, "catalog.content_half_life_hours must be > 0"),
            (self.catalog.content_terms_per_user >= 1, "catalog.content_terms_per_user must be >= 1"),
            (0 < self.trending.slide_ms <= self.trending.window_ms,
             "trending.slide_ms must be in (0, trending.window_ms]"),
            (self.trending.top_n >= 1, "trending.top_n must be >= 1"),
            (all(ms % 1000 == 0 for ms in (self.trending.window_ms, self.trending.slide_ms,
                                           self.trending.counts_window_ms)),
             "trending windows must be whole seconds"),
            (self.trending.counts_window_ms > 0, "trending.counts_window_ms must be > 0"),
            (self.trending.read_cache_ms >= 0, "trending.read_cache_ms must be >= 0"),
            (self.segments.segments >= 1, "segments.segments must be >= 1"),
            (self.segments.dimensions >= 2, "segments.dimensions must be >= 2"),
            (0 < self.segments.decay <= 1, "segments.decay must be in (0, 1]"),
            (self.segments.min_update_gap_ms >= 0, "segments.min_update_gap_ms must be >= 0"),
            (self.segments.min_history >= 1, "segments.min_history must be >= 1"),
            (self.segments.trend_items >= 1, "segments.trend_items must be >= 1"),
            (self.segments.trend_half_life_hours > 0, "segments.trend_half_life_hours must be > 0"),
            (all(_is_number(w) and w >= 0 for w in (self.scoring.weight_cf, self.scoring.weight_content,
                                                     self.scoring.weight_segment, self.scoring.weight_popularity,
                                                     self.scoring.weight_affinity, self.scoring.weight_recency,
                                                     self.scoring.weight_mf)),
             "scoring weights must be >= 0"),
            (0 <= self.scoring.diversity_penalty <= 1, "scoring.diversity_penalty must be in [0, 1]"),
            (self.scoring.top_n >= 1, "scoring.top_n must be >= 1"),
            (self.scoring.recent_items >= 1, "scoring.recent_items must be >= 1"),
            (self.policy.daily_marketing_cap >= 0, "policy.daily_marketing_cap must be >= 0"),
            (self.policy.daily_transactional_cap >= 0, "policy.daily_transactional_cap must be >= 0"),
            (self.policy.weekly_marketing_cap >= 0, "policy.weekly_marketing_cap must be >= 0"),
            (self.policy.session_gap_ms > 0, "policy.session_gap_ms must be > 0"),
            (self.policy.recommendation_delay_ms >= 0, "policy.recommendation_delay_ms must be >= 0"),
            (self.policy.max_deferral_ms >= 0, "policy.max_deferral_ms must be >= 0"),
            (len(self.policy.quiet_hours) == 2 and all(isinstance(t, str) and re.match(CLOCK_PATTERN, t)
                                                        for t in self.policy.quiet_hours),
             "policy.quiet_hours must be two 24-hour clock times such as [\"21:00\", \"08:00\"]"),
            (set(self.policy.channel_caps) == CHANNELS and all(
                isinstance(v, tuple) and len(v) == 2 and all(isinstance(n, int) and n >= 0 for n in v)
                for v in self.policy.channel_caps.values()),
             f"policy.channel_caps maps each of {sorted(CHANNELS)} to [per day, per 7 days] counts >= 0"),
            (self.policy.items_per_notification >= 1, "policy.items_per_notification must be >= 1"),
            (_is_number(self.policy.min_intent) and 0 <= self.policy.min_intent <= 1,
             "policy.min_intent must be a probability in [0, 1]"),
            (all(_is_number(v) and v >= 0 for v in (self.policy.volume_target_per_week, self.policy.volume_step,
                                                     self.policy.volume_max_threshold)),
             "policy.volume_target_per_week, volume_step and volume_max_threshold must be >= 0"),
            (all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 and _is_number(v) and v >= 0
                 for k, v in self.policy.volume_targets_by_segment.items()),
             "policy.volume_targets_by_segment maps segment numbers (>= 0) to targets (>= 0)"),
            *self.journeys.problems(),
            (set(self.journeys.night_deferred_statuses) <= ORDER_STATUSES,
             "journeys.night_deferred_statuses has an unknown order status"),
            *self.directory.problems(),
            *self.content.problems(),
            (self.directory.default_locale in self.content.locales,
             "directory.default_locale must be one of content.locales"),
            (self.redis.url.startswith(("redis://", "rediss://", "unix://")), "redis.url must be a redis:// URL"),
            (self.redis.inbox_size >= 1, "redis.inbox_size must be >= 1"),
            (self.redis.ttl_hours > 0, "redis.ttl_hours must be > 0"),
            (len(self.privacy.pseudonym_key) >= 8, "privacy.pseudonym_key must have at least 8 characters"),
        ] + learning_checks(self) + experiments_checks(self)
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))
        return self

    def with_overrides(self, overrides: dict) -> "JobConfig":
        from .loading import apply_overrides

        return apply_overrides(self, overrides)
