"""The journeys through the push policy's steps, time passed in: carts, watched items, reviews, the
night rule for order statuses, digests, and what a cap does to each."""
from __future__ import annotations

from msgspec.structs import replace

from config import load_config
from operators import push_policy
from operators.steps import StepContext, emitted
from state_schemas.events import BehaviourEvent, FeedbackEvent, OrderEvent
from state_schemas.hops import AccountEvent, ItemSignal, UserSummary, WatchedItemChange
from state_schemas.outputs import Notification
from state_schemas.state import ItemCard, Neighbour, PushState, UserDirectory
from tests.unit.fakes import FakeSide

HOUR = 3_600_000
DAY = 24 * HOUR
MIDNIGHT = 1_699_920_000_000  # 2023-11-14 00:00 UTC
T0 = MIDNIGHT + 10 * HOUR  # 10:00 UTC: outside the default quiet hours (UTC)
GAP = 30 * 60_000
CREATED = 1_800_000_000_000
CONFIG = load_config()
SHOE = ItemCard(category_id="c", title="Trail shoe", price=80.0)
SIDE = FakeSide(cards={"shoe": SHOE, "pan": ItemCard(title="Pan", price=20.0)})


def behaviour(behavior, ts, item="shoe", event_id=None, trigger=False):
    event = BehaviourEvent(event_id=event_id or f"{behavior}-{ts}", user_id="u", behavior=behavior, ts=ts,
                           item_id=item, category_id="c")
    return ItemSignal(event=event, card=SIDE.card_map.get(item, ItemCard()), trigger=trigger,
                      neighbours=(Neighbour("kettle", "k", 0.9),) if trigger else ())


class Shopper:
    """One shopper's push policy: messages in, timers fired as a watermark passes them; what went out."""

    def __init__(self, config=CONFIG, side=SIDE, state=None):
        self.config, self.side, self.state = config, side, state or PushState()
        self.timers, self.sent, self.counts = set(), [], []

    def _take(self, step):
        self.state = step.state
        self.timers.update(step.timers)
        self.sent += emitted(step, Notification)
        self.counts += step.counts

    def send(self, message):
        if isinstance(message, (OrderEvent, FeedbackEvent)):
            message = AccountEvent(event=message)
        self._take(push_policy.handle(self.state, message, "u", CREATED, self.side, self.config))
        return self

    def until(self, watermark):
        while self.timers and min(self.timers) <= watermark:
            at = min(self.timers)
            self.timers.discard(at)
            self._take(push_policy.on_timer(self.state, "u", at, StepContext(CREATED, self.side, self.config)))
        return self

    def journeys(self):
        return [(n.journey, n.scheduled_at, n.item_ids) for n in self.sent]


def test_a_cart_not_bought_is_reminded_after_an_hour_and_again_after_a_day():
    shopper = Shopper().send(behaviour("cart", T0)).until(T0 + 3 * DAY)
    assert shopper.journeys() == [("cart_abandonment", T0 + HOUR, ("shoe",)), ("cart_abandonment", T0 + DAY, ("shoe",))]
    first = shopper.sent[0]
    assert (first.title, first.body, first.template) == ("Still thinking it over?",
                                                        "Trail shoe ($80.00) is waiting in your cart.", "cart_reminder")
    assert first.links == (f"https://shop.example.com/item/shoe?nid={first.notification_id}",)
    assert first.notification_id != shopper.sent[1].notification_id and first.intended_at == T0 + HOUR


def test_a_cart_then_purchase_sends_nothing():
    shopper = Shopper().send(behaviour("cart", T0)).send(behaviour("purchase", T0 + 20 * 60_000)).until(T0 + 3 * DAY)
    assert shopper.sent == [] and "journey_exit_purchased" in shopper.counts


def test_the_reminder_waits_for_the_session_to_end():
    shopper = Shopper().send(behaviour("cart", T0))
    for minute in range(10, 100, 10):  # browsing for an hour and a half
        shopper.send(behaviour("view", T0 + minute * 60_000, item="pan"))
    shopper.until(T0 + 2 * HOUR + 1)
    assert shopper.journeys()[:1] == [("cart_abandonment", T0 + 90 * 60_000 + GAP, ("shoe",))]


