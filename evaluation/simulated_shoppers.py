"""Simulated shoppers for `make experiment`: hidden tastes over categories, a best hour, and an appetite that
tires of messages. They browse and buy on their own (the same whatever they are sent: each shopper's own random
stream), and answer a message they receive by opening, clicking and buying with probabilities that rise with its
relevance to their taste and its fit to their hour, and fall with the messages of the last week.

Item ids name their category (`c3-i17`), so a message's relevance is read off its items."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from state_schemas.events import BehaviourEvent, FeedbackEvent
from state_schemas.outputs import Notification

HOUR, DAY = 3_600_000, 86_400_000


@dataclass(frozen=True)
class World:
    shoppers: int = 1200
    categories: int = 8
    items_per_category: int = 30
    days: int = 10
    start_ms: int = 1_790_000_000_000 // DAY * DAY
    seed: int = 7
    # How strongly a relevant, well-timed click turns into a purchase: the lift the notifications cause.
    buy_after_click: float = 0.5


@dataclass(frozen=True)
class Shopper:
    user_id: str
    taste: tuple[float, ...]  # hidden: the share of their interest in each category
    sessions_per_day: float
    best_hour: int  # UTC
    buys_per_session: float  # organic: a session ends in a purchase this often


def item(category: int, n: int) -> str:
    return f"c{category}-i{n}"


def category_of(item_id: str) -> int:
    return int(item_id.split("-")[0][1:])


def shoppers(world: World) -> list[Shopper]:
    rng = random.Random(world.seed)
    made = []
    for n in range(world.shoppers):
        weights = [rng.gammavariate(0.3, 1.0) for _ in range(world.categories)]
        total = sum(weights) or 1.0
        made.append(Shopper(f"sim-{n}", tuple(w / total for w in weights), rng.uniform(0.2, 1.2),
                            rng.randrange(24), rng.uniform(0.02, 0.12)))
    return made


def _rng(world: World, *parts) -> random.Random:
    """Each shopper's, and each answer's, own random stream: the same in every run that reaches it."""
    return random.Random(f"{world.seed}:" + ":".join(map(str, parts)))


def organic(world: World, shopper: Shopper) -> list[BehaviourEvent]:
    """The shopper's own browsing and buying over the days, untouched by any message."""
    rng, events = _rng(world, shopper.user_id), []
    for day in range(world.days):
        for session in range(_poisson(rng, shopper.sessions_per_day)):
            hour = int(rng.gauss(shopper.best_hour, 3)) % 24
            at = world.start_ms + day * DAY + hour * HOUR + rng.randrange(HOUR)
            category = rng.choices(range(world.categories), shopper.taste)[0]
            viewed = [item(category, int(rng.paretovariate(1.2)) % world.items_per_category)
                      for _ in range(rng.randint(2, 6))]
            for step, item_id in enumerate(viewed):
                events.append(_event(shopper, f"{day}-{session}-{step}", "view", item_id, at + step * 60_000))
            if rng.random() < shopper.buys_per_session:
                events.append(_event(shopper, f"{day}-{session}-buy", "purchase", viewed[-1],
                                     at + len(viewed) * 60_000))
    return events


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def _event(shopper: Shopper, tag: str, behavior: str, item_id: str, ts: int) -> BehaviourEvent:
    return BehaviourEvent(event_id=f"{shopper.user_id}-{tag}", user_id=shopper.user_id, behavior=behavior, ts=ts,
                          item_id=item_id, category_id=f"c{category_of(item_id)}")


def relevance(shopper: Shopper, notification: Notification) -> float:
    """The taste the message's items speak to, against the taste of a uniform shopper: 1 is average."""
    items = notification.item_ids or ()
    if not items:
        return 0.0
    return sum(shopper.taste[category_of(i)] for i in items) / len(items) * len(shopper.taste)


def p_open(shopper: Shopper, notification: Notification, received_last_week: int) -> float:
    hour = (notification.scheduled_at // HOUR) % 24
    fit = 1 - min(abs(hour - shopper.best_hour), 24 - abs(hour - shopper.best_hour)) / 12  # 1 at the best hour
    score = -2.0 + 0.6 * min(relevance(shopper, notification), 4.0) + 1.0 * fit - 0.25 * received_last_week
    return 1 / (1 + math.exp(-score))


def answer(world: World, shopper: Shopper, notification: Notification, received_last_week: int) -> list:
    """What the shopper does with a message they receive: delivered, perhaps opened, clicked, and a purchase
    of the item it named first."""
    rng, at = _rng(world, notification.notification_id), notification.scheduled_at
    said = [FeedbackEvent(event_id=f"{notification.notification_id}-delivered", user_id=shopper.user_id,
                          action="delivered", ts=at + 60_000, notification_id=notification.notification_id)]
    if rng.random() >= p_open(shopper, notification, received_last_week):
        return said
    said.append(FeedbackEvent(event_id=f"{notification.notification_id}-open", user_id=shopper.user_id,
                              action="open", ts=at + 5 * 60_000, notification_id=notification.notification_id))
    if rng.random() >= 0.5:
        return said
    said.append(FeedbackEvent(event_id=f"{notification.notification_id}-click", user_id=shopper.user_id,
                              action="click", ts=at + 6 * 60_000, notification_id=notification.notification_id))
    first = notification.item_ids[0]
    if rng.random() < world.buy_after_click * min(1.0, shopper.taste[category_of(first)] * len(shopper.taste)):
        said.append(_event(shopper, f"{notification.notification_id}-buy", "purchase", first, at + 20 * 60_000))
    return said
