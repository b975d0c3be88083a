"""Input records: behaviour, order/logistics, erasure requests, feedback and catalogue items.

Wire format: one JSON object per Kafka record, with `"type"` naming the record and `"v"` its
schema version (1 when absent). Times are epoch milliseconds (UTC). Fields a record does not
know are ignored, so producers may add their own.
"""
from __future__ import annotations

import re
import typing
from typing import ClassVar, Literal, Union

import msgspec
from msgspec.structs import force_setattr

from . import codec
from .codec import EpochMs, Id, OptionalId, Record, Text
from .outputs import Channel
from .time_zones import is_known_zone

Behaviour = Literal["view", "click", "search", "cart", "purchase", "favourite"]
OrderStatus = Literal["placed", "paid", "shipped", "out_for_delivery", "delivered", "cancelled", "refunded",
                      "price_drop"]
FeedbackAction = Literal["delivered", "open", "click", "dismiss", "complained", "unsubscribe", "resubscribe"]
BEHAVIOURS = frozenset(typing.get_args(Behaviour))
ORDER_STATUSES = frozenset(typing.get_args(OrderStatus))
FEEDBACK_ACTIONS = frozenset(typing.get_args(FeedbackAction))

Price = typing.Annotated[float, msgspec.Meta(ge=0.0)]
Query = typing.Annotated[str, msgspec.Meta(max_length=512)]
Title = typing.Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Ids = typing.Annotated[tuple[Id, ...], msgspec.Meta(max_length=50)]
Stock = typing.Annotated[int, msgspec.Meta(ge=0)]


# Ids and names are printable: a NUL or an escape sequence in one is an attack or a bug upstream (and would
# reach keys, logs and copy). Other Unicode, right-to-left scripts and emoji among it, is welcome.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class InputRecord(Record, frozen=True, omit_defaults=True, tag_field="type"):
    """Ids given as numbers become strings; empty optional texts mean absent, for every reader alike."""

    IDS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    FREE_TEXT: ClassVar[tuple[str, ...]] = ()  # optional fields a shopper types: any character goes

    def __post_init__(self):
        self._check_version()
        for name in self.IDS:
            value = getattr(self, name)
            if type(value) is int:
                force_setattr(self, name, str(value))
            elif _CONTROL.search(value):
                raise ValueError(f"{self.WHAT}: field '{name}' holds a control character")
        for name in self.OPTIONAL:
            value = getattr(self, name)
            if type(value) is int:
                force_setattr(self, name, str(value))
            elif value == "":
                force_setattr(self, name, None)
            elif value is not None and name not in self.FREE_TEXT and _CONTROL.search(value):
                raise ValueError(f"{self.WHAT}: field '{name}' holds a control character")

    @property
    def routing_key(self) -> str:
        """Every input event is keyed by its shopper."""
        return self.user_id

    @property
    def event_time(self) -> int:
        return self.ts


class BehaviourEvent(InputRecord, frozen=True, tag="behaviour"):
    WHAT: ClassVar[str] = "behaviour event"
    IDS: ClassVar[tuple[str, ...]] = ("event_id", "user_id")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("item_id", "category_id", "brand", "session_id", "query")
    FREE_TEXT: ClassVar[tuple[str, ...]] = ("query",)

    event_id: Id
    user_id: Id
    behavior: Behaviour
    ts: EpochMs
    item_id: OptionalId = None  # absent only for searches
    category_id: OptionalId = None
    brand: Text | None = None
    price: Price | None = None
    session_id: OptionalId = None
    query: Query | None = None
    v: int = 1

    def __post_init__(self):
        if self.item_id == "" and self.behavior != "search":
            raise ValueError(f"{self.WHAT}: field 'item_id' must not be empty")
        super().__post_init__()
        if self.item_id is None and self.behavior != "search":
            raise ValueError(f"{self.WHAT}: missing required field 'item_id'")


class OrderEvent(InputRecord, frozen=True, tag="order"):
    """Order and logistics status changes; these lead to transactional notifications."""

    WHAT: ClassVar[str] = "order event"
    IDS: ClassVar[tuple[str, ...]] = ("event_id", "user_id", "order_id")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("carrier",)

    event_id: Id
    user_id: Id
    order_id: Id
    status: OrderStatus
    ts: EpochMs
    item_ids: Ids = ()
    carrier: Text | None = None
    v: int = 1

    def __post_init__(self):
        super().__post_init__()
        if any(type(item) is int for item in self.item_ids):
            force_setattr(self, "item_ids", tuple(str(item) for item in self.item_ids))