def test_an_item_out_of_stock_ends_its_reminders():
    side = FakeSide(cards={"shoe": ItemCard(title="Trail shoe", price=80.0, in_stock=False)})
    shopper = Shopper(side=side).send(behaviour("cart", T0)).until(T0 + HOUR)
    assert shopper.sent == [] and shopper.state.agenda == ()  # the first reminder found it gone: both end
    assert shopper.counts.count("journey_exit_out_of_stock") == 2


def test_an_unsubscribe_ends_every_marketing_journey():
    shopper = Shopper().send(behaviour("cart", T0))
    shopper.send(FeedbackEvent(event_id="f", user_id="u", action="unsubscribe", ts=T0 + 1)).until(T0 + 3 * DAY)
    assert shopper.sent == [] and shopper.state.agenda == () and "journey_exit_opted_out" in shopper.counts


def test_a_capped_message_is_deferred_to_the_next_local_day_and_a_capped_reminder_gives_way():
    capped = CONFIG.with_overrides({"policy": {"daily_marketing_cap": 1, "max_deferral_ms": DAY}})
    shopper = Shopper(capped).send(behaviour("view", T0, item="pan", trigger=True, event_id="t"))
    shopper.send(behaviour("cart", T0 + GAP + 60_000))
    shopper.send(change("price_drop", T0 + 2 * HOUR, 90.0)).until(T0 + 3 * DAY)
    # The recommendation went at the end of the first session and used the day's one send. The
    # first reminder gives way to the second; the price drop waits for the next local day and the
    # end of that night's quiet hours (08:00 UTC), and uses it; so the second reminder, the last,
    # waits for the day after.
    assert [(j, at) for j, at, _ in shopper.journeys()] == [
        ("recommendation", T0 + GAP), ("price_drop", MIDNIGHT + DAY + 8 * HOUR),
        ("cart_abandonment", MIDNIGHT + 2 * DAY + 8 * HOUR)]
    assert "deferred_daily_cap" in shopper.counts
    # Within the default 12 h limit the next morning is too far: the price drop is dropped.
    strict = Shopper(CONFIG.with_overrides({"policy": {"daily_marketing_cap": 1}}))
    strict.send(behaviour("view", T0, item="pan", trigger=True, event_id="t"))
    strict.send(behaviour("cart", T0 + GAP + 60_000))
    strict.send(change("price_drop", T0 + 2 * HOUR, 90.0)).until(T0 + 3 * DAY)
    assert [j for j, _, _ in strict.journeys()] == ["recommendation", "cart_abandonment"]


def test_messages_due_at_once_go_as_one_digest():
    """A cart at 20:30 and a price drop on a watched item at 22:00: both wait for the end of quiet
    hours (08:00 UTC), and go together as one message."""
    evening = MIDNIGHT + 20 * HOUR + GAP
    shopper = Shopper().send(behaviour("view", evening - HOUR, item="pan")).send(behaviour("cart", evening))
    shopper.send(WatchedItemChange(user_id="u", item_id="pan", change="price_drop", ts=evening + 90 * 60_000,
                                   card=ItemCard(title="Pan", price=15.0), was_price=20.0)).until(evening + DAY)
    digest = shopper.sent[0]
    assert (digest.journey, digest.scheduled_at, digest.item_ids) == ("digest", MIDNIGHT + DAY + 8 * HOUR,
                                                                       ("shoe", "pan"))  # the cart's item first
    assert (digest.title, digest.template) == ("2 things for you", "digest")
    assert digest.reason == "left in cart; price dropped"
    assert sum(n.scheduled_at == digest.scheduled_at for n in shopper.sent) == 1


def change(kind, ts, was=None, card=SHOE):
    return WatchedItemChange(user_id="u", item_id="shoe", change=kind, ts=ts, card=card, was_price=was)


