"""Exponential decay in O(1) state: s <- s * exp(-lambda * dt) + w, lambda = ln 2 / half-life."""
from __future__ import annotations

import math

from state_schemas.state import DecayedScores

LN2 = math.log(2.0)


def decay_factor(dt_ms: float, half_life_ms: float) -> float:
    return math.exp(-LN2 * dt_ms / half_life_ms) if dt_ms > 0 else 1.0


def decayed_add(value: float, at: int, weight: float, now: int, half_life_ms: float) -> tuple[float, int]:
    """Add `weight` observed at `now` to a score last updated at `at`; late events never move time back."""
    if now >= at:
        return value * decay_factor(now - at, half_life_ms) + weight, now
    return value + weight * decay_factor(at - now, half_life_ms), at


def decayed_value(value: float, at: int, now: int, half_life_ms: float) -> float:
    return value * decay_factor(now - at, half_life_ms)


def add_to_scores(scores: DecayedScores, key: str, weight: float, now: int, half_life_ms: float,
                  max_keys: int) -> DecayedScores:
    """Decay every score to a common time, add one observation, keep the strongest `max_keys`."""
    if now >= scores.at:
        factor = decay_factor(now - scores.at, half_life_ms)
        updated = {k: v * factor for k, v in scores.scores.items()}
        updated[key] = updated.get(key, 0.0) + weight
        at = now
    else:
        updated = dict(scores.scores)
        updated[key] = updated.get(key, 0.0) + weight * decay_factor(scores.at - now, half_life_ms)
        at = scores.at
    if len(updated) > max_keys:
        updated = dict(sorted(updated.items(), key=lambda kv: kv[1], reverse=True)[:max_keys])
    return DecayedScores(at=at, scores=updated)


def top_scores(scores: DecayedScores, n: int) -> tuple[tuple[str, float], ...]:
    """The n strongest entries, normalised so the strongest is 1.0 (decay cancels out)."""
    if not scores.scores:
        return ()
    ranked = sorted(scores.scores.items(), key=lambda kv: kv[1], reverse=True)[:n]
    top = ranked[0][1] or 1.0
    return tuple((key, round(value / top, 4)) for key, value in ranked)
