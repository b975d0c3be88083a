"""Logistic regression trained online by FTRL-Proximal (McMahan et al., 2013): two numbers per feature
(z, n) in a small record, per-coordinate learning rates, optional L1 sparsity. Used by the purchase
intent model and the learned blend; `params` is their config section (ftrl_alpha, _beta, _l1, _l2).
"""
from __future__ import annotations

import math

from state_schemas.state import FtrlModel


def weights(model: FtrlModel, params) -> list[float]:
    alpha, beta, l1, l2 = params.ftrl_alpha, params.ftrl_beta, params.ftrl_l1, params.ftrl_l2
    out = []
    for z, n in zip(model.z, model.n):
        if abs(z) <= l1:
            out.append(0.0)
        else:
            out.append(-(z - math.copysign(l1, z)) / ((beta + math.sqrt(n)) / alpha + l2))
    return out


def predict(model: FtrlModel, x: tuple[float, ...], params) -> float:
    if not model.z:
        return _sigmoid(0.0)
    return _sigmoid(sum(w * v for w, v in zip(weights(model, params), x)))


def learn(model: FtrlModel, x: tuple[float, ...], label: bool, params) -> FtrlModel:
    """One FTRL-Proximal step on one example (logistic loss)."""
    alpha = params.ftrl_alpha
    z = list(model.z) or [0.0] * len(x)
    n = list(model.n) or [0.0] * len(x)
    w = weights(FtrlModel(tuple(z), tuple(n)), params)
    error = _sigmoid(sum(wi * v for wi, v in zip(w, x))) - (1.0 if label else 0.0)
    for i, v in enumerate(x):
        g = error * v
        sigma = (math.sqrt(n[i] + g * g) - math.sqrt(n[i])) / alpha
        z[i] += g - sigma * w[i]
        n[i] += g * g
    return FtrlModel(tuple(z), tuple(n), model.examples + 1)


def _sigmoid(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)