def test_a_price_drop_names_the_old_and_new_price_to_a_watcher_only():
    cheaper = ItemCard(category_id="c", title="Trail shoe", price=60.0)
    side = FakeSide(cards={"shoe": cheaper})
    stranger = Shopper(side=side).send(change("price_drop", T0, 80.0, cheaper)).until(T0 + DAY)
    assert stranger.sent == [] and "watch_ignored_not_watching" in stranger.counts
    watcher = Shopper(side=side).send(behaviour("view", T0 - DAY)).send(change("price_drop", T0, 80.0, cheaper))
    watcher.until(T0 + DAY)
    [n] = watcher.sent
    assert (n.journey, n.template, n.scheduled_at) == ("price_drop", "watched_price_drop", T0)
    assert n.body == "Trail shoe is now ($60.00), down from ($80.00)."
    zh = Shopper(side=side, state=PushState(directory=UserDirectory(listed_at=1, locale="zh-CN", channels=("push",),
                                                                    consent={"marketing": ("push",)})))
    zh.send(behaviour("view", T0 - DAY)).send(change("price_drop", T0, 80.0, cheaper)).until(T0 + DAY)
    assert zh.sent[0].body == "Trail shoe降价了：现价（¥60.00），原价（¥80.00），立省（¥20.00）。"


def test_a_watch_lapses_and_a_purchase_ends_it():
    lapsed = Shopper().send(behaviour("view", T0 - CONFIG.journeys.watch_ms)).send(change("price_drop", T0, 99.0))
    assert lapsed.until(T0 + DAY).sent == []
    bought = Shopper().send(behaviour("purchase", T0 - HOUR)).send(change("back_in_stock", T0)).until(T0 + DAY)
    assert bought.sent == [] and "watch_ignored_purchased" in bought.counts


def test_back_in_stock_tells_the_fan():
    fan = Shopper().send(behaviour("favourite", T0 - DAY)).send(change("back_in_stock", T0)).until(T0 + DAY)
    assert [(j, at) for j, at, _ in fan.journeys()] == [("back_in_stock", T0)]
    assert fan.sent[0].body == "Trail shoe ($80.00) is back in stock."


def order(status, ts, order_id="o1"):
    return OrderEvent(event_id=f"{order_id}-{status}", user_id="u", order_id=order_id, status=status, ts=ts,
                      item_ids=("shoe",))


def test_a_review_is_asked_for_three_days_after_delivery_unless_the_order_is_refunded():
    shopper = Shopper().send(order("delivered", T0)).until(T0 + 5 * DAY)
    assert [(j, at) for j, at, _ in shopper.journeys()] == [("order_status", T0), ("review_request", T0 + 3 * DAY)]
    assert shopper.sent[1].body == "Tell us what you think of Trail shoe from order o1."
    returned = Shopper().send(order("delivered", T0)).send(order("refunded", T0 + DAY)).until(T0 + 5 * DAY)
    assert [j for j, _, _ in returned.journeys()] == ["order_status", "order_status"]
    assert "journey_exit_order_returned" in returned.counts


def test_a_delivery_at_night_is_told_when_quiet_hours_end_and_a_shipment_at_once():
    night = MIDNIGHT + DAY + 3 * HOUR  # 03:00 UTC
    shopper = Shopper().send(order("delivered", night)).send(order("shipped", night + 1, order_id="o2"))
    assert [(j, at) for j, at, _ in shopper.journeys()] == [("order_status", night + 1)]
    shopper.until(night + HOUR * 6)
    delivered = shopper.sent[1]
    assert (delivered.template, delivered.scheduled_at, delivered.intended_at) == (
        "delivered", MIDNIGHT + DAY + 8 * HOUR, night)
    assert "transactional_held_for_night" in shopper.counts


