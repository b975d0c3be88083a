"""Purchase intent, evaluated prequentially: after each behaviour event the model states P(a cart or
purchase by that shopper within the horizon), and so does the recency-frequency baseline; the label
is known when such an event comes (positive) or the horizon passes without one (negative), and only
then is the model trained on it. Examples whose horizon runs past the end of the log are left out.

Reported: AUC of the model and of the baseline with 95% intervals (bootstrap over shoppers), the
model's Brier score and expected calibration error (10 equal-width bins) beside the base rate's.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from config import JobConfig
from operators import ftrl, intent
from state_schemas.events import BehaviourEvent
from state_schemas.state import FtrlModel, HistoryEntry, IntentActivity
from state_schemas.units import HOUR_MS

TARGETS = frozenset({"cart", "purchase"})
HORIZON_SHARE_OF_SHORT_LOG = 4  # a log shorter than 4 horizons is judged over a quarter of its span


@dataclass
class Example:
    user: str
    ts: int
    x: tuple[float, ...]
    model: float
    baseline: float
    label: bool = False


@dataclass
class IntentReport:
    horizon_ms: int
    users: np.ndarray
    labels: np.ndarray
    model: np.ndarray
    baseline: np.ndarray

    def auc(self, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
        return weighted_auc(self.labels, scores, weights)

    def interval(self, scores: np.ndarray, draws: int = 200, seed: int = 0) -> tuple[float, float]:
        users, index = np.unique(self.users, return_inverse=True)
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(draws):
            counts = rng.multinomial(len(users), np.full(len(users), 1 / len(users)))
            values.append(self.auc(scores, counts[index].astype(float)))
        low, high = np.nanpercentile(values, [2.5, 97.5])
        return float(low), float(high)

    def brier(self, scores: np.ndarray) -> float:
        return float(np.mean((scores - self.labels) ** 2))

    def calibration_error(self, bins: int = 10) -> float:
        which = np.minimum((self.model * bins).astype(int), bins - 1)
        error = 0.0
        for b in range(bins):
            inside = which == b
            if inside.any():
                error += inside.mean() * abs(self.model[inside].mean() - self.labels[inside].mean())
        return float(error)


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """P(a positive scores above a negative), ties counting half; examples weighted (bootstrap counts)."""
    weights = np.ones(len(labels)) if weights is None else weights
    order = np.argsort(scores, kind="mergesort")
    scores, labels, weights = scores[order], labels[order], weights[order]
    positives = np.where(labels, weights, 0.0)
    negatives = np.where(labels, 0.0, weights)
    if positives.sum() == 0 or negatives.sum() == 0:
        return float("nan")
    # Group ties: within a group of equal scores, each positive beats the negatives below and half of the tied.
    _, starts = np.unique(scores, return_index=True)
    group_pos = np.add.reduceat(positives, starts)
    group_neg = np.add.reduceat(negatives, starts)
    below = np.concatenate(([0.0], np.cumsum(group_neg)[:-1]))
    wins = np.sum(group_pos * (below + group_neg / 2))
    return float(wins / (positives.sum() * negatives.sum()))


def horizon(events: list[BehaviourEvent], config: JobConfig) -> int:
    configured = int(config.intent.horizon_hours * HOUR_MS)
    span = events[-1].ts - events[0].ts if events else 0
    return configured if span >= HORIZON_SHARE_OF_SHORT_LOG * configured else max(span // 4, 1)


def evaluate_intent(events: list[BehaviourEvent], config: JobConfig) -> IntentReport:
    window = horizon(events, config)
    activity: dict[str, IntentActivity] = {}
    history: dict[str, tuple[HistoryEntry, ...]] = {}
    open_examples: dict[str, list[Example]] = {}
    waiting: deque[Example] = deque()  # in time order: their horizons end in this order too
    done: list[Example] = []
    model = FtrlModel()
    end = events[-1].ts if events else 0
    for event in events:
        while waiting and waiting[0].ts + window <= event.ts:  # the horizon passed
            example = waiting.popleft()
            if not example.label:
                model = ftrl.learn(model, example.x, False, config.intent)
            done.append(example)
        user = event.user_id
        if event.behavior in TARGETS:
            for example in open_examples.get(user, []):
                if not example.label and example.ts < event.ts < example.ts + window:
                    example.label = True
                    model = ftrl.learn(model, example.x, True, config.intent)
        before = activity.get(user, IntentActivity())
        after = intent.observe(before, event, config.policy.session_gap_ms)
        past = history.get(user, ())
        x = intent.features(before, after, event, past, config.profile.history_size)
        example = Example(user, event.ts, x, ftrl.predict(model, x, config.intent), intent.recency_frequency(after))
        waiting.append(example)
        examples = [e for e in open_examples.get(user, []) if e.ts + window > event.ts]
        open_examples[user] = examples + [example]
        activity[user] = after
        if event.item_id is not None:
            kept = tuple(e for e in past if e.item_id != event.item_id)
            history[user] = (kept + (HistoryEntry(event.item_id, event.category_id, event.behavior, event.ts),))[
                -config.profile.history_size:]
    done += [e for e in waiting if e.ts + window <= end]  # the rest are censored: their horizon is not over
    return IntentReport(window, np.array([e.user for e in done]), np.array([e.label for e in done], dtype=bool),
                        np.array([e.model for e in done]), np.array([e.baseline for e in done]))


def print_intent(report: IntentReport) -> float:
    """The intent table; returns the model's AUC."""
    base_rate = float(report.labels.mean()) if len(report.labels) else float("nan")
    model_auc, baseline_auc = report.auc(report.model), report.auc(report.baseline)
    (m_low, m_high), (b_low, b_high) = report.interval(report.model), report.interval(report.baseline)
    print(f"\npurchase intent: P(cart or purchase within {report.horizon_ms / HOUR_MS:g} h), "
          f"{len(report.labels)} examples (one per event), base rate {base_rate:.3f}")
    print(f"  FTRL logistic model  AUC {model_auc:.4f} [{m_low:.4f}, {m_high:.4f}]  "
          f"Brier {report.brier(report.model):.4f}  calibration error {report.calibration_error():.4f}")
    print(f"  recency-frequency    AUC {baseline_auc:.4f} [{b_low:.4f}, {b_high:.4f}]")
    print(f"  (the base rate alone: Brier {report.brier(np.full(len(report.labels), base_rate)):.4f})")
    return model_auc
