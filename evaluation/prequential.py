"""`make eval`: prequential (test-then-train) replay of a real event log.

Before each cart or purchase event, every recommender ranks 10 items for that shopper from the
state built so far; the event's item is the one relevant answer. Then the event is learned,
through the job's own core (`LocalPipeline`), so what is measured is what the job would send.

Two rankings, each for every recommender:
- discovery: the shopper's latest item may not be named (a "you might also like" message);
- re-engagement: it may ("still thinking about X?", a browse-abandonment message).
Purchases are excluded from both, as the job excludes them.

Recommenders:
- hybrid: the job's scorer (operators.scorer.rank) for the shopper's latest item as the trigger,
  with the configured blend; a shopper with no history gets the scorer's cold start (trending);
- cf / content / segment / trending / affinity / recency / mf: the same scorer with one signal alone;
- learned: the learned blend (operators.blend), one model for all shoppers, trained on each target
  after it is tested (the target as chosen, the candidates it ranked above it as not);
- the baselines of `evaluation.baselines`: popularity, recently viewed, item-KNN, batch MF;
- own_oracle, not a recommender but a ceiling: it names the target whenever the target is one of the
  shopper's own earlier items that the ranking may name (not bought; in discovery, not the latest), so no
  ranking of the shopper's own items hits more. With no hit on a never-touched item ("HR unseen" 0), it
  bounds every recommender here.

Each hit rate is printed with a 95% interval from a bootstrap over shoppers. Purchase intent is
evaluated on the same log by `evaluation.intent` (AUC against a recency-frequency baseline). Last line:
hr10_hybrid=<x> hr10_popularity=<y> hr10_recent=<r> hr10_itemknn=<k> hr10_mf_batch=<m> ndcg10_hybrid=<z>
coverage=<c> intent_auc=<a>, all of the discovery ranking.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgspec.structs import replace  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evaluation.baselines import BatchMF, ItemKNN, Popularity, RecentlyViewed  # noqa: E402
from evaluation.intent import evaluate_intent, print_intent  # noqa: E402
from evaluation.metrics import Bootstrap, Tally  # noqa: E402
from config import JobConfig, ScoringConfig, load_config  # noqa: E402
from notify_engine import datasets  # noqa: E402
from operators import blend  # noqa: E402
from operators.item_model import refresh_neighbours  # noqa: E402
from operators.local_pipeline import DictStore, LocalPipeline, Outputs  # noqa: E402
from operators.scorer import rank  # noqa: E402
from operators.user_context import summarise  # noqa: E402
from state_schemas.events import BehaviourEvent, encode  # noqa: E402
from state_schemas.hops import ITEM_MODEL, PUSH_POLICY, USER_CONTEXT, ItemSignal  # noqa: E402
from state_schemas.state import FtrlModel, PushState, UserContext  # noqa: E402
from state_schemas.units import DAY_MS  # noqa: E402

DEFAULT_DATASETS = [ROOT.parent / "shared" / "data" / name
                    for name in ("taobao_userbehavior_small.csv", "rees46_2019oct_head.csv")]
TARGETS = frozenset({"cart", "purchase"})
SIGNAL_WEIGHTS = {"cf": "weight_cf", "content": "weight_content", "segment": "weight_segment",
                  "trending": "weight_popularity", "affinity": "weight_affinity", "recency": "weight_recency",
                  "mf": "weight_mf"}
RANKINGS = ("discovery", "reengage")
BASELINES = ("popularity", "recent", "itemknn", "mf_batch")
ORACLE = "own_oracle"
MF_PERIODS_AT_LEAST = 8  # a log shorter than 8 days is refitted 8 times, evenly


@dataclass
class Report:
    tallies: dict[str, dict[str, Tally]]  # ranking -> recommender -> tally
    catalogue: int
    mf_fits: int


def only(signal: str, scoring: ScoringConfig) -> ScoringConfig:
    weights = {name: 0.0 for name in SIGNAL_WEIGHTS.values()}
    weights[SIGNAL_WEIGHTS[signal]] = 1.0
    return dataclasses.replace(scoring, **weights, recent_first=False)  # the signal alone orders every candidate


def trigger_signal(pipeline: LocalPipeline, context: UserContext, user_id: str, now: int) -> ItemSignal:
    """What the item hop would send for the shopper's latest item, had it been a trigger now."""
    latest = context.history[-1]
    state = pipeline.state(ITEM_MODEL, latest.item_id)
    neighbours = refresh_neighbours(state, pipeline.side.cards, pipeline.config.item_model).neighbours
    event = BehaviourEvent(event_id="eval", user_id=user_id, item_id=latest.item_id, ts=now, behavior=latest.behavior)
    return ItemSignal(event=event, card=state.card(), trigger=True, neighbours=neighbours, summary=summarise(context))


