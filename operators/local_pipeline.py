"""The job's dataflow without Flink: the same stages, steps and messages, routed in one process.

Every message goes where it names (`DESTINATION`, `routing_key`), encoded and decoded as it is
across Flink's keyed shuffles, to the stage `operators.topology` names; each Step is carried out
as the Flink shell carries it out (state, timers, counters, effects, emitted messages). Nothing
here decides anything, so this twin cannot drift from the job. Side inputs that the job reads from
Redis (item cards, trending, new listings) live in memory here and are always fresh, so at
parallelism 1 the job and this pipeline agree whenever the job's caches are fresh too.
Benchmarks use it as the Python ceiling; `make eval` replays real logs through it.
"""
from __future__ import annotations

import bisect
import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol

from config import JobConfig
from state_schemas import codec
from state_schemas.hops import CATALOG_TERMS, USER_CONTEXT, WINDOWS
from state_schemas.outputs import DeadLetter, Exposure, Notification, Outcome, UserErased
from state_schemas.state import ItemCard, Neighbour

from . import catalog_intake, directory, intake
from .catalog import VocabularyView
from .journeys import population_hour
from .steps import (FACTS_KEPT, ListNewArrival, PublishCard, PublishNeighbours, RecordFacts, Step,
                    StepContext, VoteBestHour)
from .topology import DELETE_PART, STAGES, Stage
from .trending import TrendingWindows, category_then_global, last_window_end

ARRIVALS_READ = 20
TRENDING_KEPT_MS = 24 * 3_600_000


class StateStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class DictStore(dict):
    def set(self, key: str, value: str) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


@dataclass
class Outputs:
    notifications: list[Notification] = field(default_factory=list)
    erasures: list[UserErased] = field(default_factory=list)  # the tombstones the notifications topic gets
    exposures: list[Exposure] = field(default_factory=list)  # the holdout's would-be sends
    outcomes: list[Outcome] = field(default_factory=list)  # carts and purchases attributed to a message
    dead_letters: list[DeadLetter] = field(default_factory=list)
    serving: list = field(default_factory=list)  # the serving effects (profile, top-N, erasure), in order


# What the job writes to its sinks, by kind: the Outputs list each goes on.
OUTPUT_LISTS = {Notification: "notifications", UserErased: "erasures", Exposure: "exposures", Outcome: "outcomes"}


