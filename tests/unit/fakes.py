"""Test doubles shared by the Flink-free unit tests."""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from state_schemas.state import ItemCard


class FakeSide:
    """The scorer's side inputs (item cards, trending, new listings) held in plain dicts, the same at any time.

    `trending` and `arrivals` are keyed by category; the key None holds the global list, which a
    category without a list of its own falls back to (as the job's reader merges the two). Facts are the
    cards' (without counts); `facts_read_at` records the times they were asked for.
    """

    def __init__(self, cards: Mapping[str, ItemCard] | None = None,
                 trending: Mapping[str | None, Sequence[tuple[str, float]]] | None = None,
                 arrivals: Mapping[str | None, Sequence[str]] | None = None, population_hour: int | None = None):
        self.card_map = dict(cards or {})
        self.population_hour = population_hour
        self.trending_by = dict(trending or {})
        self.arrivals_by = dict(arrivals or {})
        self.facts_read_at: list[int] = []

    def cards(self, items: Iterable[str], fresh: bool = False) -> Mapping[str, ItemCard]:
        return {item: self.card_map[item] for item in items if item in self.card_map}

    def facts(self, items: Iterable[str], at: int) -> Mapping[str, ItemCard]:
        self.facts_read_at.append(at)
        return self.cards(items)

    def trending(self, category: str | None, at: int) -> Sequence[tuple[str, float]]:
        return list(self.trending_by.get(category, self.trending_by.get(None, ())))

    def arrivals(self, category: str | None, at: int) -> Sequence[str]:
        return list(self.arrivals_by.get(category, ()))

    def population_best_hour(self, min_shoppers: int) -> int | None:
        return self.population_hour


EMPTY_SIDE = FakeSide()
