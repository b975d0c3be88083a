"""The project's own synthetic shop: a catalogue, its shoppers' directory records, and a stream of
shopper behaviour and orders.

The demo runs on this data (the real logs in ../shared/data may not be redistributed). It is
built to exercise what the job reacts to:

* shoppers arrive in sessions (bursts of 3-20 events a few seconds to a minute apart) whose
  rate follows a daily rhythm in each shopper's local time: busy evenings, quiet nights;
* item popularity is Zipf-like, so a few items draw most views;
* each shopper has 1-3 favourite categories and a session stays within one category;
* the funnel narrows: view -> click -> cart -> purchase, plus favourites and searches;
* most checkouts become an order that moves placed -> paid -> shipped -> out_for_delivery ->
  delivered over hours and days (a few are cancelled before shipping).

Everything is drawn from `random.Random` instances seeded from the config, so a config always
yields the same catalogue and the same stream.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import msgspec

from state_schemas.events import BehaviourEvent, CatalogItem, OrderEvent, QuietHours, UserRecord
from state_schemas.units import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

DEFAULT_START_MS = 1_748_822_400_000  # 2025-06-02 00:00 UTC, a Monday

MIN_SESSION_EVENTS = 3
MAX_SESSION_EVENTS = 20
# One browsing step adds at most 4 events (view, favourite, click, cart); stopping browsing
# this early leaves room for at least one purchase within MAX_SESSION_EVENTS.
_MAX_BROWSE_BUDGET = MAX_SESSION_EVENTS - 4
_MEAN_EXTRA_BROWSE = 4.0
_FAVOURITE_CATEGORY_SHARE = 0.85  # sessions in one of the shopper's favourite categories
_FAVOURITE_CATEGORY_WEIGHTS = (0.6, 0.3, 0.1)  # the first favourite is the strongest
_REVISIT_SHARE = 0.2  # views that return to an item already seen in the session

# Relative session starts per local hour: quiet at night, a lunch bump, the evening peak.
_HOURLY_ACTIVITY = (0.45, 0.25, 0.12, 0.07, 0.06, 0.1, 0.25, 0.5, 0.65, 0.7, 0.75, 0.8,
                    0.95, 0.9, 0.75, 0.75, 0.8, 0.9, 1.1, 1.4, 1.65, 1.7, 1.3, 0.8)
_MEAN_ACTIVITY = sum(_HOURLY_ACTIVITY) / len(_HOURLY_ACTIVITY)
_PEAK_ACTIVITY = max(_HOURLY_ACTIVITY)

CARRIERS = ("DHL", "UPS", "DPD", "GLS", "PostNL", "Hermes")

# A zone for each of `utc_offsets_h` (its standard time); the rhythm of sessions keeps the fixed offset.
_ZONES_BY_OFFSET_H = {-1: "Atlantic/Azores", 0: "Europe/London", 1: "Europe/Paris", 2: "Europe/Athens",
                      8: "Asia/Shanghai", 9: "Asia/Tokyo", -5: "America/New_York", -8: "America/Los_Angeles"}
_LOCALES = ("en", "zh-CN")


@dataclass(frozen=True)
class _Theme:
    name: str
    typical_price: float
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    brands: tuple[str, ...]


_THEMES = (
    _Theme("electronics", 60.0, ("headphones", "charger", "smartwatch", "speaker", "power bank", "keyboard", "webcam"),
           ("wireless", "portable", "compact", "fast-charging", "noise-cancelling", "ergonomic"),
           ("Voltik", "Sonara", "Pixelon", "Nexbit")),
    _Theme("shoes", 70.0, ("running shoes", "sneakers", "boots", "sandals", "loafers", "hiking shoes"),
           ("lightweight", "waterproof", "leather", "breathable", "classic", "cushioned"),
           ("Stridewell", "Kinetto", "Urbano", "Trailfox")),
    _Theme("kitchen", 30.0, ("frying pan", "knife set", "kettle", "blender", "coffee grinder", "cutting board"),
           ("non-stick", "stainless", "cast-iron", "electric", "bamboo", "professional"),
           ("Cucina", "Brava", "Hearthly", "Koch & Co")),
    _Theme("books", 15.0, ("novel", "cookbook", "travel guide", "biography", "comic", "puzzle book"),
           ("bestselling", "illustrated", "hardcover", "paperback", "annotated", "signed"),
           ("Inkwell", "Foliant", "Pagecraft", "Northwind Press")),
    _Theme("toys", 25.0, ("building set", "puzzle", "plush bear", "board game", "rc car", "doll house"),
           ("educational", "wooden", "colourful", "magnetic", "giant", "glow-in-the-dark"),
           ("Playora", "Tinkertop", "Bricko", "Wonderkin")),
    _Theme("beauty", 20.0, ("face cream", "serum", "lipstick", "shampoo", "perfume", "sunscreen"),
           ("hydrating", "organic", "vegan", "long-lasting", "fragrance-free", "matte"),
           ("Lumea", "Verdana Skin", "Aurelle", "Pureform")),
    _Theme("sports", 45.0, ("yoga mat", "dumbbells", "bike helmet", "tennis racket", "water bottle", "fitness band"),
           ("adjustable", "anti-slip", "insulated", "carbon", "foldable", "heavy-duty"),
           ("Apexa", "Motionline", "Peakform", "Sprintex")),
    _Theme("garden", 35.0, ("garden hose", "pruning shears", "planter", "lawn sprinkler", "seed kit", "grill"),
           ("expandable", "self-watering", "weatherproof", "solar", "galvanised", "compact"),
           ("Greenvale", "Terrabloom", "Yardly", "Fernwood")),
    _Theme("fashion", 40.0, ("t-shirt", "hoodie", "jeans", "rain jacket", "scarf", "backpack"),
           ("oversized", "slim-fit", "recycled", "linen", "quilted", "vintage"),
           ("Northloom", "Maison Vell", "Threadwise", "Cobalt & Rye")),
    _Theme("home", 50.0, ("desk lamp", "throw blanket", "wall clock", "storage box", "mirror", "rug"),
           ("minimalist", "handwoven", "dimmable", "scandinavian", "velvet", "oak"),
           ("Casara", "Hygge Haus", "Lumina Home", "Dwellwell")),
    _Theme("pets", 18.0, ("dog bed", "cat tree", "leash", "chew toy", "pet fountain", "litter box"),
           ("orthopedic", "durable", "reflective", "self-cleaning", "washable", "calming"),
           ("Pawsome", "Furrbo", "Tailwind", "Barkley")),
    _Theme("grocery", 6.0, ("coffee beans", "green tea", "olive oil", "dark chocolate", "granola", "hot sauce"),
           ("organic", "fair-trade", "single-origin", "sugar-free", "extra-virgin", "smoky"),
           ("Harvestly", "Bonterra", "Mill & Mortar", "Sunfield")),
)
_VARIANTS = ("", "", "Pro", "Mini", "Max", "Lite", "2", "XL")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. `events` is the exact number of records `generate_events` yields
    (behaviour and order events together); orders still in transit at the end are cut off there."""

    users: int = 500
    items: int = 2_000
    categories: int = 24
    events: int = 50_000
    seed: int = 7
    start_ms: int = DEFAULT_START_MS
    zipf_exponent: float = 1.1
    sessions_per_user_day: float = 2.0
    utc_offsets_h: tuple[int, ...] = (-1, 0, 1, 2)  # one region spanning a few time zones
    search_share: float = 0.25  # sessions that open with a search
    favourite_rate: float = 0.04  # of views
    sold_out_favourite_rate: float = 0.3  # of views of an item out of stock ("tell me when it is back")
    click_rate: float = 0.3  # of views
    cart_rate: float = 0.25  # of clicks on items in stock
    purchase_rate: float = 0.45  # of carted items, at the session's checkout
    order_share: float = 0.9  # checkouts that become an order with a delivery lifecycle
    cancel_share: float = 0.03  # of orders, cancelled after payment instead of shipped
    out_of_stock_share: float = 0.03  # of catalogue items
    price_cut_share: float = 0.05  # of catalogue items, cut by 10-35% at some time while the shop runs

    def __post_init__(self) -> None:
        if self.users < 1 or self.categories < 1 or self.items < self.categories:
            raise ValueError(f"need users >= 1 and items >= categories >= 1, got users={self.users}, "
                             f"items={self.items}, categories={self.categories}")
        if self.events < 0 or self.start_ms < 0:
            raise ValueError("events and start_ms must be >= 0")
        # Beyond 5 the tail's weights underflow to zero and the long tail is never seen anyway.
        if not 0 <= self.zipf_exponent <= 5 or self.sessions_per_user_day <= 0:
            raise ValueError("zipf_exponent must be within [0, 5] and sessions_per_user_day > 0")
        if not self.utc_offsets_h:
            raise ValueError("utc_offsets_h must name at least one offset")
        for name in ("search_share", "favourite_rate", "click_rate", "cart_rate", "purchase_rate",
                     "order_share", "cancel_share", "out_of_stock_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class _Shopper:
    user_id: str
    activity: float  # relative session rate
    utc_offset_ms: int
    favourite_categories: tuple[int, ...]


@dataclass(frozen=True)
class _Shop:
    catalog: tuple[CatalogItem, ...]
    items_by_category: tuple[tuple[CatalogItem, ...], ...]
    cum_popularity_by_category: tuple[tuple[float, ...], ...]  # cumulative, for random.choices
    category_popularity: tuple[float, ...]


def _item_id(index: int) -> str:
    return f"item-{index:05d}"


def _category_id(index: int) -> str:
    return f"cat-{index:03d}"


def _user_id(index: int) -> str:
    return f"user-{index:05d}"


def _theme(category: int) -> _Theme:
    return _THEMES[category % len(_THEMES)]


def _rng(cfg: GeneratorConfig, purpose: str) -> random.Random:
    # One stream per purpose, so the catalogue does not change when event settings do.
    return random.Random(f"{cfg.seed}:{purpose}")


def generate_catalog(cfg: GeneratorConfig) -> list[CatalogItem]:
    return list(_build_shop(cfg).catalog)


def generate_catalog_changes(cfg: GeneratorConfig, until_ms: int) -> list[CatalogItem]:
    """Later catalogue records, in time order, between the first tenth and the last tenth of
    [cfg.start_ms, until_ms]: a price cut for `price_cut_share` of the items, a restock for every item
    out of stock. They give the price-drop and back-in-stock journeys something to tell."""
    rng = _rng(cfg, "catalog-changes")
    span = max(until_ms - cfg.start_ms, 10)
    changes = []
    for item in generate_catalog(cfg):
        at = cfg.start_ms + span // 10 + rng.randrange(span * 8 // 10)
        if item.stock == 0:
            changes.append(msgspec.structs.replace(item, stock=rng.randint(5, 50), ts=at))
        elif rng.random() < cfg.price_cut_share:
            cut = round(item.price * (1 - rng.uniform(0.10, 0.35)), 2)
            changes.append(msgspec.structs.replace(item, price=max(cut, 0.01), ts=at))
    return sorted(changes, key=lambda item: (item.ts, item.item_id))


def _build_shop(cfg: GeneratorConfig) -> _Shop:
    rng = _rng(cfg, "catalog")
    category_median_price = [_theme(c).typical_price * rng.lognormvariate(0.0, 0.3) for c in range(cfg.categories)]
    ranks = list(range(1, cfg.items + 1))
    rng.shuffle(ranks)
    bestseller_rank = max(1, cfg.items // 20)
    catalog: list[CatalogItem] = []
    popularity: list[float] = []
    members: list[list[int]] = [[] for _ in range(cfg.categories)]
    for index, rank in enumerate(ranks):
        category = index if index < cfg.categories else rng.randrange(cfg.categories)  # no empty category
        theme = _theme(category)
        brand = rng.choice(theme.brands)
        adjective = rng.choice(theme.adjectives)
        noun = rng.choice(theme.nouns)
        variant = rng.choice(_VARIANTS)
        price = max(0.5, category_median_price[category] * rng.lognormvariate(0.0, 0.45))
        in_stock = rng.random() >= cfg.out_of_stock_share
        tags = (theme.name, adjective) + (("bestseller",) if rank <= bestseller_rank else ())
        catalog.append(CatalogItem(
            item_id=_item_id(index),
            title=" ".join(part for part in (brand, adjective, noun, variant) if part),
            category_id=_category_id(category),
            price=round(price, 2),
            ts=cfg.start_ms,
            brand=brand,
            tags=tags,
            stock=rng.randint(1, 250) if in_stock else 0,
        ))
        popularity.append(rank ** -cfg.zipf_exponent)
        members[category].append(index)
    return _Shop(
        catalog=tuple(catalog),
        items_by_category=tuple(tuple(catalog[i] for i in group) for group in members),
        cum_popularity_by_category=tuple(tuple(itertools.accumulate(popularity[i] for i in group))
                                         for group in members),
        category_popularity=tuple(sum(popularity[i] for i in group) for group in members),
    )


def generate_users(cfg: GeneratorConfig) -> list[UserRecord]:
    """One directory record per shopper, written at `start_ms`: most reachable by push and in-app inbox,
    some by email or SMS too; most agree to marketing on some of them, a few to transactional only;
    a few set their own quiet hours, and a few leave their zone or locale to the platform defaults."""
    rng = _rng(cfg, "users")
    records = []
    for shopper in _build_shoppers(cfg, _build_shop(cfg)):
        channels = ("push", "inbox") + tuple(c for c, share in (("email", 0.5), ("sms", 0.2)) if rng.random() < share)
        if rng.random() < 0.1:
            channels = tuple(c for c in channels if c != "push") or ("inbox",)  # no app token
        marketing = tuple(c for c in channels if c != "sms" and rng.random() < 0.8)
        consent = {"transactional": channels, "marketing": marketing if rng.random() < 0.85 else ()}
        zone = _ZONES_BY_OFFSET_H.get(shopper.utc_offset_ms // HOUR_MS) if rng.random() < 0.9 else None
        records.append(UserRecord(
            user_id=shopper.user_id, ts=cfg.start_ms, time_zone=zone,
            locale=rng.choice(_LOCALES) if rng.random() < 0.9 else None, channels=channels, consent=consent,
            quiet_hours=QuietHours("23:00", "07:00") if rng.random() < 0.1 else None))
    return records


def _build_shoppers(cfg: GeneratorConfig, shop: _Shop) -> tuple[_Shopper, ...]:
    rng = _rng(cfg, "shoppers")
    shoppers = []
    for index in range(cfg.users):
        # Popular categories have more fans.
        wanted = min(rng.randint(1, 3), cfg.categories)
        candidates = list(range(cfg.categories))
        weights = list(shop.category_popularity)
        favourites = []
        for _ in range(wanted):
            pick = rng.choices(range(len(candidates)), weights=weights)[0]
            favourites.append(candidates.pop(pick))
            weights.pop(pick)
        shoppers.append(_Shopper(
            user_id=_user_id(index),
            activity=rng.lognormvariate(0.0, 0.8),  # a few heavy shoppers, many occasional ones
            utc_offset_ms=rng.choice(cfg.utc_offsets_h) * HOUR_MS,
            favourite_categories=tuple(favourites),
        ))
    return tuple(shoppers)


def _session_starts(cfg: GeneratorConfig, shoppers: tuple[_Shopper, ...],
                    rng: random.Random) -> Iterator[tuple[int, _Shopper]]:
    """Session starts in time order: a Poisson process per shopper whose rate follows the daily
    rhythm in their local time, drawn by thinning candidates made at the peak rate."""
    cum_activity = list(itertools.accumulate(s.activity for s in shoppers))
    # Activity only splits sessions between shoppers; the config sets the total rate.
    sessions_per_ms = cfg.sessions_per_user_day * len(shoppers) / DAY_MS
    candidates_per_ms = sessions_per_ms * _PEAK_ACTIVITY / _MEAN_ACTIVITY
    now = float(cfg.start_ms)
    while True:
        now += rng.expovariate(candidates_per_ms)
        shopper = rng.choices(shoppers, cum_weights=cum_activity)[0]
        local_hour = (int(now) + shopper.utc_offset_ms) // HOUR_MS % 24
        if rng.random() * _PEAK_ACTIVITY < _HOURLY_ACTIVITY[local_hour]:
            yield int(now), shopper


def _session_category(shop: _Shop, shopper: _Shopper, rng: random.Random) -> int:
    if rng.random() < _FAVOURITE_CATEGORY_SHARE:
        weights = _FAVOURITE_CATEGORY_WEIGHTS[:len(shopper.favourite_categories)]
        return rng.choices(shopper.favourite_categories, weights=weights)[0]
    return rng.choices(range(len(shop.category_popularity)), weights=shop.category_popularity)[0]


def _search_query(category: int, rng: random.Random) -> str:
    theme = _theme(category)
    noun = rng.choice(theme.nouns)
    return rng.choice((noun, f"{rng.choice(theme.adjectives)} {noun}", f"{rng.choice(theme.brands)} {noun}"))


def _gap_ms(rng: random.Random) -> int:
    # Median about 12 s, clamped to "a few seconds to a minute and a half".
    return int(min(90 * SECOND_MS, max(2 * SECOND_MS, rng.lognormvariate(math.log(12 * SECOND_MS), 0.8))))


# A record waiting for its event id, which is given in emission order.
_Pending = Callable[..., BehaviourEvent | OrderEvent]


def _session(cfg: GeneratorConfig, shop: _Shop, shopper: _Shopper, start_ms: int, session_id: str,
             rng: random.Random) -> tuple[list[tuple[int, _Pending]], list[CatalogItem], int]:
    """One session's behaviour events, the items bought at its checkout and the checkout time."""
    category = _session_category(shop, shopper, rng)
    items = shop.items_by_category[category]
    cum_popularity = shop.cum_popularity_by_category[category]
    records: list[tuple[int, _Pending]] = []
    now = start_ms

    def add(behavior: str, item: CatalogItem | None = None, query: str | None = None) -> None:
        nonlocal now
        if records:
            now += _gap_ms(rng)
        records.append((now, partial(
            BehaviourEvent, user_id=shopper.user_id, behavior=behavior, ts=now,
            item_id=item.item_id if item else None, category_id=_category_id(category),
            brand=item.brand if item else None, price=item.price if item else None,
            session_id=session_id, query=query)))

    budget = min(MIN_SESSION_EVENTS + int(rng.expovariate(1.0 / _MEAN_EXTRA_BROWSE)), _MAX_BROWSE_BUDGET)
    if rng.random() < cfg.search_share:
        add("search", query=_search_query(category, rng))
    viewed: list[CatalogItem] = []
    carted: list[CatalogItem] = []
    while len(records) < budget:
        if viewed and rng.random() < _REVISIT_SHARE:
            item = rng.choice(viewed)
        else:
            item = rng.choices(items, cum_weights=cum_popularity)[0]
        add("view", item)
        viewed.append(item)
        if rng.random() < (cfg.favourite_rate if item.stock else cfg.sold_out_favourite_rate):
            add("favourite", item)
        if rng.random() < cfg.click_rate:
            add("click", item)
            if item.stock and item not in carted and rng.random() < cfg.cart_rate:
                add("cart", item)
                carted.append(item)
    bought = [item for item in carted if rng.random() < cfg.purchase_rate][:MAX_SESSION_EVENTS - len(records)]
    for item in bought:
        add("purchase", item)
    return records, bought, now


def _order_lifecycle(cfg: GeneratorConfig, shopper: _Shopper, bought: list[CatalogItem], checkout_ms: int,
                     order_id: str, rng: random.Random) -> list[tuple[int, _Pending]]:
    """Status changes of one order, each strictly after the previous one and the purchase."""
    item_ids = tuple(item.item_id for item in bought)
    records: list[tuple[int, _Pending]] = []

    def add(status: str, after_ms: int, within_ms: int, carrier: str | None = None) -> None:
        ts = (records[-1][0] if records else checkout_ms) + rng.randint(after_ms, within_ms)
        records.append((ts, partial(OrderEvent, user_id=shopper.user_id, order_id=order_id, status=status, ts=ts,
                                    item_ids=item_ids, carrier=carrier)))

    add("placed", SECOND_MS, 5 * SECOND_MS)
    add("paid", 10 * SECOND_MS, 30 * MINUTE_MS)
    if rng.random() < cfg.cancel_share:
        add("cancelled", 10 * MINUTE_MS, 12 * HOUR_MS)
        return records
    carrier = rng.choice(CARRIERS)
    add("shipped", 2 * HOUR_MS, 2 * DAY_MS, carrier)
    add("out_for_delivery", 12 * HOUR_MS, 3 * DAY_MS, carrier)
    add("delivered", HOUR_MS, 10 * HOUR_MS, carrier)
    return records


def generate_events(cfg: GeneratorConfig) -> Iterator[BehaviourEvent | OrderEvent]:
    """Exactly `cfg.events` records in non-decreasing `ts` order, with ids f"gen-{seed}-{n}".

    Sessions overlap and orders complete days later, so records wait in a heap and leave it
    once no session still to be drawn can start before them.
    """
    shop = _build_shop(cfg)
    shoppers = _build_shoppers(cfg, shop)
    rng = _rng(cfg, "events")
    starts = _session_starts(cfg, shoppers, rng)
    session_numbers = itertools.count()
    order_numbers = itertools.count()
    tie_breaker = itertools.count()  # equal times leave in the order they were made
    waiting: list[tuple[int, int, _Pending]] = []
    next_start, shopper = next(starts)
    for n in range(cfg.events):
        while not waiting or waiting[0][0] > next_start:
            records, bought, checkout_ms = _session(cfg, shop, shopper, next_start,
                                                    f"sess-{cfg.seed}-{next(session_numbers)}", rng)
            if bought and rng.random() < cfg.order_share:
                records += _order_lifecycle(cfg, shopper, bought, checkout_ms,
                                            f"order-{cfg.seed}-{next(order_numbers)}", rng)
            for ts, pending in records:
                heapq.heappush(waiting, (ts, next(tie_breaker), pending))
            next_start, shopper = next(starts)
        yield heapq.heappop(waiting)[2](event_id=f"gen-{cfg.seed}-{n}")
