"""Purchase intent, evaluated prequentially: after each behaviour event the job serves P(a cart or purchase by
that shopper within the horizon), as scored at their last scored event (`operators.intent.track`: the first of
each slot, and each cart or purchase), and the recency-frequency baseline states its own. The model
learns as the job's does (`operators.intent`: one example per shopper and hour, each learned once its
label is known), never from an example before its label is known. Examples whose horizon runs past the
end of the log are left out.

Reported: AUC of the model and of the baseline with 95% intervals (bootstrap over shoppers), the
model's Brier score and expected calibration error (10 equal-width bins) beside the base rate's.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from config import JobConfig
from operators import ftrl, intent
from state_schemas.events import BehaviourEvent
from state_schemas.state import FtrlModel, HistoryEntry, IntentActivity, PendingIntent
from state_schemas.units import HOUR_MS

HORIZON_SHARE_OF_SHORT_LOG = 4  # a log shorter than 4 horizons is judged over a quarter of its span


@dataclass
class Example:
    user: str
    ts: int
    model: float  # the intent served after this event
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
    """Every behaviour event judged by the intent the job serves after it, from the model trained as the job
    trains it (`operators.intent.track`): the first event of each shopper-slot (and each cart or purchase) scored,
    the first kept to learn from, its label known at the shopper's cart or purchase within the horizon, or once
    the horizon passes (their next event, or the timer the user context sets, fired as the watermark passes it),
    learned before the event that made it known is scored. Each event's label is the log's."""
    window = horizon(events, config)
    settings = replace(config.intent, horizon_hours=window / HOUR_MS)
    activity: dict[str, IntentActivity] = {}
    history: dict[str, tuple[HistoryEntry, ...]] = {}
    pending: dict[str, tuple[PendingIntent, ...]] = {}
    timers: list[tuple[int, str]] = []  # (when, shopper): the user context's timers, a heap
    open_examples: dict[str, list[Example]] = {}
    served: dict[str, float] = {}  # each shopper's intent as the job serves it
    waiting: deque[Example] = deque()  # in time order: their horizons end in this order too
    done: list[Example] = []
    model = FtrlModel()
    end = events[-1].ts if events else 0
    newest, lag = None, config.intake.out_of_orderness_ms + 1  # the job's watermark: the newest time less the lag
    for event in events:
        while timers and newest is not None and timers[0][0] <= newest - lag:  # expired examples are negative
            when, user = heapq.heappop(timers)
            pending[user], learned = intent.labelled(pending.get(user, ()), when, False, settings)
            model = _learned(model, learned, settings)
            if learned:  # as the job's user context: a timer for the next to expire
                _set_timer(timers, user, pending[user], settings)
        while waiting and waiting[0].ts + window <= event.ts:
            done.append(waiting.popleft())
        user = event.user_id
        if event.behavior in intent.TARGETS:
            for example in open_examples.get(user, []):
                if example.ts < event.ts < example.ts + window:
                    example.label = True
        past = history.get(user, ())
        activity[user], pending[user], message = intent.track(
            activity.get(user, IntentActivity()), pending.get(user, ()), event, past,
            config.profile.history_size, config.policy.session_gap_ms, settings)
        if message is not None:
            model = _learned(model, message.learned, settings)
            if message.x is not None:  # scored: what the job serves until the shopper's next scored event
                served[user] = ftrl.predict(model, message.x, settings)
        _set_timer(timers, user, pending[user], settings)
        example = Example(user, event.ts, served[user], intent.recency_frequency(activity[user]))
        waiting.append(example)
        open_examples[user] = [e for e in open_examples.get(user, []) if e.ts + window > event.ts] + [example]
        if event.item_id is not None:
            kept = tuple(e for e in past if e.item_id != event.item_id)
            history[user] = (kept + (HistoryEntry(event.item_id, event.category_id, event.behavior, event.ts),))[
                -config.profile.history_size:]
        newest = event.ts if newest is None else max(newest, event.ts)
    done += [e for e in waiting if e.ts + window <= end]  # the rest are censored: their horizon is not over
    return IntentReport(window, np.array([e.user for e in done]), np.array([e.label for e in done], dtype=bool),
                        np.array([e.model for e in done]), np.array([e.baseline for e in done]))


def _set_timer(timers: list, user: str, pending: tuple[PendingIntent, ...], settings) -> None:
    expiry = intent.next_expiry(pending, settings)
    if expiry is not None:
        heapq.heappush(timers, (expiry, user))


def _learned(model: FtrlModel, examples, settings) -> FtrlModel:
    for x, label in examples:
        model = ftrl.learn(model, x, label, settings)
    return model


def print_intent(report: IntentReport) -> float:
    """The intent table; returns the model's AUC."""
    base_rate = float(report.labels.mean()) if len(report.labels) else float("nan")
    model_auc, baseline_auc = report.auc(report.model), report.auc(report.baseline)
    (m_low, m_high), (b_low, b_high) = report.interval(report.model), report.interval(report.baseline)
    print(f"\npurchase intent: P(cart or purchase within {report.horizon_ms / HOUR_MS:g} h), "
          f"{len(report.labels)} examples (one per event, the intent served after it; the model learns as the job's), "
          f"base rate {base_rate:.3f}")
    print(f"  FTRL logistic model  AUC {model_auc:.4f} [{m_low:.4f}, {m_high:.4f}]  "
          f"Brier {report.brier(report.model):.4f}  calibration error {report.calibration_error():.4f}")
    print(f"  recency-frequency    AUC {baseline_auc:.4f} [{b_low:.4f}, {b_high:.4f}]")
    print(f"  (the base rate alone: Brier {report.brier(np.full(len(report.labels), base_rate)):.4f})")
    return model_auc
