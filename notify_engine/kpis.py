"""What the people running a notification programme ask of it, per experiment and variant, from what the job wrote:
sends per shopper per day, delivery, open, click and conversion rates, unsubscribes and complaints, and purchases
per 1 000 shoppers against the holdout, each with a 95% interval and the test it comes from.

The shoppers of an arm are those the job decided a marketing message for (sent, or logged as an exposure when they
are in the holdout): the holdout's would-be sends make its shoppers the same kind of shopper as the treated ones, so
the difference in purchases per 1 000 between them is uplift, not attribution."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from state_schemas.events import FeedbackEvent
from state_schemas.outputs import Exposure, Notification, Outcome

Z95 = 1.959964  # the normal distribution's 97.5% point
DAY_MS = 86_400_000
TREATED, HOLDOUT = ("holdout", "treated"), ("holdout", "held out")  # the global holdout as an (experiment, variant)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    test: str  # how the interval was made

    def scaled(self, factor: float) -> "Estimate":
        return Estimate(self.value * factor, self.low * factor, self.high * factor, self.test)


def wilson(successes: int, trials: int) -> Estimate:
    """A proportion with its 95% Wilson score interval (sound near 0 and 1, unlike the normal one)."""
    if trials <= 0:
        return Estimate(math.nan, math.nan, math.nan, "wilson")
    p, z2 = successes / trials, Z95 * Z95
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    spread = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return Estimate(p, max(0.0, centre - spread), min(1.0, centre + spread), "wilson")


def mean(values: list[float]) -> Estimate:
    """A mean with its 95% normal interval (a t interval differs little at the sizes a programme runs at)."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, "normal mean")
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Estimate(m, m - Z95 * sd / math.sqrt(n), m + Z95 * sd / math.sqrt(n), "normal mean")


def difference(a: int, n_a: int, b: int, n_b: int) -> tuple[Estimate, float]:
    """(p_a - p_b with its 95% Wald interval, the two-sided p-value of the pooled two-proportion z-test)."""
    if min(n_a, n_b) <= 0:
        return Estimate(math.nan, math.nan, math.nan, "two-proportion z"), math.nan
    pa, pb = a / n_a, b / n_b
    spread = Z95 * math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    pooled = (a + b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p_value = math.erfc(abs(pa - pb) / se / math.sqrt(2)) if se > 0 else 1.0
    return Estimate(pa - pb, pa - pb - spread, pa - pb + spread, "two-proportion z"), p_value


@dataclass
class Arm:
    """What one arm's shoppers were sent and did."""

    users: set = field(default_factory=set)
    sends: dict = field(default_factory=dict)  # notification id -> (user, scheduled_at)
    actions: dict = field(default_factory=lambda: defaultdict(set))  # feedback action -> notification ids
    leavers: dict = field(default_factory=lambda: defaultdict(set))  # unsubscribe / complained -> users
    converted_sends: set = field(default_factory=set)
    buyers: set = field(default_factory=set)  # shoppers with a purchase attributed to a message (or exposure)


@dataclass
class Tally:
    """Arms by (experiment, variant), filled record by record: the shape of a long read."""

    arms: dict = field(default_factory=lambda: defaultdict(Arm))
    arm_of_send: dict = field(default_factory=dict)  # notification id -> its arms
    arms_of_user: dict = field(default_factory=lambda: defaultdict(set))
    first: int | None = None
    last: int | None = None

    def _arms(self, experiments, holdout: bool) -> list:
        """The holdout's shoppers are its arm alone: what they are sent is the control of every experiment."""
        return [HOLDOUT] if holdout else [TREATED, *((name, variant) for name, variant in experiments)]

    def _sent(self, notification: Notification, holdout: bool) -> None:
        at = notification.scheduled_at or notification.created_at
        self.first = at if self.first is None else min(self.first, at)
        self.last = at if self.last is None else max(self.last, at)
        arms = self._arms(notification.experiments, holdout)
        self.arm_of_send[notification.notification_id] = arms
        for key in arms:
            arm = self.arms[key]
            arm.users.add(notification.user)
            arm.sends[notification.notification_id] = (notification.user, at)
            self.arms_of_user[notification.user].add(key)

    def add(self, record, pseudonym_of=None) -> None:
        """A notification, exposure, outcome or feedback event (`pseudonym_of` turns its raw user id into the
        pseudonym the outputs carry)."""
        if isinstance(record, Notification):
            if record.kind == "marketing":
                self._sent(record, holdout=False)
        elif isinstance(record, Exposure):
            self._sent(record.notification, holdout=True)
        elif isinstance(record, Outcome):
            for key in self._arms(record.experiments, record.holdout):
                arm = self.arms[key]
                if record.behavior == "purchase":
                    arm.converted_sends.add(record.notification_id)
                    arm.buyers.add(record.user)
        elif isinstance(record, FeedbackEvent):
            if record.action in ("unsubscribe", "complained"):
                user = pseudonym_of(record.user_id)
                for key in self.arms_of_user.get(user, ()):
                    self.arms[key].leavers[record.action].add(user)
            if record.notification_id:
                for key in self.arm_of_send.get(record.notification_id, ()):
                    self.arms[key].actions[record.action].add(record.notification_id)


@dataclass(frozen=True)
class Row:
    experiment: str
    variant: str
    metric: str
    estimate: Estimate
    p_value: float | None = None  # against the holdout, for the uplift rows


def rows(tally: Tally) -> list[Row]:
    """Every metric of every arm, then the uplift of the treated over the holdout (purchases per 1 000)."""
    days = max(1.0, ((tally.last or 0) - (tally.first or 0)) / DAY_MS)
    out = []
    for (experiment, variant), arm in sorted(tally.arms.items()):
        sends, users = len(arm.sends), len(arm.users)
        per_user = defaultdict(int)
        for user, _ in arm.sends.values():
            per_user[user] += 1
        metrics = [("shoppers", Estimate(users, users, users, "count")),
                   ("sends_per_user_per_day", mean([per_user[u] / days for u in arm.users]))]
        if (experiment, variant) != HOLDOUT:  # nothing was delivered to the holdout
            metrics += [(f"{name}_rate", wilson(len(arm.actions[action] & arm.sends.keys()), sends))
                        for name, action in (("delivery", "delivered"), ("open", "open"), ("click", "click"))]
            metrics += [(f"{action}_rate", wilson(len(arm.leavers[action]), users))
                        for action in ("unsubscribe", "complained")]
        metrics += [("conversion_rate", wilson(len(arm.converted_sends & arm.sends.keys()), sends)),
                    ("purchases_per_1000_users", wilson(len(arm.buyers), users).scaled(1000))]
        out += [Row(experiment, variant, metric, estimate) for metric, estimate in metrics]
    treated, held = tally.arms.get(TREATED), tally.arms.get(HOLDOUT)
    if treated is not None and held is not None:
        lift, p_value = difference(len(treated.buyers), len(treated.users), len(held.buyers), len(held.users))
        out.append(Row(*TREATED, "uplift_purchases_per_1000_users", lift.scaled(1000), p_value))
    return out


def tally(records: Iterable, pseudonym_of) -> Tally:
    """Notifications and exposures first: feedback and outcomes find their arms through them."""
    counted = Tally()
    for record in records:
        counted.add(record, pseudonym_of)
    return counted
