"""`make eval`: prequential (test-then-train) replay of a real event log.

Before each cart or purchase event, every recommender ranks 10 items for that shopper from the
state built so far; the event's item is the one relevant answer. Then the event is learned,
through the job's own core (`LocalPipeline`), so what is measured is what the job would send.

Recommenders:
- hybrid: the job's scorer (operators.scorer.rank) for the shopper's latest item as the trigger,
  with the configured blend of CF, content, segment trend, trending popularity and affinity;
  a shopper with no history gets the scorer's cold-start fallback (trending items);
- cf / content / segment / trending / affinity: the same scorer with one signal's weight alone;
- popularity: the most popular items under the item model's decay, the baseline.

Last line: hr10_hybrid=<x> hr10_popularity=<y> ndcg10_hybrid=<z> coverage=<c>
"""
from __future__ import annotations

import argparse
import dataclasses
import heapq
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgspec.structs import replace  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evaluation.metrics import Tally  # noqa: E402
from config import JobConfig, ScoringConfig, load_config  # noqa: E402
from notify_engine import datasets  # noqa: E402
from operators.decay import decayed_add, decayed_value  # noqa: E402
from operators.item_model import refresh_neighbours  # noqa: E402
from operators.local_pipeline import DictStore, LocalPipeline, Outputs  # noqa: E402
from operators.scorer import rank  # noqa: E402
from operators.user_context import summarise  # noqa: E402
from state_schemas.events import BehaviourEvent, encode  # noqa: E402
from state_schemas.hops import ITEM_MODEL, PUSH_POLICY, USER_CONTEXT, ItemSignal  # noqa: E402
from state_schemas.state import UserContext  # noqa: E402
from state_schemas.units import HOUR_MS  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_small.csv"
TARGETS = frozenset({"cart", "purchase"})
SIGNAL_WEIGHTS = {"cf": "weight_cf", "content": "weight_content", "segment": "weight_segment",
                  "trending": "weight_popularity", "affinity": "weight_affinity"}


class Popularity:
    """Decayed interaction counts of every item, as the item model keeps them per item."""

    def __init__(self, config: JobConfig):
        self.half_life_ms = config.item_model.popularity_half_life_hours * HOUR_MS
        self.weights = config.profile.event_weights
        self.scores: dict[str, tuple[float, int]] = {}

    def learn(self, event: BehaviourEvent) -> None:
        value, at = self.scores.get(event.item_id, (0.0, event.ts))
        self.scores[event.item_id] = decayed_add(value, at, self.weights.get(event.behavior, 0.0), event.ts,
                                                 self.half_life_ms)

    def top(self, n: int, now: int, exclude: set[str]) -> list[str]:
        ranked = heapq.nlargest(n + len(exclude), self.scores.items(),
                                key=lambda kv: decayed_value(kv[1][0], kv[1][1], now, self.half_life_ms))
        return [item for item, _ in ranked if item not in exclude][:n]


def only(signal: str, scoring: ScoringConfig) -> ScoringConfig:
    weights = {name: 0.0 for name in SIGNAL_WEIGHTS.values()}
    weights[SIGNAL_WEIGHTS[signal]] = 1.0
    return dataclasses.replace(scoring, **weights)


def trigger_signal(pipeline: LocalPipeline, context: UserContext, user_id: str, now: int) -> ItemSignal:
    """What the item hop would send for the shopper's latest item, had it been a trigger now."""
    latest = context.history[-1]
    state = pipeline.state(ITEM_MODEL, latest.item_id)
    neighbours = refresh_neighbours(state, pipeline.side.cards, pipeline.config.item_model).neighbours
    event = BehaviourEvent(event_id="eval", user_id=user_id, item_id=latest.item_id, ts=now, behavior=latest.behavior)
    return ItemSignal(event=event, card=state.card(), trigger=True, neighbours=neighbours, summary=summarise(context))


def recommend(pipeline: LocalPipeline, user_id: str, now: int, scoring: ScoringConfig, k: int) -> list[str]:
    config = pipeline.config
    pipeline.side.now = now
    context: UserContext = pipeline.state(USER_CONTEXT, user_id)
    if not context.history:  # a new shopper: the scorer's cold-start path
        return [item for item, _ in pipeline.side.trending(None)][:k]
    # Quality of the ranking, not of the cooldown: items already notified stay eligible here.
    state = replace(pipeline.state(PUSH_POLICY, user_id), recent_items={})
    ranked = rank(trigger_signal(pipeline, context, user_id, now), state, pipeline.side, now, scoring, config.policy)
    return [entry.item_id for entry in ranked[:k]]


