"""What every core step returns, and the effects it may ask for.

A stage's step is a plain function `(state, message, context) -> Step`. The Flink shell (and the
Flink-free `LocalPipeline`) then does exactly what the Step says and nothing else: store or
clear the state, delete and register the timers, count the counters, carry out the effects in order, and
send each emitted message to its destination (`message.DESTINATION`, keyed by
`message.routing_key`). Every decision is in the step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Iterable, Mapping, Protocol, TypeVar

import msgspec

from config import JobConfig
from state_schemas.outputs import Notification
from state_schemas.state import ItemCard, Neighbour

S = TypeVar("S")

CLEAR = None  # a Step whose state is CLEAR deletes the key's state
END_OF_STREAM = 2 ** 63 - 1  # an event-time timer here fires only when a bounded input ends


class Step(msgspec.Struct, Generic[S], frozen=True):
    state: S | None  # the key's new state; None clears it
    emit: tuple = ()  # hop messages and notifications, in the order they are sent
    effects: tuple = ()  # writes to the serving store, in order
    timers: tuple[int, ...] = ()  # event-time timers to register for this key
    cancelled_timers: tuple[int, ...] = ()  # event-time timers of this key to delete (before registering `timers`)
    counts: tuple[str, ...] = ()  # counters to increment, one name per occurrence


class SideInputs(Protocol):
    """What a step may read of other keys. Item facts, trending lists and new listings are read as of an event
    time `at`, as stages upstream of the reader wrote them by then (deterministic: the keyed stages see their
    records in event-time order, `jobs/ordering.py`); cards (counts) and the population's best hour as they
    stand."""

    def cards(self, items: Iterable[str], fresh: bool = False) -> Mapping[str, ItemCard]:
        """Cards of those items that have one; `fresh` skips caches (other instances' latest counts)."""

    def facts(self, items: Iterable[str], at: int) -> Mapping[str, ItemCard]:
        """The facts of those items known at `at` (category, title, price, stock, vector; no counts)."""

    def trending(self, category: str | None, at: int) -> list[tuple[str, float]]:
        """The category's then the global list of the last window ended at or before `at`, strongest first."""

    def arrivals(self, category: str | None, at: int) -> list[str]:
        """The category's newest catalogue listings at `at` (listed then or before), newest first."""

    def population_best_hour(self, min_shoppers: int) -> int | None:
        """The local hour most shoppers with a best hour of their own have; None while fewer than
        `min_shoppers` have one."""


@dataclass(frozen=True, slots=True)
class StepContext:
    now: int  # processing time, epoch ms: when this step runs (event time is in the message)
    side: SideInputs
    config: JobConfig


# ------------------------------------------------------------------------------------------ effects
# Each effect is idempotent: replaying it after a failure writes the same values again. COUNTER names
# the Flink counter of the writes it makes.

@dataclass(frozen=True, slots=True)
class PublishCard:
    """Share an item's card with the other keys (batched and cached by the store)."""

    COUNTER: ClassVar[str] = "card_writes"

    item_id: str
    card: ItemCard


@dataclass(frozen=True, slots=True)
class ListNewArrival:
    """A newly listed item joins its category's newest listings, which keep the newest `keep`."""

    COUNTER: ClassVar[str] = "arrival_writes"

    item_id: str
    category_id: str
    listed_at: int
    keep: int


FACTS_KEPT = 8  # versions of an item's facts kept: a reader further behind than that finds none


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """An item's facts changed at event time `at`: kept beside the earlier versions, so a decision at any time
    reads them as they were then (written at once, before the item's stage lets event time pass `at`)."""

    COUNTER: ClassVar[str] = "facts_writes"

    item_id: str
    facts: ItemCard  # the card without counts, popularity or factors
    at: int


@dataclass(frozen=True, slots=True)
class PublishNeighbours:
    """Replace an item's served top-K neighbours."""

    COUNTER: ClassVar[str] = "neighbour_writes"

    item_id: str
    neighbours: tuple[Neighbour, ...]


@dataclass(frozen=True, slots=True)
class StoreInInbox:
    """Add a notification to the user's inbox, then trim it to the newest `keep` (their bodies too)."""

    COUNTER: ClassVar[str] = "inbox_writes"

    index_key: str  # sorted set: notification id by source event time
    body_key: str  # hash: notification id -> JSON
    notification: Notification
    keep: int
    ttl_s: int


@dataclass(frozen=True, slots=True)
class ReplaceValue:
    """Replace a served JSON value (a profile) as a whole."""

    COUNTER: ClassVar[str] = "serving_writes"

    key: str
    value: Mapping
    ttl_s: int


@dataclass(frozen=True, slots=True)
class ReplaceRanking:
    """Replace a served ranking as a whole: a sorted set of scores and a hash of reasons beside it."""

    COUNTER: ClassVar[str] = "serving_writes"

    key: str
    reasons_key: str
    entries: tuple[tuple[str, float, str], ...]  # (item, score, reason), best first
    ttl_s: int


@dataclass(frozen=True, slots=True)
class DeleteKeys:
    """Delete these keys and every key matching these patterns (an erasure)."""

    COUNTER: ClassVar[str] = "erasure_writes"

    keys: tuple[str, ...]
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MarkErased:
    """Note when a pseudonym was erased, for `ttl_s`: a window still open then, holding the shopper's events
    from before, is not written when it closes. The mark holds the time and nothing else."""

    COUNTER: ClassVar[str] = "erasure_writes"

    key: str
    at: int
    ttl_s: int


@dataclass(frozen=True, slots=True)
class VoteBestHour:
    """The shopper's own best local hour counts towards the population's (None: their vote is withdrawn,
    an erasure); every vote older than `kept_ms` before `at` is dropped."""

    COUNTER: ClassVar[str] = "best_hour_votes"

    user: str  # pseudonym
    hour: int | None
    at: int
    kept_ms: int


def emitted(step: Step, kind: type) -> list:
    """The messages of one kind a step emitted, in order."""
    return [message for message in step.emit if isinstance(message, kind)]