def scene(pipeline: LocalPipeline, user_id: str, now: int) -> tuple[ItemSignal, PushState] | None:
    """What the scorer sees for the shopper now; None for a shopper with no history."""
    context: UserContext = pipeline.state(USER_CONTEXT, user_id)
    if not context.history:
        return None
    # Quality of the ranking, not of the cooldown: items already notified stay eligible here.
    return trigger_signal(pipeline, context, user_id, now), replace(pipeline.state(PUSH_POLICY, user_id),
                                                                   recent_items={})


def cold_start(pipeline: LocalPipeline, k: int, now: int) -> list[str]:
    return [item for item, _ in pipeline.side.trending(None, now)][:k]  # the scorer's cold-start path


def recommend(pipeline: LocalPipeline, user_id: str, now: int, scoring: ScoringConfig, k: int,
              with_trigger: bool) -> list[str]:
    seen = scene(pipeline, user_id, now)
    if seen is None:
        return cold_start(pipeline, k, now)
    ranked = rank(*seen, pipeline.side, now, scoring, pipeline.config.policy, with_trigger=with_trigger)
    return [entry.item_id for entry in ranked[:k]]


class LearnedBlend:
    """The learned blend (operators.blend), tested on each target before it learns from it."""

    def __init__(self, config: JobConfig):
        self.config, self.model = config, FtrlModel()
        self.entries: list = []

    def top(self, pipeline: LocalPipeline, user_id: str, now: int, k: int, with_trigger: bool) -> list[str]:
        seen = scene(pipeline, user_id, now)
        if seen is None:
            self.entries = []
            return cold_start(pipeline, k, now)
        entries = blend.candidates(*seen, pipeline.side, now, self.config, with_trigger=with_trigger)
        if with_trigger:
            self.entries = entries  # the wider pool: what it learns from
        ranked = blend.rescore(entries, self.model, self.config.blend, self.config.scoring.diversity_penalty)
        return [entry.item_id for entry in ranked[:k]]

    def learn(self, chosen: str) -> None:
        self.model = blend.learn(self.model, self.entries, chosen, self.config.blend)