class MemorySideInputs:
    """Item cards, facts, trending and new listings as the job's Redis side inputs hold them, kept in memory."""

    def __init__(self, config: JobConfig):
        self.top_n = config.trending.top_n
        self.item_cards: dict[str, ItemCard] = {}
        self.item_facts: dict[str, list[tuple[int, ItemCard]]] = {}  # item -> (time, facts), by time
        self.neighbours: dict[str, tuple[Neighbour, ...]] = {}
        # Windows a decision may still ask for: those of the last day before the newest event.
        self.windows = TrendingWindows(config.trending.window_ms, config.trending.slide_ms,
                                       config.profile.event_weights, kept_ms=TRENDING_KEPT_MS)
        self.listings: dict[str, dict[str, int]] = {}
        self.window_ms, self.slide_ms = config.trending.window_ms, config.trending.slide_ms
        self.trending_lists: dict[int, dict] = {}  # window end -> its lists, computed once
        self.trending_enabled = config.windows_enabled
        self.votes: dict[int, dict[str, int]] = {}  # local hour -> shopper -> when voted

    def cards(self, items: Iterable[str], fresh: bool = False) -> Mapping[str, ItemCard]:
        return {item: self.item_cards[item] for item in items if item in self.item_cards}

    def facts(self, items: Iterable[str], at: int) -> Mapping[str, ItemCard]:
        found = {}
        for item in items:
            versions = self.item_facts.get(item, ())
            index = bisect.bisect_right(versions, at, key=lambda version: version[0])
            if index:
                found[item] = versions[index - 1][1]
        return found

    def trending(self, category: str | None, at: int) -> list[tuple[str, float]]:
        if not self.trending_enabled:  # the job writes no lists then, so its scorer reads none
            return []
        end = last_window_end(at, self.window_ms, self.slide_ms)
        if end not in self.trending_lists:
            self.trending_lists[end] = self.windows.tops(at, self.top_n)
        lists = self.trending_lists[end]
        own = lists.get(category, ()) if category is not None else ()
        return category_then_global(own, lists.get(None, ()))

    def arrivals(self, category: str | None, at: int) -> list[str]:
        listed = self.listings.get(category or "", {})
        known = sorted(((listed_at, item) for item, listed_at in listed.items() if listed_at <= at),
                       key=lambda pair: (-pair[0], pair[1]))
        return [item for _, item in known[:ARRIVALS_READ]]

    def population_best_hour(self, min_shoppers: int) -> int | None:
        return population_hour([len(self.votes.get(hour, {})) for hour in range(24)], min_shoppers)

    def apply(self, effect) -> bool:
        """Carry out an effect on the read model; False for effects on the serving store."""
        if isinstance(effect, VoteBestHour):
            for voters in self.votes.values():
                voters.pop(effect.user, None)
            if effect.hour is not None:
                self.votes.setdefault(effect.hour, {})[effect.user] = effect.at
                self.votes = {hour: {u: at for u, at in voters.items() if at >= effect.at - effect.kept_ms}
                              for hour, voters in self.votes.items()}
        elif isinstance(effect, PublishCard):
            self.item_cards[effect.item_id] = effect.card
        elif isinstance(effect, RecordFacts):
            versions = self.item_facts.setdefault(effect.item_id, [])
            bisect.insort(versions, (effect.at, effect.facts), key=lambda version: version[0])
            del versions[:-FACTS_KEPT]
        elif isinstance(effect, ListNewArrival):
            listed = self.listings.setdefault(effect.category_id, {})
            listed[effect.item_id] = effect.listed_at
            if len(listed) > effect.keep:
                del listed[min(listed, key=lambda item: (listed[item], item))]
        elif isinstance(effect, PublishNeighbours):
            self.neighbours[effect.item_id] = effect.neighbours
        else:
            return False
        return True


