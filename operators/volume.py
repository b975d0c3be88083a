"""The volume controller: a send threshold on a message's expected utility (its best item's score), one per
shopper, moved at each marketing decision so that their marketing holds `policy.volume_target_per_week` (or
their segment's target, `policy.volume_targets_by_segment`).

Each decision that reaches the threshold moves it as a stochastic approximation of the quantile that lets the
target through: up by `volume_step` x (1 - share) when the message goes, down by `volume_step` x share when it
does not, where share = target / decisions of the last 7 days. It rests where the share of messages sent is the
share the target allows, sending the most useful ones; a shopper with fewer decisions than the target sees it
fall to zero, so everything useful goes. Kept in the shopper's state and moved in event time, it replays the
same after a restart and at any parallelism. Per shopper, not one threshold for everyone: no shopper is sent more
than the target to make up for shoppers with little to say to (a single threshold would), so the realised volume
per active shopper is at most the target."""
from __future__ import annotations

from config import PolicyConfig

WEEK_DAYS = 7


def this_week(days: tuple[int, ...], day: int) -> tuple[int, ...]:
    """The local days of the 7 up to and including `day`."""
    return tuple(d for d in days if d > day - WEEK_DAYS)


def target(segment: int | None, policy: PolicyConfig) -> float:
    """The shopper's weekly target: their segment's if it has one of its own (0: no threshold)."""
    return policy.volume_targets_by_segment.get(segment, policy.volume_target_per_week)


def moved(threshold: float, sent: bool, decided_this_week: int, weekly_target: float, policy: PolicyConfig) -> float:
    share = min(1.0, weekly_target / max(decided_this_week, 1))
    step = policy.volume_step * ((1.0 if sent else 0.0) - share)
    return min(policy.volume_max_threshold, max(0.0, threshold + step))
