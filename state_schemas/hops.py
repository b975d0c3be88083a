"""Every message that crosses a keyed edge between the job's stages, defined once.

A message names the stage it goes to (`DESTINATION`) and the key it is routed by
(`routing_key`); on the wire it is versioned JSON tagged by kind (`"k"`), so each stage decodes
its inputs with one tagged union and a message of the wrong kind fails loudly. Messages are
never kept in state, so only the version running now needs to read them.

    events ─► user-context (by user) ─► item-model (by item) ─► push-policy (by user)
                                      ├► segmenter (one instance) ─► push-policy
                                      ├► push-policy: orders, feedback, erasure
                                      └► windows: deduplicated behaviour
    catalog ─► catalog-terms (by item) ─► vocabulary (one instance) ─► item-model
    item-model ─► push-policy (by user): a watched item's price drop or restock, one per watcher
    user-context ─► item-model: an erased shopper leaves the watchers of the items in their history
    users ─► push-policy (by user): the directory record
"""
from __future__ import annotations

import typing
from typing import ClassVar, Literal, Union

import msgspec

from .codec import EpochMs, NonEmptyText, Record
from .events import BehaviourEvent, CatalogItem, ErasureRequest, FeedbackEvent, OrderEvent, UserRecord
from .state import ItemCard, Neighbour, UserSummary, Vector

# Stage names: the destinations of hop messages, and the uids of their Flink operators.
USER_CONTEXT = "user-context"
CATALOG_TERMS = "catalog-terms"
VOCABULARY = "weigh-catalog-terms"
ITEM_MODEL = "item-model"
SEGMENTER = "segment-users"
INTENT = "score-intent"
PUSH_POLICY = "push-policy"
WINDOWS = "windows"  # the windowed aggregations (Flink SQL), fed by the user context

SINGLE_INSTANCE_KEY = "global"  # the key of a stage that runs as one instance (one small global model)


class HopMessage(Record, frozen=True, omit_defaults=True, tag_field="k"):
    """A message about one shopper's event: routed by the shopper, timed by the event, unless it says otherwise."""

    DESTINATION: ClassVar[str]

    def __post_init__(self):
        self._check_version()

    @property
    def routing_key(self) -> str:
        return self.event.user_id

    @property
    def event_time(self) -> int:
        return self.event.ts


class ItemUpdate(HopMessage, frozen=True, tag="item-update"):
    """User context -> item model: one per accepted behaviour event with an item."""

    VERSION: ClassVar[int] = 4
    WHAT: ClassVar[str] = "item update"
    DESTINATION: ClassVar[str] = ITEM_MODEL

    event: BehaviourEvent = msgspec.field(name="e")
    history: tuple[tuple[str, str | None], ...] = msgspec.field(name="h")  # the user's recent (item, category)
    trigger: bool = msgspec.field(name="t")  # may this event lead to a marketing notification?
    summary: UserSummary | None = msgspec.field(default=None, name="s")  # only on triggers
    repeat: bool = msgspec.field(default=False, name="r")  # already among the recent items: no new co-occurrence
    user_factors: tuple[float, ...] = msgspec.field(default=(), name="mf")  # before this event's step; v3: none
    v: int = 4

    @property
    def routing_key(self) -> str:
        return self.event.item_id


class ListedItem(HopMessage, frozen=True, tag="listed-item"):
    """Vocabulary -> item model: a catalogue record with its TF-IDF vector."""

    WHAT: ClassVar[str] = "listed item"
    DESTINATION: ClassVar[str] = ITEM_MODEL

    item: CatalogItem = msgspec.field(name="i")
    vector: Vector = msgspec.field(name="vec")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return self.item.item_id

    @property
    def event_time(self) -> int:
        return self.item.ts


class TermChange(HopMessage, frozen=True, tag="term-change"):
    """Catalogue terms -> vocabulary: a catalogue record's term counts and how its term set changed
    since the item's last record, so each item counts as one document however often it is published."""

    WHAT: ClassVar[str] = "term change"
    DESTINATION: ClassVar[str] = VOCABULARY

    item: CatalogItem = msgspec.field(name="i")
    counts: dict[str, int] = msgspec.field(name="tf")  # term -> occurrences in this record
    added: tuple[str, ...] = msgspec.field(default=(), name="add")
    removed: tuple[str, ...] = msgspec.field(default=(), name="del")
    new_document: bool = msgspec.field(default=False, name="new")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return SINGLE_INSTANCE_KEY

    @property
    def event_time(self) -> int:
        return self.item.ts


class ItemSignal(HopMessage, frozen=True, tag="item-signal"):
    """Item model -> push policy: the event with the item's card, and on triggers its neighbours and the profile."""

    VERSION: ClassVar[int] = 2
    WHAT: ClassVar[str] = "item signal"
    DESTINATION: ClassVar[str] = PUSH_POLICY

    event: BehaviourEvent = msgspec.field(name="e")  # with the item's facts as the item model knows them
    card: ItemCard = msgspec.field(name="card")
    trigger: bool = msgspec.field(name="t")
    neighbours: tuple[Neighbour, ...] = msgspec.field(default=(), name="nb")
    summary: UserSummary | None = msgspec.field(default=None, name="s")
    v: int = 2