class LocalPipeline:
    def __init__(self, config: JobConfig, store: StateStore):
        self.config = config
        self.store = store
        self.side = MemorySideInputs(config)
        self.counters: Counter[str] = Counter()
        self.timers: list[tuple[int, str, str]] = []  # (time, stage, key), a heap
        self.pending_timers: set[tuple[int, str, str]] = set()  # one timer per key and time, as in Flink
        self.max_event_time: int | None = None

    # ------------------------------------------------------------------------------ the sources
    def process(self, raw: bytes, now_ms: int, out: Outputs) -> None:
        try:
            event = intake.admit(raw, now_ms, self.config.intake)
        except intake.Rejected as rejection:
            out.dead_letters.append(DeadLetter(reason=rejection.reason, stage="admit", raw=raw, rejected_at=now_ms))
            return
        self._send(USER_CONTEXT, event, now_ms, out)
        self.max_event_time = event.ts if self.max_event_time is None else max(self.max_event_time, event.ts)
        self._fire_timers(self.max_event_time - self.config.intake.out_of_orderness_ms - 1, now_ms, out)

    def process_catalog(self, raw: bytes, now_ms: int, out: Outputs) -> None:
        try:
            item = catalog_intake.admit_catalog(raw, now_ms, self.config.catalog, self.config.intake)
        except intake.Rejected as rejection:
            out.dead_letters.append(DeadLetter(reason=rejection.reason, stage="admit-catalog", raw=raw,
                                               rejected_at=now_ms))
            return
        self._send(CATALOG_TERMS, item, now_ms, out)

    def process_user_record(self, raw: bytes, now_ms: int, out: Outputs) -> None:
        try:
            record = directory.admit_user_record(raw, now_ms, self.config.intake)
        except intake.Rejected as rejection:
            out.dead_letters.append(DeadLetter(reason=rejection.reason, stage="admit-users", raw=raw,
                                               rejected_at=now_ms))
            return
        self._send(record.DESTINATION, record, now_ms, out)

    def finish(self, now_ms: int, out: Outputs) -> None:
        """The end of a bounded input: the watermark jumps to the end of time and every timer fires."""
        self._fire_timers(2 ** 63 - 1, now_ms, out)

    def state(self, stage_name: str, key: str):
        """One key's state as a stage holds it (the empty record if it has none)."""
        return self._load(STAGES[stage_name], key)[0]

    # ------------------------------------------------------------------------------ routing
    def _send(self, destination: str, message, now_ms: int, out: Outputs) -> None:
        output = OUTPUT_LISTS.get(type(message))
        if output is not None:  # leaves the job: onto the output of its kind
            getattr(out, output).append(message)
            return
        if destination == WINDOWS:
            event = message.event
            self.side.windows.observe(event.item_id, event.category_id, event.behavior, event.ts)
            return
        stage = STAGES[destination]
        # Encoded and decoded as across a keyed shuffle, so both the codec and its cost are the job's.
        message = codec.decode(message.encode(), stage.accepts, stage.name)
        key = message.routing_key
        context = StepContext(now=now_ms, side=self.side, config=self.config)
        loaded, stored = self._load(stage, key)
        self._apply(stage, key, loaded, stored, stage.step(loaded, message, context), now_ms, out)

    def _fire_timers(self, watermark: int, now_ms: int, out: Outputs) -> None:
        while self.timers and self.timers[0][0] <= watermark:
            timer = heapq.heappop(self.timers)
            if timer not in self.pending_timers:  # deleted (still in the heap, which is not searched)
                continue
            self.pending_timers.discard(timer)
            timestamp, name, key = timer
            stage = STAGES[name]
            loaded, stored = self._load(stage, key)
            context = StepContext(now=now_ms, side=self.side, config=self.config)
            self._apply(stage, key, loaded, stored, stage.on_timer(loaded, key, timestamp, context), now_ms, out)

    def _apply(self, stage: Stage, key: str, loaded, stored, step: Step, now_ms: int, out: Outputs) -> None:
        if step.state is not loaded:
            self._store(stage, key, step.state, stored)
        for timestamp in step.cancelled_timers:
            self.pending_timers.discard((timestamp, stage.name, key))
        for timestamp in step.timers:
            timer = (timestamp, stage.name, key)
            if timer not in self.pending_timers:
                self.pending_timers.add(timer)
                heapq.heappush(self.timers, timer)
        self.counters.update(step.counts)
        for effect in step.effects:
            if not self.side.apply(effect):
                out.serving.append(effect)
        for message in step.emit:
            self._send(getattr(message, "DESTINATION", None), message, now_ms, out)

    # ------------------------------------------------------------------------------ state
    def _load(self, stage: Stage, key: str):
        """(the state, its durable part as stored apart or None), as the Flink shell loads them."""
        if stage.state is None:  # the vocabulary: a document count and frequencies read term by term
            documents = self.store.get(f"{stage.name}:documents")
            return VocabularyView(int(documents or 0), lambda term: int(self.store.get(f"{stage.name}:df:{term}")
                                                                        or 0)), None
        state = stage.state.decode(self.store.get(f"{stage.name}:{key}"))
        if stage.durable is None:
            return state, None
        return stage.durable.join(state, self.store.get(f"{stage.durable.state_name}:{key}"))

    def _store(self, stage: Stage, key: str, state, stored) -> None:
        if stage.state is None:
            self.store.set(f"{stage.name}:documents", str(state.documents))
            for term, frequency in state.frequencies.items():
                if frequency:
                    self.store.set(f"{stage.name}:df:{term}", str(frequency))
                else:
                    self.store.delete(f"{stage.name}:df:{term}")
        elif state is None:
            self.store.delete(f"{stage.name}:{key}")
            if stage.durable is not None:
                self.store.delete(f"{stage.durable.state_name}:{key}")
        else:
            if stage.durable is not None:
                state, part = stage.durable.split(state, stored)
                if part == DELETE_PART:
                    self.store.delete(f"{stage.durable.state_name}:{key}")
                elif part is not None:
                    self.store.set(f"{stage.durable.state_name}:{key}", part.encode())
            self.store.set(f"{stage.name}:{key}", state.encode())