class ErasureRequest(InputRecord, frozen=True, tag="erase"):
    """A data-subject request: forget everything the job holds about this user."""

    WHAT: ClassVar[str] = "erasure request"
    IDS: ClassVar[tuple[str, ...]] = ("event_id", "user_id")

    event_id: Id
    user_id: Id
    ts: EpochMs
    v: int = 1


class FeedbackEvent(InputRecord, frozen=True, tag="feedback"):
    WHAT: ClassVar[str] = "feedback event"
    IDS: ClassVar[tuple[str, ...]] = ("event_id", "user_id")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("notification_id",)

    event_id: Id
    user_id: Id
    action: FeedbackAction
    ts: EpochMs
    notification_id: OptionalId = None  # absent for account-level (un)subscribes
    v: int = 1

    def __post_init__(self):
        if self.notification_id == "" and self.action not in ("unsubscribe", "resubscribe"):
            raise ValueError(f"{self.WHAT}: field 'notification_id' must not be empty")
        super().__post_init__()
        if self.notification_id is None and self.action not in ("unsubscribe", "resubscribe"):
            raise ValueError(f"{self.WHAT}: missing required field 'notification_id'")


class CatalogItem(InputRecord, frozen=True, tag="catalog"):
    WHAT: ClassVar[str] = "catalogue item"
    IDS: ClassVar[tuple[str, ...]] = ("item_id", "category_id")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("brand",)

    item_id: Id
    title: Title
    category_id: Id
    price: Price
    ts: EpochMs
    brand: Text | None = None
    tags: Ids = ()
    stock: Stock | None = None
    v: int = 1

    def __post_init__(self):
        super().__post_init__()
        if any(type(tag) is int for tag in self.tags):
            force_setattr(self, "tags", tuple(str(tag) for tag in self.tags))

    @property
    def routing_key(self) -> str:
        return self.item_id  # a catalogue record is keyed by its item, timed by its listing (`event_time`)


Purpose = Literal["marketing", "transactional"]
PURPOSES = frozenset(typing.get_args(Purpose))
# BCP 47 as shops use it: language, optional script, optional region ("zh-CN", "zh-Hant-TW", "en", "pt-BR").
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$"
LocaleTag = typing.Annotated[str, msgspec.Meta(pattern=LOCALE_PATTERN)]
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
ClockTime = typing.Annotated[str, msgspec.Meta(pattern=CLOCK_PATTERN)]  # "21:00"
Channels = typing.Annotated[tuple[Channel, ...], msgspec.Meta(max_length=8)]


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Local clock times; a window that ends before it starts runs over midnight (21:00-08:00)."""

    start: ClockTime
    end: ClockTime


class UserRecord(InputRecord, frozen=True, tag="user"):
    """A shopper's directory record, from the shop's account system: one per user on a compacted topic.

    Absent fields take the platform defaults of `directory` in the config; a record without
    `consent` grants transactional messages on its reachable channels and no marketing at all."""

    WHAT: ClassVar[str] = "user record"
    IDS: ClassVar[tuple[str, ...]] = ("user_id",)
    FORMATS: ClassVar[dict[str, str]] = {"locale": "a BCP 47 tag such as 'zh-CN' or 'en'",
                                         "quiet_hours.start": "a 24-hour clock time 'HH:MM'",
                                         "quiet_hours.end": "a 24-hour clock time 'HH:MM'"}

    user_id: Id
    ts: EpochMs  # when the account system wrote it: an older record never replaces a newer one
    time_zone: Text | None = None  # IANA, e.g. "Asia/Shanghai"
    locale: LocaleTag | None = None
    channels: Channels | None = None  # reachable: the shop holds a token, address or number
    consent: dict[Purpose, Channels] | None = None  # purpose -> channels the shopper agreed to
    quiet_hours: QuietHours | None = None  # the shopper's own, instead of the platform's
    v: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.time_zone is not None and not is_known_zone(self.time_zone):
            raise ValueError(f"{self.WHAT}: field 'time_zone' is {self.time_zone!r}, not an IANA time zone")


InputEvent = Union[BehaviourEvent, OrderEvent, ErasureRequest, FeedbackEvent]


def decode_event(raw: bytes | str) -> InputEvent:
    """Parse one record of the events topic; raises SchemaError with the reason."""
    return codec.decode(raw, InputEvent, "event")


def decode_catalog_item(raw: bytes | str) -> CatalogItem:
    return codec.decode(raw, CatalogItem, CatalogItem.WHAT)


def decode_user_record(raw: bytes | str) -> UserRecord:
    return codec.decode(raw, UserRecord, UserRecord.WHAT)


def encode(record) -> bytes:
    return codec.encode(record)