class WatchedItemChange(HopMessage, frozen=True, tag="watched-change"):
    """Item model -> push policy: an item the shopper watches got cheaper or is back in stock."""

    WHAT: ClassVar[str] = "watched item change"
    DESTINATION: ClassVar[str] = PUSH_POLICY

    user_id: NonEmptyText = msgspec.field(name="u")
    item_id: NonEmptyText = msgspec.field(name="i")
    change: Literal["price_drop", "back_in_stock"] = msgspec.field(name="c")
    ts: EpochMs  # the catalogue record's time
    card: ItemCard = msgspec.field(name="card")  # the item as the record left it
    was_price: float | None = msgspec.field(default=None, name="was")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return self.user_id

    @property
    def event_time(self) -> int:
        return self.ts


class ForgetWatcher(HopMessage, frozen=True, tag="forget-watcher"):
    """User context -> item model: an erased shopper is no longer told of the item."""

    WHAT: ClassVar[str] = "forget watcher"
    DESTINATION: ClassVar[str] = ITEM_MODEL

    user_id: NonEmptyText = msgspec.field(name="u")
    item_id: NonEmptyText = msgspec.field(name="i")
    ts: EpochMs
    v: int = 1

    @property
    def routing_key(self) -> str:
        return self.item_id

    @property
    def event_time(self) -> int:
        return self.ts


class SegmentUpdate(HopMessage, frozen=True, tag="segment-update"):
    """User context -> segmenter: the user's profile vector and recent items, at most once per update gap."""

    WHAT: ClassVar[str] = "segment update"
    DESTINATION: ClassVar[str] = SEGMENTER

    user_id: NonEmptyText = msgspec.field(name="u")
    ts: EpochMs
    vector: tuple[float, ...] = msgspec.field(name="x")
    items: typing.Annotated[tuple[NonEmptyText, ...], msgspec.Meta(max_length=10_000)] = msgspec.field(
        default=(), name="i")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return SINGLE_INSTANCE_KEY

    @property
    def event_time(self) -> int:
        return self.ts


class SegmentAssignment(HopMessage, frozen=True, tag="segment"):
    """Segmenter -> push policy: the user's segment and its trend, strongest item first and scored 1.0."""

    WHAT: ClassVar[str] = "segment assignment"
    DESTINATION: ClassVar[str] = PUSH_POLICY

    user_id: NonEmptyText = msgspec.field(name="u")
    ts: EpochMs
    segment: typing.Annotated[int, msgspec.Meta(ge=0)] = msgspec.field(name="s")
    trend: tuple[tuple[NonEmptyText, float], ...] = msgspec.field(default=(), name="t")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return self.user_id

    @property
    def event_time(self) -> int:
        return self.ts


class AccountEvent(HopMessage, frozen=True, tag="account"):
    """User context -> push policy: an order, feedback or erasure, which skip the item model."""

    WHAT: ClassVar[str] = "account event"
    DESTINATION: ClassVar[str] = PUSH_POLICY

    event: Union[OrderEvent, FeedbackEvent, ErasureRequest] = msgspec.field(name="e")
    v: int = 1


class DirectoryRecord(HopMessage, frozen=True, tag="directory"):
    """Admitted user directory record -> push policy, which keeps it durably."""

    WHAT: ClassVar[str] = "directory record"
    DESTINATION: ClassVar[str] = PUSH_POLICY

    event: UserRecord = msgspec.field(name="e")
    v: int = 1


class IntentExample(HopMessage, frozen=True, tag="intent-example"):
    """User context -> intent model: a behaviour event's features to score (none: a timer's labels only), and
    the (features, label) pairs of the shopper's earlier events that became known."""

    WHAT: ClassVar[str] = "intent example"
    DESTINATION: ClassVar[str] = INTENT

    user_id: NonEmptyText = msgspec.field(name="u")
    ts: EpochMs
    x: tuple[float, ...] | None = None
    learned: tuple[tuple[tuple[float, ...], bool], ...] = msgspec.field(default=(), name="l")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return SINGLE_INSTANCE_KEY

    @property
    def event_time(self) -> int:
        return self.ts


class IntentScore(HopMessage, frozen=True, tag="intent"):
    """Intent model -> push policy: P(the shopper carts or buys within the horizon), right after their event."""

    WHAT: ClassVar[str] = "intent score"
    DESTINATION: ClassVar[str] = PUSH_POLICY

    user_id: NonEmptyText = msgspec.field(name="u")
    ts: EpochMs
    probability: typing.Annotated[float, msgspec.Meta(ge=0, le=1)] = msgspec.field(name="p")
    v: int = 1

    @property
    def routing_key(self) -> str:
        return self.user_id

    @property
    def event_time(self) -> int:
        return self.ts


class AcceptedBehaviour(HopMessage, frozen=True, tag="accepted"):
    """User context -> windows: a behaviour event that passed dedup, for trending and behaviour counts."""

    WHAT: ClassVar[str] = "accepted behaviour"
    DESTINATION: ClassVar[str] = WINDOWS

    event: BehaviourEvent = msgspec.field(name="e")
    v: int = 1


# What each stage decodes: one tagged union per stage, so no kind field travels beside the payload.
TO_ITEM_MODEL = Union[ItemUpdate, ListedItem, ForgetWatcher]
TO_PUSH_POLICY = Union[ItemSignal, SegmentAssignment, AccountEvent, DirectoryRecord, WatchedItemChange, IntentScore]
HOP_MESSAGES = (ItemUpdate, ListedItem, TermChange, ItemSignal, SegmentUpdate, SegmentAssignment, AccountEvent,
                DirectoryRecord, AcceptedBehaviour, WatchedItemChange, ForgetWatcher, IntentExample, IntentScore)
