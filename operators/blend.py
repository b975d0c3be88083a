"""A learned blend: the scorer's signals as features of a logistic regression (operators.ftrl) that says
how likely a candidate is the item the shopper carts or buys next, trained on those outcomes.

`candidates` asks the scorer for every candidate any signal supports (all weights 1, so none is
dropped for a zero hand-set weight) with its raw signals; `rescore` orders them by the model, with the
same diversity penalty; `learn` trains on one outcome: the chosen item as a positive, when it was a
candidate, and the `negatives` candidates the model ranked highest among the rest as negatives (the
mistakes that matter for a top-k). One model for all shoppers: a shopper's own outcomes are too few.
"""
from __future__ import annotations

import dataclasses

from config import JobConfig, ScoringConfig
from config.learning import BlendConfig
from state_schemas.hops import ItemSignal
from state_schemas.state import FtrlModel, PushState

from . import ftrl
from .scorer import SIGNALS, Scored, diversify, rank
from .steps import SideInputs

EVERY_SIGNAL = {f"weight_{signal}": 1.0 for signal in SIGNALS}


def _every_signal(scoring: ScoringConfig) -> ScoringConfig:
    return dataclasses.replace(scoring, diversity_penalty=0.0, **EVERY_SIGNAL)


def features(entry: Scored) -> tuple[float, ...]:
    return (1.0, *entry.signals)


def candidates(signal: ItemSignal, state: PushState, side: SideInputs, now: int, config: JobConfig,
               with_trigger: bool) -> list[Scored]:
    return rank(signal, state, side, now, _every_signal(config.scoring), config.policy, with_trigger=with_trigger)


def rescore(entries: list[Scored], model: FtrlModel, blend: BlendConfig, diversity_penalty: float) -> list[Scored]:
    scored = [dataclasses.replace(e, score=ftrl.predict(model, features(e), blend)) for e in entries]
    return diversify(scored, diversity_penalty)


def learn(model: FtrlModel, entries: list[Scored], chosen: str, blend: BlendConfig) -> FtrlModel:
    positive = [e for e in entries if e.item_id == chosen]
    others = sorted((e for e in entries if e.item_id != chosen),
                    key=lambda e: (-ftrl.predict(model, features(e), blend), e.item_id))[:blend.negatives]
    for entry in positive:
        model = ftrl.learn(model, features(entry), True, blend)
    for entry in others:
        model = ftrl.learn(model, features(entry), False, blend)
    return model