def mf_period(events: list[BehaviourEvent]) -> int:
    span = events[-1].ts - events[0].ts if events else 0
    return DAY_MS if span >= MF_PERIODS_AT_LEAST * DAY_MS else max(span // MF_PERIODS_AT_LEAST, 1)


def evaluate(events: list[BehaviourEvent], config: JobConfig, k: int, mf: bool = True) -> Report:
    """Tallies per ranking and recommender, every recommender on every target. The streamed factors are
    learned even where the config leaves them off, so the mf signal is measured either way."""
    config = dataclasses.replace(config, factors=dataclasses.replace(config.factors, enabled=True))
    variants = {"hybrid": config.scoring, **{name: only(name, config.scoring) for name in SIGNAL_WEIGHTS}}
    recent = RecentlyViewed()
    baselines = {"popularity": Popularity(config), "recent": recent,
                 "itemknn": ItemKNN(recent, config.profile.history_size)}
    if mf:
        baselines["mf_batch"] = BatchMF(config, mf_period(events))
    learned = LearnedBlend(config)
    tallies = {ranking: {name: Tally(k) for name in [*variants, "learned", *baselines, ORACLE]} for ranking in RANKINGS}
    pipeline, out = LocalPipeline(config, DictStore()), Outputs()
    wall_clock = int(time.time() * 1000)
    for event in tqdm(events, desc="prequential replay", unit="ev", mininterval=0.5):
        user = event.user_id
        if event.behavior in TARGETS and event.item_id is not None:
            purchased = set(pipeline.state(USER_CONTEXT, user).purchased)
            latest = recent.latest(user)
            seen = event.item_id in recent.items.get(user, {})
            for ranking in RANKINGS:
                reengage = ranking == "reengage"
                exclude = purchased if reengage or latest is None else purchased | {latest}
                ranked = {name: recommend(pipeline, user, event.ts, scoring, k, with_trigger=reengage)
                          for name, scoring in variants.items() if name == "hybrid" or not reengage}
                ranked["learned"] = learned.top(pipeline, user, event.ts, k, with_trigger=reengage)
                ranked.update({name: model.top(user, k, event.ts, exclude) for name, model in baselines.items()})
                ranked[ORACLE] = [event.item_id] if seen and event.item_id not in exclude else []
                for name, items in ranked.items():
                    tallies[ranking][name].add(items, event.item_id, user, seen)
            learned.learn(event.item_id)
        pipeline.process(encode(event), wall_clock, out)
        if event.item_id is not None:
            for model in baselines.values():
                model.learn(event)
        out.notifications.clear()
        out.serving.clear()
    tallies["reengage"] = {name: tally for name, tally in tallies["reengage"].items() if tally.targets}
    fits = baselines["mf_batch"].fits if mf else 0
    return Report(tallies, len(baselines["popularity"].scores), fits)


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


def print_report(name: str, events: int, report: Report, k: int, intent_auc: float) -> str:
    """The tables and the goals; returns the summary line."""
    discovery = report.tallies["discovery"]
    print(f"\n{name}: {events} events, {discovery['hybrid'].targets} cart/purchase targets, "
          f"{report.catalogue} items, batch MF refitted {report.mf_fits} times")
    for ranking, tallies in report.tallies.items():
        boot = Bootstrap(tallies)
        print(f"\n{ranking} ranking" + (" (the latest item may not be named)" if ranking == "discovery" else
                                         " (the latest item may be named)"))
        print(f"{'recommender':<14}{'HR@' + str(k):>8}  {'95% CI':<17}{'NDCG@' + str(k):>8}{'coverage':>10}"
              f"{'HR unseen':>11}")
        for recommender, tally in tallies.items():
            low, high = boot.interval(recommender)
            print(f"{recommender:<14}{tally.hit_rate:>8.4f}  [{low:.4f}, {high:.4f}]  {tally.ndcg:>8.4f}"
                  f"{tally.coverage(report.catalogue):>10.4f}{tally.unseen_hit_rate:>11.4f}")
    print("(HR unseen: hits on items the shopper had never touched before the target; "
          f"{ORACLE}: the target whenever it is an own earlier item the ranking may name, a ceiling)")
    boot = Bootstrap(discovery)
    best = max(("popularity", "recent", "itemknn"), key=lambda n: discovery[n].hit_rate)
    ratio = discovery["hybrid"].hit_rate / discovery[best].hit_rate if discovery[best].hit_rate else float("inf")
    low, high = boot.ratio_interval("hybrid", best)
    ceiling = discovery[ORACLE].hit_rate / discovery[best].hit_rate if discovery[best].hit_rate else float("inf")
    c_low, c_high = boot.ratio_interval(ORACLE, best)
    print(f"\ngoal, discovery: hybrid >= 1.2x the best simple baseline ({best}): x{ratio:.2f} "
          f"[{low:.2f}, {high:.2f}] -> {'met' if ratio >= 1.2 else 'NOT met'}; "
          f"{ORACLE} x{ceiling:.2f} [{c_low:.2f}, {c_high:.2f}]")
    reengage = report.tallies["reengage"]
    boot = Bootstrap(reengage)
    ratio = reengage["hybrid"].hit_rate / reengage["recent"].hit_rate if reengage["recent"].hit_rate else float("inf")
    low, high = boot.ratio_interval("hybrid", "recent")
    print(f"goal, re-engagement: hybrid >= recently viewed with the latest item: x{ratio:.2f} "
          f"[{low:.2f}, {high:.2f}] -> {'met' if ratio >= 1.0 else 'NOT met'}")
    hr = {n: discovery[n].hit_rate if n in discovery else float("nan") for n in ("hybrid", *BASELINES)}
    return (f"hr10_hybrid={hr['hybrid']:.4f} hr10_popularity={hr['popularity']:.4f} hr10_recent={hr['recent']:.4f} "
            f"hr10_itemknn={hr['itemknn']:.4f} hr10_mf_batch={hr['mf_batch']:.4f} "
            f"ndcg10_hybrid={discovery['hybrid'].ndcg:.4f} "
            f"coverage={discovery['hybrid'].coverage(report.catalogue):.4f} intent_auc={intent_auc:.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append",
                        help="Taobao UserBehavior or REES46 CSV, repeatable (default: both shared logs)")
    parser.add_argument("--limit", type=int, help="read at most this many events of each log")
    parser.add_argument("--config", type=Path, help="job config whose model settings are evaluated")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--plots", type=Path, default=ROOT / "evaluation" / "results")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    lines = []
    for dataset in args.dataset or DEFAULT_DATASETS:
        events = datasets.sorted_by_time(datasets.read_events(dataset, limit=args.limit))
        report = evaluate(events, config, args.k)
        intent_auc = print_intent(evaluate_intent(events, config))
        lines.append(f"{dataset.name}: " + print_report(dataset.name, len(events), report, args.k, intent_auc))
        path = args.plots / f"prequential-{dataset.stem}.png"
        plot(report.tallies["discovery"], report.catalogue, path, f"Prequential replay of {dataset.name}, discovery")
        print(f"plot: {path}")
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
