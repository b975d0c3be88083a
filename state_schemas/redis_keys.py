"""The Redis key layout: every key the job writes or reads, spelt in this one place.

Users appear in keys only as pseudonyms. What a user's erasure deletes is `user_keys` plus the
keys matching `user_key_patterns`, so adding a per-user key here is where it joins the erasure.
"""
from __future__ import annotations

from dataclasses import dataclass

from .trending import USER_COUNTS_PREFIX


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    # --- per item: the job's shared read model --------------------------------------------------
    def card(self, item: str) -> str:
        """String: the item's card (counts, popularity, vector, stock), JSON."""
        return f"{self.prefix}:card:{item}"

    def facts(self, item: str) -> str:
        """Sorted set: "<time>:<card JSON>" -> time, the item's facts (catalogue or events: category, title, price,
        stock, vector) as each change left them, by the change's event time; read as of a decision's time."""
        return f"{self.prefix}:facts:{item}"

    def neighbours(self, item: str) -> str:
        """Sorted set: similar item -> cosine similarity, the item's top-K."""
        return f"{self.prefix}:neighbours:{item}"

    def arrivals(self, category: str) -> str:
        """Sorted set: item -> catalogue time, the category's newest listings."""
        return f"{self.prefix}:arrivals:{category}"

    def best_hour_votes(self, hour: int) -> str:
        """Sorted set: pseudonym -> when voted, the shoppers whose own best hour is this local hour."""
        return f"{self.prefix}:best-hour:{hour:02d}"

    # --- windowed aggregates --------------------------------------------------------------------
    def trending(self, scope: str) -> str:
        """Sorted set: item id -> weighted count in the scope's latest window, replaced whole per window."""
        return f"{self.prefix}:trending:{scope}"

    def trending_at(self, scope: str, window_end: int) -> str:
        """Sorted set: as `trending`, of the window that ended at `window_end`; read as of a decision's time."""
        return f"{self.prefix}:trending:{scope}@{window_end}"

    def counts(self, scope: str, window_start: int | str) -> str:
        """Hash: behaviour -> events in the tumbling window starting at `window_start`."""
        return f"{self.prefix}:counts:{scope}:{window_start}"

    # --- per user (pseudonym) -------------------------------------------------------------------
    def inbox(self, user: str) -> str:
        """Sorted set: notification id -> source event time, the newest `redis.inbox_size`."""
        return f"{self.prefix}:inbox:{user}"

    def inbox_bodies(self, user: str) -> str:
        """Hash: notification id -> notification JSON, for the ids in the inbox."""
        return f"{self.prefix}:inbox:{user}:body"

    def profile(self, user: str) -> str:
        """String: the user's served profile, JSON, replaced on each trigger."""
        return f"{self.prefix}:profile:{user}"

    def intent(self, user: str) -> str:
        """String: the user's purchase intent, JSON {"p": probability, "at": event time}, after each event."""
        return f"{self.prefix}:intent:{user}"

    def top_n(self, user: str) -> str:
        """Sorted set: recommended item -> score, replaced on each trigger."""
        return f"{self.prefix}:topn:{user}"

    def top_n_reasons(self, user: str) -> str:
        """Hash: recommended item -> the reason shown with it."""
        return f"{self.prefix}:topn:{user}:reason"

    def erased(self, user: str) -> str:
        """String: when the pseudonym was erased (epoch ms), kept `redis.ttl_hours`, the longest a window can
        stay open; nothing else of the user."""
        return f"{self.prefix}:erased:{user}"

    def user_keys(self, user: str) -> tuple[str, ...]:
        """Every per-user key with a fixed name."""
        return (self.profile(user), self.top_n(user), self.top_n_reasons(user), self.inbox(user),
                self.inbox_bodies(user), self.intent(user))

    def user_key_patterns(self, user: str) -> tuple[str, ...]:
        """Per-user keys named by a window: found by SCAN."""
        return (self.counts(USER_COUNTS_PREFIX + user, "*"),)