def evaluate(events: list[BehaviourEvent], config: JobConfig, k: int,
             novel: dict[str, Tally] | None = None) -> tuple[dict[str, Tally], int]:
    """Tallies per recommender; `novel`, if given, also tallies the targets that are not the
    shopper's latest item (the engine never pushes the item just seen, popularity may)."""
    variants = {"hybrid": config.scoring, **{name: only(name, config.scoring) for name in SIGNAL_WEIGHTS}}
    tallies = {name: Tally(k) for name in [*variants, "popularity"]}
    if novel is not None:
        novel.update({name: Tally(k) for name in tallies})
    popularity = Popularity(config)
    pipeline, out = LocalPipeline(config, DictStore()), Outputs()
    wall_clock = int(time.time() * 1000)
    for event in tqdm(events, desc="prequential replay", unit="ev", mininterval=0.5):
        if event.behavior in TARGETS and event.item_id is not None:
            context = pipeline.state(USER_CONTEXT, event.user_id)
            ranked = {name: recommend(pipeline, event.user_id, event.ts, scoring, k)
                      for name, scoring in variants.items()}
            ranked["popularity"] = popularity.top(k, event.ts, set(context.purchased))
            is_novel = not context.history or context.history[-1].item_id != event.item_id
            for name, items in ranked.items():
                tallies[name].add(items, event.item_id)
                if novel is not None and is_novel:
                    novel[name].add(items, event.item_id)
        pipeline.process(encode(event), wall_clock, out)
        if event.item_id is not None:
            popularity.learn(event)
        out.notifications.clear()
        out.serving.clear()
    return tallies, len(popularity.scores)


def plot(tallies: dict[str, Tally], catalogue: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(tallies)
    measures = {"HR@10": [tallies[n].hit_rate for n in names], "NDCG@10": [tallies[n].ndcg for n in names],
                "coverage": [tallies[n].coverage(catalogue) for n in names]}
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    for axis, (label, values) in zip(axes, measures.items()):
        axis.bar(names, values, color=["#2b6cb0" if n.startswith("hybrid") else "#a0aec0" for n in names])
        axis.set_title(label)
        axis.tick_params(axis="x", rotation=30)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="Taobao UserBehavior or REES46 CSV (default: the shared Taobao sample)")
    parser.add_argument("--limit", type=int, help="read at most this many events")
    parser.add_argument("--config", type=Path, help="job config whose model settings are evaluated")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--plot", type=Path, default=ROOT / "evaluation" / "results" / "prequential.png")
    args = parser.parse_args(argv)

    events = datasets.sorted_by_time(datasets.read_events(args.dataset, limit=args.limit))
    novel: dict[str, Tally] = {}
    tallies, catalogue = evaluate(events, load_config(args.config), args.k, novel)
    print(f"\n{args.dataset.name}: {len(events)} events, {tallies['popularity'].targets} cart/purchase targets, "
          f"{catalogue} items")
    print(f"{'recommender':<16}{'HR@' + str(args.k):>10}{'NDCG@' + str(args.k):>10}{'coverage':>10}")
    for name, tally in tallies.items():
        print(f"{name:<16}{tally.hit_rate:>10.4f}{tally.ndcg:>10.4f}{tally.coverage(catalogue):>10.4f}")
    print(f"\nthe {novel['hybrid'].targets} targets that are not the shopper's latest item "
          f"({novel['hybrid'].targets / max(tallies['hybrid'].targets, 1):.0%}):")
    for name in ("hybrid", "popularity"):
        print(f"{name:<16}{novel[name].hit_rate:>10.4f}{novel[name].ndcg:>10.4f}")
    popularity = tallies["popularity"].hit_rate
    ratio = tallies["hybrid"].hit_rate / popularity if popularity else float("inf")
    print(f"hybrid vs popularity: HR@{args.k} x{ratio:.2f} ({tallies['hybrid'].hit_rate - popularity:+.4f})")
    plot(tallies, catalogue, args.plot, f"Prequential replay of {args.dataset.name}")
    print(f"plot: {args.plot}")
    hybrid = tallies["hybrid"]
    print(f"hr10_hybrid={hybrid.hit_rate:.4f} hr10_popularity={popularity:.4f} ndcg10_hybrid={hybrid.ndcg:.4f} "
          f"coverage={hybrid.coverage(catalogue):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
