"""Keyed state records: what each keyed operator keeps per key, and the item card it publishes.

Each is stored as compact JSON with a version `v`, never as a pickle, so a savepoint written by
one release restores under the next: fields keep their short wire names, fields added since an
earlier version read as empty, and a version this release does not know is refused loudly.
"""
from __future__ import annotations

from typing import ClassVar

import msgspec
from msgspec.structs import force_setattr

from .codec import TextRecord
from .events import BehaviourEvent, FeedbackEvent, OrderEvent

Pairs = tuple[tuple[str, float], ...]  # (key, score), strongest first
Vector = tuple[tuple[str, float], ...]  # sparse (term, weight), unit length


class State(TextRecord, frozen=True):
    """Keyed state: a ValueState of strings (JSON), as every release has stored it."""

    DAMAGE_WORDS: ClassVar[bool] = True

    def __post_init__(self):
        self._check_version()
        if self.v < self.VERSION:
            self._upgrade()
            force_setattr(self, "v", self.VERSION)

    def _upgrade(self) -> None:
        """Bring a record of an earlier version up to this one; fields added since are empty already."""

    @classmethod
    def decode(cls, raw: bytes | str | None):
        """None (no state yet for this key) decodes to the empty record."""
        return cls() if raw is None else super().decode(raw)


