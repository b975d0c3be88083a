"""Who is in the holdout and which variant of each experiment a shopper gets.

A salted hash of the user id, so the same on every instance, after restarts and at any parallelism, with
nothing kept in state; a salt per experiment keeps experiments independent of each other and of the holdout."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from config import JobConfig
from config.experiments import ExperimentsConfig

HOLDOUT = "holdout"  # the experiment an exposure names when its shopper is in the global holdout


@dataclass(frozen=True)
class Assignment:
    holdout: bool
    variants: tuple[tuple[str, str], ...] = ()  # (experiment, variant), by experiment name


def unit_interval(salt: str, user_id: str) -> float:
    """A point in [0, 1) for the shopper under this salt: the first 64 bits of a SHA-256."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def variant_of(user_id: str, experiment) -> str | None:
    """The shopper's variant, by weight among the experiment's traffic (variants in name order, each taking its
    share of [0, traffic)); None outside its traffic."""
    traffic = experiment.get("traffic", 1.0)
    point = unit_interval(experiment["salt"], user_id)
    if point >= traffic:
        return None
    # By name, not as the mapping lists them: a config written back as YAML has its keys sorted.
    names = sorted(experiment["variants"])
    weights = [experiment["variants"][name].get("weight", 1.0) for name in names]
    mark, reached = point / traffic * sum(weights), 0.0
    for name, weight in zip(names, weights):
        reached += weight
        if mark < reached:
            return name
    return names[-1]  # the sum's rounding left a sliver past the last bound


def assign(user_id: str, section: ExperimentsConfig) -> Assignment:
    pairs = ((name, variant_of(user_id, experiment)) for name, experiment in sorted(section.tests.items()))
    return Assignment(holdout=unit_interval(section.holdout_salt, user_id) < section.holdout_share,
                      variants=tuple((name, variant) for name, variant in pairs if variant is not None))


def deciding_config(user_id: str, config: JobConfig) -> JobConfig:
    """The config that decides this shopper's messages: the base one as their variants change it."""
    return config.for_variants(assign(user_id, config.experiments).variants) if config.experiments.tests else config
