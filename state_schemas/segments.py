"""The segmenter's global model: one centroid, decayed weight and item trend per segment.

It is the one piece of global state, so decoding checks its shape as well as its types: a
damaged model must fail loudly at restore, not poison every later assignment.
"""
from __future__ import annotations

from typing import ClassVar

import msgspec

from .state import DecayedScores, State


class SegmentModel(State, frozen=True):
    """Streaming k-means over profile vectors."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "segment model state"

    centroids: tuple[tuple[float, ...], ...] = msgspec.field(default=(), name="c")  # empty until seeded
    weights: tuple[float, ...] = msgspec.field(default=(), name="w")  # decayed count of vectors per centroid
    trends: tuple[DecayedScores, ...] = msgspec.field(default=(), name="t")  # what each segment's users liked
    updates: int = msgspec.field(default=0, name="n")
    v: int = 1

    def __post_init__(self):
        super().__post_init__()
        damaged = f"{self.WHAT} is damaged"
        centroids, weights, trends = self.centroids, self.weights, self.trends
        problems = [
            (len({len(c) for c in centroids}) > 1, "centroids differ in dimension"),
            (any(not c for c in centroids), "a centroid is an empty vector"),
            (len(weights) != len(centroids) or len(trends) != len(centroids),
             f"{len(centroids)} centroids, {len(weights)} weights, {len(trends)} trends"),
            (any(w <= 0 for w in weights), "weights must be > 0"),
            (self.updates < 0, f"updates must be an integer >= 0, got {self.updates!r}"),
        ]
        for broken, reason in problems:
            if broken:
                raise ValueError(f"{damaged}: {reason}")
