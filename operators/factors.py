"""Incremental matrix factorisation for implicit feedback, in the stream (ISGD, Vinagre et al. 2014,
with negatives sampled on the user's side).

Each behaviour event (u, i) is one SGD step on the squared error of a positive, 1 - p_u . q_i:
the user context moves p_u with the item's factors q_i read from its card, and away from a few
negatives (items of the global trending list, so sampled by popularity; target 0); the item model
moves q_i with p_u as it was before the step, which the item update carries. Item factors reach
other keys on the item cards, user factors reach the scorer with the trigger. Factors start from a
seeded draw of the key, the same on every instance and after every replay. Work per event: one dot
product per factor vector touched, 1 + negatives of them.
"""
from __future__ import annotations

import hashlib
import random

from config.learning import FactorsConfig

Factors = tuple[float, ...]
SQRT3 = 3 ** 0.5  # a uniform on [-a, a] has standard deviation a / sqrt(3)


def initial(key: str, config: FactorsConfig) -> Factors:
    """Small seeded factors, uniform with standard deviation `init_scale`: the same for a key everywhere, so
    no instance has to ask another. Two bytes of a hash of the key per factor (one hash call: most keys of
    a real stream are new, so this is on the hot path)."""
    raw = hashlib.shake_128(key.encode()).digest(2 * config.factors)
    half_width = config.init_scale * SQRT3
    return tuple((int.from_bytes(raw[i:i + 2], "big") / 32767.5 - 1.0) * half_width
                 for i in range(0, len(raw), 2))


def dot(p: Factors, q: Factors) -> float:
    return sum(a * b for a, b in zip(p, q))


def _step(p: Factors, q: Factors, target: float, config: FactorsConfig) -> Factors:
    error = target - dot(p, q)
    rate, reg = config.learning_rate, config.regularization
    return tuple(a + rate * (error * b - reg * a) for a, b in zip(p, q))


def user_step(p: Factors, positive: Factors, negatives: list[Factors], config: FactorsConfig) -> Factors:
    """The user's factors after one positive and its negatives."""
    p = _step(p, positive, 1.0, config)
    for q in negatives:
        p = _step(p, q, 0.0, config)
    return p


def item_step(q: Factors, p: Factors, config: FactorsConfig) -> Factors:
    """The item's factors after one positive, with the user's factors as they were before it."""
    return _step(q, p, 1.0, config)


def negatives_for(event_id: str, pool: list[str], exclude: set[str], count: int) -> list[str]:
    """`count` distinct items of `pool` not in `exclude`, chosen by a seeded draw of the event id, so a
    replay samples the same ones from the same pool."""
    candidates = [item for item in pool if item not in exclude]
    if len(candidates) <= count:
        return candidates
    seed = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")
    return random.Random(seed).sample(candidates, count)
