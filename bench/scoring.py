"""`make bench-scoring`: events/s of the personalization path at 1x and 10x user/item populations.

The path is the job's core without Flink (operators.local_pipeline): user profile, segmenter,
item model with cosine top-K, content vector, hybrid scorer and push policy, over a dict store.
Both runs process the same number of events: the small population replays the base log `scale`
times back to back (fresh ids, later times), the large one is `scale` disjoint copies of it
interleaved in time. If per-event work is bounded by config (history cap, row cap, K, terms), the
ratio of the two rates stays near 1 while the state grows `scale` times.

Then the price of each newer signal, in the same run on the 1x log: events/s without the recency
signal, the re-engagement ranking and purchase intent, with the first two, with purchase intent too (the
defaults), and with the streamed factors instead of intent.

Last line: scoring_eps_small=<a> scoring_eps_large=<b> large_vs_small=<c> state_ratio=<d>
eps_signals_off=<e> eps_recency=<f> eps_recency_intent=<g> eps_recency_factors=<h>
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tqdm import tqdm  # noqa: E402

from bench.harness import load_events, repeat_in_time, scale_population  # noqa: E402
from config import load_config  # noqa: E402
from operators.local_pipeline import DictStore, LocalPipeline, Outputs  # noqa: E402
from state_schemas.events import encode  # noqa: E402
from state_schemas.hops import ITEM_MODEL, PUSH_POLICY  # noqa: E402
from state_schemas.state import ItemModel, PushState  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_stream.csv"
SIGNAL_VARIANTS = {  # on top of the config given
    "signals_off": {"scoring": {"weight_recency": 0.0, "name_trigger_item": False, "weight_mf": 0.0},
                    "factors": {"enabled": False}, "intent": {"enabled": False}},
    "recency": {"scoring": {"weight_recency": 1.0, "name_trigger_item": True, "weight_mf": 0.0},
                "factors": {"enabled": False}, "intent": {"enabled": False}},
    "recency_intent": {"scoring": {"weight_recency": 1.0, "name_trigger_item": True, "weight_mf": 0.0},
                       "factors": {"enabled": False}, "intent": {"enabled": True}},
    "recency_factors": {"scoring": {"weight_recency": 1.0, "name_trigger_item": True, "weight_mf": 0.1},
                        "factors": {"enabled": True}, "intent": {"enabled": False}},
}


def run(events, config, label: str) -> tuple[float, DictStore, int]:
    raws = [encode(e) for e in events]
    store, out = DictStore(), Outputs()
    pipeline = LocalPipeline(config, store)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for raw in tqdm(raws, desc=label, unit="ev", mininterval=0.5):
        pipeline.process(raw, now, out)
        out.notifications.clear()
        out.serving.clear()
    return len(raws) / (time.perf_counter() - started), store, len(pipeline.side.item_cards)


def bounds(store: DictStore) -> dict[str, int]:
    """The largest per-key work seen: what config bounds, whatever the population."""
    rows, neighbours, terms = [0], [0], [0]
    for key, raw in store.items():
        if key.startswith(ITEM_MODEL + ":"):
            model = ItemModel.decode(raw)
            rows.append(len(model.row))
            neighbours.append(len(model.neighbours))
        elif key.startswith(PUSH_POLICY + ":"):
            terms.append(len(PushState.decode(raw).content.scores))
    return {"max_row": max(rows), "max_neighbours": max(neighbours), "max_content_terms": max(terms)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--events", type=int, default=12000, help="events of the base log")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--signal-repeats", type=int, default=3, help="base log repeats for each signal variant")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    base = load_events(args.dataset, args.events)
    small_rate, small_store, small_items = run(repeat_in_time(base, args.scale), config, "1x population")
    large_rate, large_store, large_items = run(scale_population(base, args.scale), config,
                                               f"{args.scale}x population")
    print(f"\n{args.dataset.name}: {len(base)} base events x {args.scale} = {len(base) * args.scale} events per run")
    for label, rate, store, items in (("1x", small_rate, small_store, small_items),
                                      (f"{args.scale}x", large_rate, large_store, large_items)):
        print(f"{label:>4} population: {rate:8.0f} events/s  {len(store):7d} keys  {items:6d} items  {bounds(store)}")
    print(f"config bounds: history_size={config.profile.history_size} row_cap={config.item_model.row_cap} "
          f"(+25% slack) neighbours={config.item_model.neighbours} "
          f"content_terms_per_user={config.catalog.content_terms_per_user}")
    signals = {}
    for label, overrides in SIGNAL_VARIANTS.items():
        variant = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)
                                                 for section, values in overrides.items()})
        signals[label], _, _ = run(repeat_in_time(base, args.signal_repeats), variant, label)
    print("signals: " + "  ".join(f"{label} {rate:.0f} events/s ({rate / signals['signals_off']:.2f}x)"
                                  for label, rate in signals.items()))
    print(f"scoring_eps_small={small_rate:.0f} scoring_eps_large={large_rate:.0f} "
          f"large_vs_small={large_rate / small_rate:.3f} state_ratio={len(large_store) / len(small_store):.2f} "
          + " ".join(f"eps_{label}={rate:.0f}" for label, rate in signals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
