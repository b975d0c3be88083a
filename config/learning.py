"""Config of the online learners: streamed factors, the learned blend, purchase intent, feedback."""
from __future__ import annotations

from dataclasses import dataclass

from .fields import doc, is_number


@dataclass(frozen=True)
class FactorsConfig:
    enabled: bool = doc(False, "learn user and item factors in the stream (incremental matrix factorisation); "
                               "off by default: in make eval they add nothing to the blend yet")
    factors: int = doc(16, "factors per user and per item (each item card carries its own)")
    learning_rate: float = doc(0.2, "SGD step per event")
    regularization: float = doc(0.01, "L2 pull towards zero per step")
    negatives: int = doc(2, "items of the trending list each event pushes the user away from")
    init_scale: float = doc(0.1, "standard deviation of the seeded starting factors")


@dataclass(frozen=True)
class BlendConfig:
    negatives: int = doc(20, "learned blend: candidates ranked above the one chosen that each outcome trains as "
                             "not chosen")
    ftrl_alpha: float = doc(0.5, "FTRL-Proximal learning rate alpha of the learned blend")
    ftrl_beta: float = doc(1.0, "FTRL-Proximal beta of the learned blend")
    ftrl_l1: float = doc(0.0, "FTRL-Proximal L1 strength of the learned blend")
    ftrl_l2: float = doc(1.0, "FTRL-Proximal L2 strength of the learned blend")


@dataclass(frozen=True)
class IntentConfig:
    enabled: bool = doc(True, "the job scores each shopper's purchase intent after each behaviour event, learns "
                              "online, serves it in Redis and hands it to the push policy (policy.min_intent)")
    horizon_hours: float = doc(24.0, "purchase intent: P(a cart or purchase within this many hours)")
    pending_per_user: int = doc(24, "a shopper's examples awaiting their label (a cart within the horizon, or the "
                                    "horizon passing); older ones beyond this are not learned from (bounded state)")
    ftrl_alpha: float = doc(0.1, "FTRL-Proximal learning rate alpha of the intent model")
    ftrl_beta: float = doc(1.0, "FTRL-Proximal beta (smooths the early per-feature rates)")
    ftrl_l1: float = doc(0.0, "FTRL-Proximal L1 strength (sparsity)")
    ftrl_l2: float = doc(1.0, "FTRL-Proximal L2 strength")


@dataclass(frozen=True)
class FeedbackConfig:
    fatigue_after: int = doc(3, "marketing messages in a row without an open or click, after which marketing "
                                "backs off until the shopper engages again")
    fatigue_gap_ms: int = doc(86400000, "the least gap between marketing messages once fatigued; it doubles with "
                                        "each further message ignored")
    fatigue_max_gap_ms: int = doc(604800000, "the longest the backed-off gap between marketing messages gets")
    rates_half_life_days: float = doc(30.0, "half-life of the open and click counts per channel and journey")
    channel_min_sends: float = doc(5.0, "the evidence channel choice needs: at least this many (decayed) sends "
                                        "on both channels compared")
    channel_z: float = doc(1.28, "and 80% Wilson intervals of their open rates that do not overlap (z = 1.28)")
    notes_kept: int = doc(50, "notifications per shopper remembered to match feedback and outcomes to")
    attribution_window_hours: float = doc(24.0, "a cart or purchase this long after a marketing message that named "
                                                "the item (or, weaker, its category) is that message's outcome")


def _ftrl_valid(section) -> bool:
    """FTRL-Proximal settings (operators.ftrl): a positive rate, the rest non-negative."""
    rest = (section.ftrl_beta, section.ftrl_l1, section.ftrl_l2)
    return is_number(section.ftrl_alpha) and section.ftrl_alpha > 0 and all(is_number(v) and v >= 0 for v in rest)


def learning_checks(config) -> list[tuple[bool, str]]:
    """(holds, message) for the sections above, as JobConfig.validate wants them."""
    factors, feedback, intent = config.factors, config.feedback, config.intent
    return [
        (factors.factors >= 1 and factors.negatives >= 0, "factors.factors must be >= 1, negatives >= 0"),
        (all(is_number(v) and v >= 0 for v in (factors.learning_rate, factors.regularization, factors.init_scale))
         and factors.learning_rate > 0, "factors.learning_rate must be > 0, regularization and init_scale >= 0"),
        (config.blend.negatives >= 1, "blend.negatives must be >= 1"),
        (_ftrl_valid(config.blend), "blend.ftrl_alpha must be > 0 and ftrl_beta, ftrl_l1, ftrl_l2 >= 0"),
        (feedback.fatigue_after >= 1 and feedback.notes_kept >= 1
         and min(feedback.fatigue_gap_ms, feedback.fatigue_max_gap_ms) >= 0 and feedback.rates_half_life_days > 0
         and feedback.channel_min_sends > 0 and feedback.channel_z > 0 and is_number(feedback.attribution_window_hours)
         and feedback.attribution_window_hours > 0,
         "feedback settings must be positive (the fatigue gaps >= 0)"),
        (is_number(intent.horizon_hours) and intent.horizon_hours > 0, "intent.horizon_hours must be > 0"),
        (isinstance(intent.pending_per_user, int) and intent.pending_per_user >= 1,
         "intent.pending_per_user must be an integer >= 1"),
        (_ftrl_valid(intent), "intent.ftrl_alpha must be > 0 and ftrl_beta, ftrl_l1, ftrl_l2 >= 0"),
    ]
