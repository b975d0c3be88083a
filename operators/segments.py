"""User segments: streaming k-means over hashed profile vectors, and what each segment is trending on.

One global operator sees each user at most once per update gap. For a profile vector x:
  - while fewer than k centroids exist, an x unlike every centroid seeds a new segment;
  - otherwise x joins its nearest centroid c of weight n by the streaming k-means rule with
    forgetting factor a (Spark's StreamingKMeans, one update as the time unit):
    every weight n <- n*a, then c <- (c*n + x) / (n + 1) and n <- n + 1;
  - unless merging the two segments cheapest to merge raises the k-means cost less than x joining would
    (Ward's criterion): then those two merge and x seeds a segment of its own. This undoes an
    unlucky seeding (two seeds in one true group, two groups sharing a centroid) and recycles a
    segment nobody joins any more, whose weight decays towards zero.
Each segment's trend counts the recent items of its users, with exponential decay.
"""
from __future__ import annotations

import math
import zlib
from typing import Iterable, Sequence

from config import SegmentConfig
from state_schemas.hops import SegmentAssignment, SegmentUpdate
from state_schemas.segments import SegmentModel
from state_schemas.state import DecayedScores
from state_schemas.units import HOUR_MS

from .decay import decay_factor, top_scores
from .steps import Step, StepContext
# Vectors closer than this (squared distance) are one point for seeding: a repeated profile must
# not take a second segment. Profile vectors are unit length, so this is far below any real difference.
SEED_EPSILON = 1e-9
# Keeps the weight of a segment nobody joins any more positive (zero would divide by zero in
# Ward's cost); such a segment costs nothing to merge, so the next vector needing room takes it.
MIN_WEIGHT = 1e-12


def profile_vector(affinities: Iterable[tuple[str, float]], dimensions: int) -> tuple[float, ...]:
    """Feature-hash (key, score) pairs into `dimensions` signed buckets, scaled to unit length.

    Keys carry their kind ("cat:12", "brand:acme", "price:p3") so every kind shares one vector.
    crc32 gives every process the same buckets; Python's hash() is salted per process.
    """
    vector = [0.0] * dimensions
    for key, score in affinities:
        if not math.isfinite(score):
            raise ValueError(f"affinity of {key!r} is not finite: {score!r}")
        h = zlib.crc32(key.encode("utf-8"))
        # The top bit picks a sign, so keys colliding in one bucket cancel on average instead of piling up.
        vector[h % dimensions] += score if h < 0x80000000 else -score
    largest = max(abs(v) for v in vector)
    if largest == 0.0:
        return (0.0,) * dimensions
    # Scaled to the largest entry first, so squaring tiny or huge scores cannot under- or overflow the norm.
    scaled = [v / largest for v in vector]
    norm = math.hypot(*scaled)
    return tuple(v / norm for v in scaled)


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((x - y) * (x - y) for x, y in zip(a, b, strict=True))


def nearest(model: SegmentModel, vector: Sequence[float]) -> int:
    """Index of the centroid at the least squared euclidean distance; ties go to the lowest index."""
    if not model.centroids:
        raise ValueError("the segment model has no centroids yet")
    distances = [_distance(c, vector) for c in model.centroids]
    return min(range(len(distances)), key=distances.__getitem__)


def _strongest(scores: dict[str, float], keep: int) -> dict[str, float]:
    # Sorted by score then item, so ties are cut the same way whatever order items arrived in;
    # scores that decayed to nothing are dropped rather than kept as zeros.
    ranked = sorted(((k, v) for k, v in scores.items() if v > 0.0), key=lambda kv: (-kv[1], kv[0]))
    return dict(ranked[:keep])


def _add_items(trend: DecayedScores, items: Iterable[str], now: int, half_life_ms: float,
               keep: int) -> DecayedScores:
    """Decay to `now` and add 1.0 per item; a late message adds decayed weight and leaves `at` alone."""
    if now >= trend.at:
        factor = decay_factor(now - trend.at, half_life_ms)
        scores = {item: score * factor for item, score in trend.scores.items()}
        weight, at = 1.0, now
    else:
        scores = dict(trend.scores)
        weight, at = decay_factor(trend.at - now, half_life_ms), trend.at
    for item in items:
        scores[item] = scores.get(item, 0.0) + weight
    return DecayedScores(at=at, scores=_strongest(scores, keep))


