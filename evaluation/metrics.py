"""Top-k quality measures for a prequential replay: each target is scored before it is learned.

Confidence intervals come from a bootstrap over shoppers (targets of one shopper are not independent):
each draw resamples shoppers with replacement, the same draw for every recommender, so a ratio of two
recommenders' hit rates gets an interval too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


def hit_at_k(ranked: list[str], target: str, k: int) -> float:
    return 1.0 if target in ranked[:k] else 0.0


def ndcg_at_k(ranked: list[str], target: str, k: int) -> float:
    """One relevant item: 1 / log2(rank + 2) for a 0-based rank inside the top k, else 0."""
    try:
        rank = ranked[:k].index(target)
    except ValueError:
        return 0.0
    return 1.0 / math.log2(rank + 2)


@dataclass
class Tally:
    """Running totals for one recommender."""

    k: int
    targets: int = 0
    hits: float = 0.0
    gain: float = 0.0
    recommended: set[str] = field(default_factory=set)
    by_user: dict[str, list[float]] = field(default_factory=dict)  # shopper -> [targets, hits, gain]
    unseen_hits: float = 0.0  # hits on items the shopper had never touched before

    def add(self, ranked: list[str], target: str, user: str = "", seen: bool = False) -> None:
        hit, gain = hit_at_k(ranked, target, self.k), ndcg_at_k(ranked, target, self.k)
        self.targets += 1
        self.hits += hit
        self.unseen_hits += 0.0 if seen else hit
        self.gain += gain
        self.recommended.update(ranked[: self.k])
        totals = self.by_user.setdefault(user, [0, 0.0, 0.0])
        totals[0] += 1
        totals[1] += hit
        totals[2] += gain

    @property
    def hit_rate(self) -> float:
        return self.hits / self.targets if self.targets else 0.0

    @property
    def unseen_hit_rate(self) -> float:
        return self.unseen_hits / self.targets if self.targets else 0.0

    @property
    def ndcg(self) -> float:
        return self.gain / self.targets if self.targets else 0.0

    def coverage(self, catalogue_size: int) -> float:
        """Share of the items seen in the log that this recommender ever put in a top k."""
        return len(self.recommended) / catalogue_size if catalogue_size else 0.0


class Bootstrap:
    """Shopper-resampled draws of the per-shopper totals of several tallies over the same targets."""

    def __init__(self, tallies: Mapping[str, Tally], draws: int = 2000, seed: int = 0):
        users = sorted({user for tally in tallies.values() for user in tally.by_user})
        rng = np.random.default_rng(seed)
        # weights[d, u]: how often shopper u is in draw d
        self.weights = rng.multinomial(len(users), np.full(len(users), 1 / len(users)), size=draws) if users else None
        self.totals = {name: np.array([tally.by_user.get(u, [0, 0.0, 0.0]) for u in users]).reshape(-1, 3)
                       for name, tally in tallies.items()}

    def draws(self, name: str, measure: str = "hit_rate") -> np.ndarray:
        if self.weights is None:
            return np.zeros(1)
        sums = self.weights @ self.totals[name]
        column = 1 if measure == "hit_rate" else 2
        return np.divide(sums[:, column], sums[:, 0], out=np.zeros(len(sums)), where=sums[:, 0] > 0)

    def interval(self, name: str, measure: str = "hit_rate", level: float = 0.95) -> tuple[float, float]:
        return _percentiles(self.draws(name, measure), level)

    def ratio_interval(self, name: str, reference: str, level: float = 0.95) -> tuple[float, float]:
        """Interval of hit_rate(name) / hit_rate(reference), resampled together; draws in which the reference
        hits nothing have no ratio and are left out (none left: nan)."""
        top, bottom = self.draws(name), self.draws(reference)
        defined = bottom > 0
        if not defined.any():
            return float("nan"), float("nan")
        return _percentiles(top[defined] / bottom[defined], level)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
