"""Top-k quality measures for a prequential replay: each target is scored before it is learned."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


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

    def add(self, ranked: list[str], target: str) -> None:
        self.targets += 1
        self.hits += hit_at_k(ranked, target, self.k)
        self.gain += ndcg_at_k(ranked, target, self.k)
        self.recommended.update(ranked[: self.k])

    @property
    def hit_rate(self) -> float:
        return self.hits / self.targets if self.targets else 0.0

    @property
    def ndcg(self) -> float:
        return self.gain / self.targets if self.targets else 0.0

    def coverage(self, catalogue_size: int) -> float:
        """Share of the items seen in the log that this recommender ever put in a top k."""
        return len(self.recommended) / catalogue_size if catalogue_size else 0.0