class DecayedScores(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Scores that all decay from one shared timestamp `at` (epoch ms); on the wire [at, {key: score}]."""

    at: int = 0
    scores: dict[str, float] = {}

    def to_list(self) -> list:
        return [self.at, self.scores]

    @classmethod
    def from_list(cls, raw: list) -> "DecayedScores":
        return cls(at=int(raw[0]), scores=dict(raw[1]))


class DecayedValue(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One decayed score and the time it was last moved to: [value, at]."""

    value: float = 0.0
    at: int = 0


class HistoryEntry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    item_id: str
    category_id: str | None
    behavior: str
    ts: int


class UserContext(State, frozen=True):
    """User-keyed state of the first hop: dedup window, recent items, the decayed behaviour profile."""

    VERSION: ClassVar[int] = 4
    WHAT: ClassVar[str] = "user context state"

    seen: dict[str, int] = {}  # event id -> event time
    history: tuple[HistoryEntry, ...] = msgspec.field(default=(), name="h")
    category_affinity: DecayedScores = msgspec.field(default=DecayedScores(), name="aff")
    purchased: tuple[str, ...] = msgspec.field(default=(), name="bought")
    last_trigger_ts: int | None = msgspec.field(default=None, name="trig")
    # v1 had no brand, price, hour or last-purchase profile: they start empty.
    brand_affinity: DecayedScores = msgspec.field(default=DecayedScores(), name="brand")
    price_affinity: DecayedScores = msgspec.field(default=DecayedScores(), name="price")  # by price band
    active_hours: DecayedScores = msgspec.field(default=DecayedScores(), name="hours")  # "0".."23", UTC hour
    last_purchase: dict[str, tuple[str, int]] = msgspec.field(default={}, name="lastbuy")  # category -> (item, ts)
    last_segment_ts: int | None = msgspec.field(default=None, name="seg")
    # v2 had no factors: they start from the seeded draw at the next event.
    factors: tuple[float, ...] = msgspec.field(default=(), name="mf")
    # v3 had no purchase intent: activity and examples start empty.
    intent: "IntentActivity" = msgspec.field(default_factory=lambda: IntentActivity(), name="int")
    intent_pending: tuple["PendingIntent", ...] = msgspec.field(default=(), name="ipend")  # unlabelled, oldest first
    v: int = 4


class Neighbour(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    item_id: str
    category_id: str | None
    similarity: float


class CoCount(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """How often another item was visited in one user's recent history with this one, and its category."""

    count: int
    category_id: str | None


class ItemCard(State, frozen=True):
    """What other keys may know of an item: published by its item hop, read through a cache.

    Counts are absolute values, so rewriting a card after a replay is idempotent."""

    VERSION: ClassVar[int] = 3
    WHAT: ClassVar[str] = "item card"

    interactions: int = msgspec.field(default=0, name="n")
    popularity: DecayedValue = msgspec.field(default=DecayedValue(), name="pop")
    category_id: str | None = msgspec.field(default=None, name="cat")
    title: str | None = msgspec.field(default=None, name="t")
    in_stock: bool = msgspec.field(default=True, name="s")  # an item without a catalogue record is available
    vector: Vector = msgspec.field(default=(), name="vec")  # TF-IDF terms, unit length
    listed_at: int | None = msgspec.field(default=None, name="l")  # catalogue time; None: known from events only
    price: float | None = msgspec.field(default=None, name="p")  # v1 had none: unknown until the next write
    factors: tuple[float, ...] = msgspec.field(default=(), name="mf")  # v2 had none: learned from the next event
    v: int = 3


class Watch(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An item a shopper showed interest in: their strongest behaviour on it, when last, the price then."""

    behavior: str
    at: int
    price: float | None = None


class CatalogChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A price drop or restock the item's catalogue record made: kept a while, so a shopper whose earlier
    view is read only after the record (a replay reads the small catalogue first) is still told."""

    change: str = msgspec.field(name="c")  # "price_drop" or "back_in_stock"
    ts: int  # the catalogue record's time
    card: ItemCard = msgspec.field(name="card")  # the item as the record left it, without its content vector
    was_price: float | None = msgspec.field(default=None, name="was")


class ItemModel(State, frozen=True):
    """Item-keyed state: catalogue join, decayed popularity, co-occurrence row, top-K neighbours, and the
    shoppers watching its price and stock."""

    VERSION: ClassVar[int] = 5
    WHAT: ClassVar[str] = "item model state"

    category_id: str | None = msgspec.field(default=None, name="cat")
    price: float | None = None
    interactions: int = msgspec.field(default=0, name="n")
    popularity: DecayedValue = msgspec.field(default=DecayedValue(), name="pop")
    row: dict[str, CoCount] = {}  # other item -> co-occurrence
    # v1 had no catalogue facts and no neighbour list: both fill in as events and records arrive.
    title: str | None = msgspec.field(default=None, name="t")
    brand: str | None = msgspec.field(default=None, name="b")
    stock: int | None = msgspec.field(default=None, name="s")
    listed_at: int | None = msgspec.field(default=None, name="l")  # catalogue record joined; None if none yet
    vector: Vector = msgspec.field(default=(), name="vec")
    neighbours: tuple[Neighbour, ...] = msgspec.field(default=(), name="nb")  # top-K as of the last refresh
    # v2 had no watchers: they fill in as shoppers view, cart and favourite the item.
    watchers: dict[str, Watch] = msgspec.field(default={}, name="w")  # user -> interest, told of price and stock
    # v3 kept no changes: a watcher read late is told of the changes made from v4 on.
    changes: tuple[CatalogChange, ...] = msgspec.field(default=(), name="chg")  # newest last
    # v4 had no factors: they start from the seeded draw at the next event.
    factors: tuple[float, ...] = msgspec.field(default=(), name="mf")
    v: int = 5

    def card(self) -> ItemCard:
        return ItemCard(interactions=self.interactions, popularity=self.popularity, category_id=self.category_id,
                        title=self.title, in_stock=self.stock != 0, vector=self.vector, listed_at=self.listed_at,
                        price=self.price, factors=self.factors)

    def facts(self) -> ItemCard:
        """The card without what every event moves (counts, popularity, factors): what decisions read as of a time."""
        return ItemCard(category_id=self.category_id, title=self.title, in_stock=self.stock != 0, vector=self.vector,
                        listed_at=self.listed_at, price=self.price)


class RecentSend(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An item notified to the user: when, and its category (for the diversity penalty)."""

    at: int
    category_id: str | None = None


class UserSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    """The first user hop's profile, sent along with a trigger: what scoring and serving need of it."""

    categories: Pairs = msgspec.field(default=(), name="c")  # normalised so the strongest is 1.0
    brands: Pairs = msgspec.field(default=(), name="b")
    price_bands: Pairs = msgspec.field(default=(), name="p")
    active_hours: Pairs = msgspec.field(default=(), name="h")
    purchased: tuple[str, ...] = msgspec.field(default=(), name="x")
    recent: tuple[str, ...] = msgspec.field(default=(), name="r")  # recent distinct items, newest last
    last_purchase: dict[str, tuple[str, int]] = msgspec.field(default={}, name="lb")
    factors: tuple[float, ...] = msgspec.field(default=(), name="mf")  # the streamed MF's user factors


class Candidate(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An item ranked for a recommendation, with what its copy needs."""

    item_id: str
    score: float
    category_id: str | None
    reason: str
    title: str | None = None
    price: float | None = None


class PendingRecommendation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The shopper's latest trigger, ranked when it came (what the side inputs said then), waiting for
    the session to end and quiet hours to pass. `intended_at` is when the journey first meant to send
    it; `due` when it goes out unless the session goes on."""

    event: BehaviourEvent = msgspec.field(name="e")
    candidates: tuple[Candidate, ...] = msgspec.field(default=(), name="c")
    intended_at: int = msgspec.field(default=0, name="at")
    due: int = 0


class Trigger(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What a browse recommendation is ranked from when it fires, as its trigger brought it: the
    trigger item's category and title, its neighbours, and the shopper's profile."""

    card: ItemCard = msgspec.field(name="card")  # without the content vector: ranking reads none of it
    neighbours: tuple[Neighbour, ...] = msgspec.field(default=(), name="nb")
    summary: UserSummary | None = msgspec.field(default=None, name="s")


class Planned(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A message a journey means to send (`operators.journeys`). `intended_at` is when the journey
    first meant it (lateness and expiry count from it); `earliest` when it may go at the soonest (a
    capped message moves it on); `due` when it goes out unless the session goes on."""

    journey: str = msgspec.field(name="j")
    key: str = msgspec.field(default="", name="k")  # one per journey and key: the item, the order, "" (browse)
    source: str = msgspec.field(default="", name="src")  # the id its notification id is derived from
    intended_at: int = msgspec.field(default=0, name="at")
    earliest: int = msgspec.field(default=0, name="nb")
    due: int = 0
    reminder: int = msgspec.field(default=0, name="n")  # cart abandonment: the reminder's number, from 0
    event: BehaviourEvent | None = msgspec.field(default=None, name="e")  # browse: the trigger
    trigger: Trigger | None = msgspec.field(default=None, name="t")  # browse, until ranked when it fires
    order: OrderEvent | None = msgspec.field(default=None, name="o")  # order status held for the night, review
    candidates: tuple[Candidate, ...] = msgspec.field(default=(), name="c")  # the items it names
    was_price: float | None = msgspec.field(default=None, name="was")  # price drop: the price before
    best_hour: int | None = msgspec.field(default=None, name="bh")  # UTC hour the shopper is most active in


class MarketingSend(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A marketing notification sent: the shopper's local day (days since 1970-01-01) and its channel."""

    day: int
    channel: str


class UserDirectory(State, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """User-keyed and durable: what the user directory says of a shopper, and their own opt-out.

    Kept by the push policy in keyed state of its own that never expires (`operators.topology`):
    consent must outlive any idleness. Empty until a directory record or an unsubscribe arrives."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "user directory state"

    listed_at: int | None = msgspec.field(default=None, name="at")  # ts of the record applied; None: no record
    time_zone: str | None = msgspec.field(default=None, name="tz")
    locale: str | None = msgspec.field(default=None, name="loc")
    channels: tuple[str, ...] | None = msgspec.field(default=None, name="ch")  # reachable
    consent: dict[str, tuple[str, ...]] | None = msgspec.field(default=None, name="ok")  # purpose -> channels
    quiet_hours: tuple[str, str] | None = msgspec.field(default=None, name="quiet")  # ("21:00", "08:00")
    # An unsubscribe from the shopper holds until they resubscribe: a directory record that repeats
    # an old consent must not subscribe them again.
    opted_out_at: int | None = msgspec.field(default=None, name="out")
    v: int = 1


class Rates(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Decayed counts of messages sent and of those opened (or clicked) and clicked, as of `at`."""

    sends: float = 0.0
    opens: float = 0.0
    clicks: float = 0.0
    at: int = 0


class SentNote(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A notification sent, kept so its feedback can be told apart from unknown ids and counted once, and a cart
    or purchase after it attributed to it (the fields from `items` on came later: older notes read without)."""

    channel: str
    journey: str
    at: int
    marketing: bool
    opened: bool = False
    clicked: bool = False
    ignored: bool = False  # delivered (or dismissed) and counted among the messages ignored
    items: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # of the items, where the ranking knew them
    template: str | None = None


class Engagement(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What the shopper's feedback taught: rates per channel and journey, and marketing ignored in a row."""

    sent: dict[str, SentNote] = {}  # notification id -> the note, the newest `feedback.notes_kept`
    ignored: int = msgspec.field(default=0, name="ign")  # marketing delivered since the last open or click
    channels: dict[str, Rates] = msgspec.field(default={}, name="ch")
    journeys: dict[str, Rates] = msgspec.field(default={}, name="jr")


class PushState(State, frozen=True):
    """User-keyed state of the scorer and push policy: content vector, segment, caps, recent sends, and
    the shopper's directory entry (stored apart, never expiring)."""

    # v5: a browse recommendation waits unranked (`Planned.trigger`) and is ranked when it fires (a v4
    # entry came ranked and is read as it is); the population's best hour and the shopper's vote for it.
    # v6: when the shopper was erased, the only thing an erasure leaves (it idles out with the rest).
    # v8: the volume controller's send threshold (older states start at 0: everything useful goes).
    VERSION: ClassVar[int] = 9
    WHAT: ClassVar[str] = "push state"

    # Each kind counts its own local day: orders reach this hop by a shorter path than marketing
    # candidates, so a shared day would make the caps depend on how the two paths interleave.
    marketing_day: int = msgspec.field(default=-1, name="mday")  # days since epoch in the user's zone
    marketing_today: int = msgspec.field(default=0, name="mk")
    transactional_day: int = msgspec.field(default=-1, name="tday")
    transactional_today: int = msgspec.field(default=0, name="tx")
    last_marketing_ts: int | None = msgspec.field(default=None, name="last")
    # v1 kept only the time an item was notified: read as a send of unknown category.
    recent_items: dict[str, RecentSend | int] = msgspec.field(default={}, name="recent")
    transactional_keys: dict[str, int] = msgspec.field(default={}, name="txk")  # order:status -> time sent
    marketing_sends: tuple[MarketingSend, ...] = msgspec.field(default=(), name="sends")  # the last 7 local days
    # v2 kept the opt-out here, where it expired with the rest: v3 reads it into the directory entry.
    legacy_opted_out: bool = msgspec.field(default=False, name="out")
    content: DecayedScores = DecayedScores()  # decayed sum of item TF-IDF vectors
    segment: int | None = msgspec.field(default=None, name="seg")
    segment_trend: Pairs = msgspec.field(default=(), name="segtrend")
    directory: UserDirectory = msgspec.field(default=UserDirectory(), name="dir")
    last_active: int | None = msgspec.field(default=None, name="act")  # the latest behaviour event's time
    # v3 held one pending recommendation: v4 reads it into the agenda.
    legacy_pending: PendingRecommendation | None = msgspec.field(default=None, name="pend")
    agenda: tuple[Planned, ...] = msgspec.field(default=(), name="plan")  # what the journeys mean to send
    # Signals and segments of events before an erasure can arrive after it (they come by longer paths):
    # they are dropped, not allowed to build the shopper again.
    erased_at: int | None = msgspec.field(default=None, name="erased")
    watched: dict[str, Watch] = msgspec.field(default={}, name="watch")  # item -> interest, for price and stock
    # The shopper's own best local hour as counted towards the population's, and when; the population's as
    # last read (for shoppers with little history).
    voted_hour: int | None = msgspec.field(default=None, name="vh")
    voted_at: int | None = msgspec.field(default=None, name="va")
    population_hour: int | None = msgspec.field(default=None, name="ph")
    # v6 learned nothing from feedback: engagement starts empty.
    engagement: Engagement = msgspec.field(default=Engagement(), name="eng")
    # feedback on messages, waiting (in time order) for the watermark to pass its time
    pending_feedback: tuple[FeedbackEvent, ...] = msgspec.field(default=(), name="pfb")
    send_threshold: float = msgspec.field(default=0.0, name="thr")  # operators/volume.py
    decided_days: tuple[int, ...] = msgspec.field(default=(), name="dd")  # local days of its decisions, 7 days
    # v8 had no purchase intent: unknown until the next behaviour event is scored.
    intent: float | None = msgspec.field(default=None, name="pi")
    intent_at: int | None = msgspec.field(default=None, name="pia")
    v: int = 9

    def _upgrade(self) -> None:
        force_setattr(self, "recent_items", {item: RecentSend(at) if type(at) is int else at
                                             for item, at in self.recent_items.items()})
        if self.legacy_pending is not None:
            pending = self.legacy_pending
            force_setattr(self, "agenda", (Planned("recommendation", source=pending.event.event_id,
                                                   intended_at=pending.intended_at, earliest=pending.intended_at,
                                                   due=pending.due, event=pending.event,
                                                   candidates=pending.candidates),))
            force_setattr(self, "legacy_pending", None)
        if self.legacy_opted_out:
            force_setattr(self, "directory", UserDirectory(opted_out_at=0))
            force_setattr(self, "legacy_opted_out", False)


class CatalogTerms(State, frozen=True):
    """Item-keyed: the terms an item's last catalogue record counted in the vocabulary, so a
    re-published item moves its document counts instead of counting as a new document."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "catalogue terms state"

    terms: tuple[str, ...] | None = None  # None: the item has not been counted as a document yet
    v: int = 1


class IntentActivity(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What purchase intent is read from: [last event time, session start, events in the session,
    decayed counts at the short and the long half-life of views, favourites, carts, purchases, at]."""

    last_ts: int | None = None
    session_start: int | None = None
    session_events: int = 0
    short: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    long: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    at: int = 0


class FtrlModel(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Logistic regression trained by FTRL-Proximal: per-coordinate z and n (McMahan et al., 2013)."""

    z: tuple[float, ...] = ()
    n: tuple[float, ...] = ()
    examples: int = 0


class PendingIntent(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An intent example awaiting its label: [event time, features (operators.intent.FEATURES)]."""

    ts: int
    x: tuple[float, ...]


class IntentModel(State, frozen=True):
    """The one purchase-intent model of the job (one instance): FTRL-Proximal logistic regression."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "intent model state"

    model: FtrlModel = msgspec.field(default=FtrlModel(), name="m")
    v: int = 1
