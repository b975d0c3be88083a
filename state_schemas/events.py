"""Input records: behaviour, order/logistics, erasure requests, catalogue items and feedback.

Wire format: one JSON object per Kafka record, with `"type"` naming the record and `"v"` its
schema version. Times are epoch milliseconds (UTC).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from . import codec
from .codec import SchemaError

BEHAVIOURS = frozenset({"view", "click", "search", "cart", "purchase", "favourite"})
ORDER_STATUSES = frozenset({"placed", "paid", "shipped", "out_for_delivery", "delivered", "cancelled",
                            "refunded", "price_drop"})
FEEDBACK_ACTIONS = frozenset({"delivered", "open", "click", "dismiss", "unsubscribe", "resubscribe"})


@dataclass(frozen=True, slots=True)
class BehaviourEvent:
    VERSION = 1
    TYPE = "behaviour"

    event_id: str
    user_id: str
    behavior: str
    ts: int
    item_id: str | None = None  # absent only for searches
    category_id: str | None = None
    brand: str | None = None
    price: float | None = None
    session_id: str | None = None
    query: str | None = None

    @classmethod
    def from_dict(cls, obj: dict) -> "BehaviourEvent":
        what = "behaviour event"
        codec.require_version(obj, what, cls.VERSION)
        behavior = codec.choice(obj, "behavior", what, BEHAVIOURS)
        item_id = codec.text(obj, "item_id", what, required=behavior != "search")
        return cls(
            event_id=codec.text(obj, "event_id", what),
            user_id=codec.text(obj, "user_id", what),
            behavior=behavior,
            ts=codec.integer(obj, "ts", what),
            item_id=item_id,
            category_id=codec.text(obj, "category_id", what, required=False),
            brand=codec.text(obj, "brand", what, required=False),
            price=codec.number(obj, "price", what, minimum=0.0),
            session_id=codec.text(obj, "session_id", what, required=False),
            query=codec.text(obj, "query", what, required=False, max_len=512),
        )

    def to_dict(self) -> dict:
        out = {"v": self.VERSION, "type": self.TYPE, "event_id": self.event_id, "user_id": self.user_id,
               "behavior": self.behavior, "ts": self.ts}
        for name in ("item_id", "category_id", "brand", "price", "session_id", "query"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """Order and logistics status changes; these lead to transactional notifications."""

    VERSION = 1
    TYPE = "order"

    event_id: str
    user_id: str
    order_id: str
    status: str
    ts: int
    item_ids: tuple[str, ...] = ()
    carrier: str | None = None

    @classmethod
    def from_dict(cls, obj: dict) -> "OrderEvent":
        what = "order event"
        codec.require_version(obj, what, cls.VERSION)
        return cls(
            event_id=codec.text(obj, "event_id", what),
            user_id=codec.text(obj, "user_id", what),
            order_id=codec.text(obj, "order_id", what),
            status=codec.choice(obj, "status", what, ORDER_STATUSES),
            ts=codec.integer(obj, "ts", what),
            item_ids=codec.text_list(obj, "item_ids", what, max_items=50),
            carrier=codec.text(obj, "carrier", what, required=False),
        )

    def to_dict(self) -> dict:
        out = {"v": self.VERSION, "type": self.TYPE, "event_id": self.event_id, "user_id": self.user_id,
               "order_id": self.order_id, "status": self.status, "ts": self.ts, "item_ids": list(self.item_ids)}
        if self.carrier is not None:
            out["carrier"] = self.carrier
        return out


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """A data-subject request: forget everything the job holds about this user."""

    VERSION = 1
    TYPE = "erase"

    event_id: str
    user_id: str
    ts: int

    @classmethod
    def from_dict(cls, obj: dict) -> "ErasureRequest":
        what = "erasure request"
        codec.require_version(obj, what, cls.VERSION)
        return cls(event_id=codec.text(obj, "event_id", what), user_id=codec.text(obj, "user_id", what),
                   ts=codec.integer(obj, "ts", what))

    def to_dict(self) -> dict:
        return {"v": self.VERSION, "type": self.TYPE, "event_id": self.event_id, "user_id": self.user_id,
                "ts": self.ts}


@dataclass(frozen=True, slots=True)
class CatalogItem:
    VERSION = 1
    TYPE = "catalog"

    item_id: str
    title: str
    category_id: str
    price: float
    ts: int
    brand: str | None = None
    tags: tuple[str, ...] = ()
    stock: int | None = None

    @classmethod
    def from_dict(cls, obj: dict) -> "CatalogItem":
        what = "catalogue item"
        codec.require_version(obj, what, cls.VERSION)
        stock = codec.integer(obj, "stock", what, required=False)
        if stock is not None and stock < 0:
            raise SchemaError(f"{what}: field 'stock' must be >= 0, got {stock}")
        return cls(
            item_id=codec.text(obj, "item_id", what),
            title=codec.text(obj, "title", what, max_len=512),
            category_id=codec.text(obj, "category_id", what),
            price=codec.number(obj, "price", what, required=True, minimum=0.0),
            ts=codec.integer(obj, "ts", what),
            brand=codec.text(obj, "brand", what, required=False),
            tags=codec.text_list(obj, "tags", what, max_items=50),
            stock=stock,
        )

    def to_dict(self) -> dict:
        out = {"v": self.VERSION, "type": self.TYPE, "item_id": self.item_id, "title": self.title,
               "category_id": self.category_id, "price": self.price, "ts": self.ts, "tags": list(self.tags)}
        if self.brand is not None:
            out["brand"] = self.brand
        if self.stock is not None:
            out["stock"] = self.stock
        return out


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    VERSION = 1
    TYPE = "feedback"

    event_id: str
    user_id: str
    action: str
    ts: int
    notification_id: str | None = None  # absent for account-level (un)subscribes

    @classmethod
    def from_dict(cls, obj: dict) -> "FeedbackEvent":
        what = "feedback event"
        codec.require_version(obj, what, cls.VERSION)
        action = codec.choice(obj, "action", what, FEEDBACK_ACTIONS)
        return cls(
            event_id=codec.text(obj, "event_id", what),
            user_id=codec.text(obj, "user_id", what),
            action=action,
            ts=codec.integer(obj, "ts", what),
            notification_id=codec.text(obj, "notification_id", what,
                                       required=action not in ("unsubscribe", "resubscribe")),
        )

    def to_dict(self) -> dict:
        out = {"v": self.VERSION, "type": self.TYPE, "event_id": self.event_id, "user_id": self.user_id,
               "action": self.action, "ts": self.ts}
        if self.notification_id is not None:
            out["notification_id"] = self.notification_id
        return out


InputEvent = Union[BehaviourEvent, OrderEvent, ErasureRequest, FeedbackEvent]
_EVENT_TYPES = {cls.TYPE: cls for cls in (BehaviourEvent, OrderEvent, ErasureRequest, FeedbackEvent)}


def decode_event(raw: bytes | str) -> InputEvent:
    """Parse one record of the events topic; raises SchemaError with the reason."""
    obj = codec.loads_object(raw, "event")
    kind = obj.get("type")
    cls = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"event: unknown or missing 'type' {kind!r} (expected one of {sorted(_EVENT_TYPES)})")
    return cls.from_dict(obj)


def decode_catalog_item(raw: bytes | str) -> CatalogItem:
    return CatalogItem.from_dict(codec.loads_object(raw, "catalogue item"))


def encode(record) -> bytes:
    return codec.dumps(record.to_dict())