def test_a_cached_card_older_than_the_restock_does_not_stop_it():
    """The job reads cards through a cache: one from before the restock still says out of stock."""
    stale = FakeSide(cards={"shoe": ItemCard(title="Trail shoe", price=80.0, in_stock=False, listed_at=T0 - DAY)})
    fresh = ItemCard(title="Trail shoe", price=80.0, listed_at=T0)
    fan = Shopper(side=stale).send(behaviour("favourite", T0 - DAY)).send(change("back_in_stock", T0, card=fresh))
    assert [j for j, _, _ in fan.until(T0 + DAY).journeys()] == ["back_in_stock"]
    newer = FakeSide(cards={"shoe": ItemCard(title="Trail shoe", in_stock=False, listed_at=T0 + 1)})
    gone = Shopper(side=newer).send(behaviour("favourite", T0 - DAY)).send(change("back_in_stock", T0, card=fresh))
    assert gone.until(T0 + DAY).sent == [] and "journey_exit_out_of_stock" in gone.counts


def test_a_recommendation_waits_for_the_shoppers_best_hour():
    """A profile most active at 19:00 UTC (20:00 in Berlin) with enough history: a session that ends at
    15:30 local is recommended to at 20:00 local; with little history, at the platform's 19:00 local;
    a best hour more than the allowed wait away does not hold it."""
    berlin = PushState(directory=UserDirectory(listed_at=1, time_zone="Europe/Berlin", channels=("push",),
                                               consent={"marketing": ("push",)}))
    afternoon = MIDNIGHT + 14 * HOUR  # 15:00 in Berlin

    def trigger(recent):
        signal = behaviour("view", afternoon, trigger=True, event_id="t")
        return replace(signal, summary=UserSummary(active_hours=(("19", 1.0), ("8", 0.4)),
                                                   recent=tuple(f"i{n}" for n in range(recent))))

    regular = Shopper(state=berlin).send(trigger(recent=5)).until(afternoon + DAY)
    assert [(j, at) for j, at, _ in regular.journeys()] == [("recommendation", MIDNIGHT + 19 * HOUR)]
    newcomer = Shopper(state=berlin).send(trigger(recent=4)).until(afternoon + DAY)
    assert newcomer.journeys()[0][1] == MIDNIGHT + 18 * HOUR  # 19:00 in Berlin
    impatient = CONFIG.with_overrides({"journeys": {"best_hour_max_wait_ms": HOUR}})
    hurried = Shopper(impatient, state=berlin).send(trigger(recent=5)).until(afternoon + DAY)
    assert hurried.journeys()[0][1] == afternoon + GAP


def test_an_order_decides_nothing_that_waits_and_a_refund_keeps_a_review_already_due():
    """Orders reach the push policy by a shorter path than behaviour: what waits is the timers' to decide."""
    shopper = Shopper().send(behaviour("cart", T0))
    shopper.send(order("shipped", T0 + 2 * HOUR, order_id="o9"))  # after the reminder's time
    assert [j for j, _, _ in shopper.journeys()] == ["order_status"]
    shopper.until(T0 + 2 * HOUR)
    assert [(j, at) for j, at, _ in shopper.journeys()] == [("order_status", T0 + 2 * HOUR),
                                                            ("cart_abandonment", T0 + HOUR)]
    due = Shopper().send(order("delivered", T0)).send(order("refunded", T0 + 4 * DAY)).until(T0 + 5 * DAY)
    assert [j for j, _, _ in due.journeys()] == ["order_status", "order_status", "review_request"]


def test_two_carts_of_one_item_due_together_are_one_cart_reminder_not_a_digest():
    evening = MIDNIGHT + 21 * HOUR + GAP  # both reminders fall in quiet hours and wait for 08:00
    shopper = Shopper().send(behaviour("cart", evening, event_id="c1")).send(behaviour("cart", evening + 60_000,
                                                                                       event_id="c2"))
    shopper.until(evening + 12 * HOUR)
    [n] = shopper.sent
    assert (n.journey, n.template, n.item_ids, n.scheduled_at) == ("cart_abandonment", "cart_reminder", ("shoe",),
                                                                   MIDNIGHT + DAY + 8 * HOUR)