def _merge_trends(a: DecayedScores, b: DecayedScores, half_life_ms: float, keep: int) -> DecayedScores:
    at = max(a.at, b.at)
    scores: dict[str, float] = {}
    for trend in (a, b):
        factor = decay_factor(at - trend.at, half_life_ms)
        for item, score in trend.scores.items():
            scores[item] = scores.get(item, 0.0) + score * factor
    return DecayedScores(at=at, scores=_strongest(scores, keep))


def _cheapest_merge(centroids: Sequence[Sequence[float]], weights: Sequence[float]) -> tuple[float, int, int]:
    """Ward's cost n_i*n_j/(n_i+n_j) * |c_i - c_j|^2 of the pair cheapest to merge; ties go to the lowest pair."""
    return min((weights[i] * weights[j] / (weights[i] + weights[j]) * _distance(centroids[i], centroids[j]), i, j)
               for i in range(len(centroids)) for j in range(i + 1, len(centroids)))


def step(model: SegmentModel, message: SegmentUpdate, context: StepContext) -> Step:
    model, assignment = update_segments(model, message, context.config.segments)
    return Step(state=model, emit=(assignment,))


def update_segments(model: SegmentModel, message: SegmentUpdate,
                    config: SegmentConfig) -> tuple[SegmentModel, SegmentAssignment]:
    """Assign the user to a segment, move the model, and say what the segment is trending on.

    A zero vector (a user without a profile yet) has no position: nothing moves, and the user is
    shown what the heaviest segment likes (segment 0 with nothing trending before any seeding).
    """
    x = message.vector
    if len(x) != config.dimensions or not all(math.isfinite(v) for v in x):
        raise ValueError(f"segment update of {message.user_id!r} needs {config.dimensions} finite numbers, "
                         f"got {len(x)}")
    if model.centroids and (len(model.centroids[0]) != config.dimensions or len(model.centroids) > config.segments):
        # Restored under a changed config: the old centroids live in another space or are too many
        # to keep, and nothing maps them onto the new one, so the model is rebuilt from the stream.
        model = SegmentModel()
    keep = config.trend_items
    if not any(x):
        heaviest = max(range(len(model.weights)), key=model.weights.__getitem__, default=0)
        return model, SegmentAssignment(user_id=message.user_id, ts=message.ts, segment=heaviest,
                                        trend=top_scores(model.trends[heaviest], keep) if model.trends else ())
    half_life_ms = config.trend_half_life_hours * HOUR_MS
    centroids = list(model.centroids)
    weights = [max(w * config.decay, MIN_WEIGHT) for w in model.weights]
    trends = list(model.trends)
    fresh = DecayedScores(at=message.ts)

    segment = nearest(model, x) if centroids else -1  # an empty model always seeds (k >= 1) below
    join_distance = _distance(centroids[segment], x) if centroids else math.inf
    if len(centroids) < config.segments and join_distance > SEED_EPSILON:
        segment = len(centroids)
        centroids.append(tuple(x))
        weights.append(1.0)
        trends.append(_add_items(fresh, message.items, message.ts, half_life_ms, keep))
    else:
        merge = _cheapest_merge(centroids, weights) if len(centroids) > 1 else None
        n = weights[segment]
        if merge is not None and n / (n + 1.0) * join_distance > merge[0]:
            _, i, j = merge
            total = weights[i] + weights[j]
            centroids[i] = tuple((a * weights[i] + b * weights[j]) / total
                                 for a, b in zip(centroids[i], centroids[j]))
            weights[i] = total
            trends[i] = _merge_trends(trends[i], trends[j], half_life_ms, keep)
            segment = j
            centroids[j] = tuple(x)
            weights[j] = 1.0
            trends[j] = _add_items(fresh, message.items, message.ts, half_life_ms, keep)
        else:
            centroids[segment] = tuple((c * n + v) / (n + 1.0) for c, v in zip(centroids[segment], x))
            weights[segment] = n + 1.0
            trends[segment] = _add_items(trends[segment], message.items, message.ts, half_life_ms, keep)

    updated = SegmentModel(centroids=tuple(centroids), weights=tuple(weights), trends=tuple(trends),
                           updates=model.updates + 1)
    return updated, SegmentAssignment(user_id=message.user_id, ts=message.ts, segment=segment,
                                      trend=top_scores(trends[segment], keep))
