"""The simple recommenders the hybrid must beat in `make eval`, each fed the same events in time order.

- popularity: the most popular items under the item model's decay;
- recently viewed: the shopper's own most recent distinct items, newest first;
- item-KNN: cosine similarity of items over which shoppers touched them (binary user-item matrix),
  summed over the shopper's recent items. The co-occurrence counts are kept exactly, so every ranking
  is what a batch recompute at that instant would give;
- batch MF: implicit ALS (the `implicit` package) refitted on everything before each period starts,
  the upper reference a nightly batch job would give; shoppers new since the fit are folded in from
  their items, items new since the fit cannot be recommended.

Each `top(user, k, now, exclude)` leaves out `exclude` (the shopper's latest item in the discovery
ranking, their purchases always).
"""
from __future__ import annotations

import heapq
import math
import os
from collections import defaultdict

from config import JobConfig
from operators.decay import decayed_add, decayed_value
from state_schemas.events import BehaviourEvent
from state_schemas.units import HOUR_MS

# ALS at 2 cores: a BLAS pool per call only adds contention at this size.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class Popularity:
    """Decayed interaction counts of every item, as the item model keeps them per item."""

    def __init__(self, config: JobConfig):
        self.half_life_ms = config.item_model.popularity_half_life_hours * HOUR_MS
        self.weights = config.profile.event_weights
        self.scores: dict[str, tuple[float, int]] = {}

    def learn(self, event: BehaviourEvent) -> None:
        value, at = self.scores.get(event.item_id, (0.0, event.ts))
        self.scores[event.item_id] = decayed_add(value, at, self.weights.get(event.behavior, 0.0), event.ts,
                                                 self.half_life_ms)

    def top(self, user: str, k: int, now: int, exclude: set[str]) -> list[str]:
        ranked = heapq.nlargest(k + len(exclude), self.scores.items(),
                                key=lambda kv: decayed_value(kv[1][0], kv[1][1], now, self.half_life_ms))
        return [item for item, _ in ranked if item not in exclude][:k]


class RecentlyViewed:
    """Each shopper's distinct items, most recent last."""

    def __init__(self):
        self.items: dict[str, dict[str, None]] = defaultdict(dict)

    def learn(self, event: BehaviourEvent) -> None:
        seen = self.items[event.user_id]
        seen.pop(event.item_id, None)
        seen[event.item_id] = None

    def latest(self, user: str) -> str | None:
        seen = self.items.get(user)
        return next(reversed(seen)) if seen else None

    def top(self, user: str, k: int, now: int, exclude: set[str]) -> list[str]:
        return [item for item in reversed(self.items.get(user, {})) if item not in exclude][:k]


class ItemKNN:
    """Item-item cosine over the binary user-item matrix, from exact co-occurrence counts."""

    def __init__(self, recent: RecentlyViewed, history: int):
        self.recent, self.history = recent, history
        self.users_of: dict[str, int] = defaultdict(int)  # shoppers who touched the item
        self.together: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.touched: dict[str, set[str]] = defaultdict(set)

    def learn(self, event: BehaviourEvent) -> None:
        items = self.touched[event.user_id]
        if event.item_id in items:
            return
        for other in items:
            self.together[event.item_id][other] += 1
            self.together[other][event.item_id] += 1
        items.add(event.item_id)
        self.users_of[event.item_id] += 1

    def top(self, user: str, k: int, now: int, exclude: set[str]) -> list[str]:
        scores: dict[str, float] = defaultdict(float)
        for item in self.recent.top(user, self.history, now, set()):
            norm = self.users_of[item]
            for other, count in self.together.get(item, {}).items():
                scores[other] += count / math.sqrt(norm * self.users_of[other])
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [item for item, _ in ranked if item not in exclude][:k]


class BatchMF:
    """Implicit ALS refitted at each period boundary on every interaction before it."""

    def __init__(self, config: JobConfig, period_ms: int, factors: int = 32, iterations: int = 15,
                 regularization: float = 0.05, alpha: float = 10.0, seed: int = 7):
        self.weights = config.profile.event_weights
        self.period_ms = period_ms
        self.params = dict(factors=factors, iterations=iterations, regularization=regularization, alpha=alpha,
                           random_state=seed)
        self.strength: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # user -> item -> weight
        self.period: int | None = None  # start of the period the model serves
        self.model = None
        self.items: list[str] = []
        self.item_index: dict[str, int] = {}
        self.fits = 0

    def learn(self, event: BehaviourEvent) -> None:
        period = event.ts - event.ts % self.period_ms
        if self.period is None or period > self.period:  # a new period: fit on all that came before it
            self._refit()
            self.period = period
        self.strength[event.user_id][event.item_id] += self.weights.get(event.behavior, 0.0) or 1.0

    def _refit(self) -> None:
        from implicit.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix

        self.items = sorted({item for items in self.strength.values() for item in items})
        if len(self.strength) < 2 or len(self.items) < 2:
            self.model = None
            return
        self.item_index = {item: n for n, item in enumerate(self.items)}
        rows, cols, values = [], [], []
        for row, items in enumerate(self.strength.values()):
            for item, value in items.items():
                rows.append(row)
                cols.append(self.item_index[item])
                values.append(value)
        matrix = csr_matrix((values, (rows, cols)), shape=(len(self.strength), len(self.items)), dtype="float32")
        self.model = AlternatingLeastSquares(**self.params, use_gpu=False, calculate_training_loss=False)
        self.model.fit(matrix, show_progress=False)
        self.fits += 1

    def top(self, user: str, k: int, now: int, exclude: set[str]) -> list[str]:
        if self.model is None:
            return []
        from scipy.sparse import csr_matrix

        # The shopper's factors solved from all their items up to now that the fit knows (one ALS half-step):
        # fresher than a nightly job's, so the reference is the strongest this model gives.
        known = [(self.item_index[i], v) for i, v in self.strength.get(user, {}).items() if i in self.item_index]
        if not known:
            return []
        row = csr_matrix(([v for _, v in known], ([0] * len(known), [c for c, _ in known])),
                         shape=(1, len(self.items)), dtype="float32")
        ids, _ = self.model.recommend(0, row, N=k + len(exclude), filter_already_liked_items=False,
                                      recalculate_user=True)
        return [self.items[i] for i in ids if self.items[i] not in exclude][:k]
