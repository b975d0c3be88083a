"""The record codec on the hot path: this release's msgspec structs against the hand-written codec of the
release before it, on the same real records, in one run.

    .venv/bin/python bench/codec.py [--before d3f0ca4] [--events 20000]

The previous release's `state_schemas` is read from git at `--before` into a scratch package. Real
records come from replaying a Taobao slice through this release's `LocalPipeline`: every keyed state
it holds at the end (the layouts are the same in both releases, byte for byte), and every item update
and item signal it sent, the two messages each behaviour event sends. Each record is decoded and
encoded again, as a keyed shuffle or a state access does, by each codec in turn.

Last line: codec_us_before=<a> codec_us_now=<b> now_vs_before=<c> (microseconds per event; above 1: faster now)
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.harness import load_events  # noqa: E402
from config import load_config  # noqa: E402
from operators.local_pipeline import DictStore, LocalPipeline, Outputs  # noqa: E402
from state_schemas import hops, state  # noqa: E402
from state_schemas.events import encode  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_stream.csv"
PREVIOUS_RELEASE = "d3f0ca4"  # the last commit with the hand-written codec
STATES = {"user-context": "UserContext", "item-model": "ItemModel", "push-policy": "PushState"}


def previous_schemas(rev: str):
    """The previous release's state_schemas package, importable as `before_schemas`."""
    folder = Path(tempfile.mkdtemp(prefix="codec-before-")) / "before_schemas"
    folder.mkdir()
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:state_schemas"],
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:state_schemas/{name}"], check=True,
                                capture_output=True, text=True).stdout
        (folder / name).write_text(source)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("before_schemas.state")


class RecordingPipeline(LocalPipeline):
    """The local pipeline, keeping every item update and item signal it routes."""

    def __init__(self, config, store):
        super().__init__(config, store)
        self.messages: list = []

    def _send(self, destination, message, now_ms, out):
        if isinstance(message, (hops.ItemUpdate, hops.ItemSignal)):
            self.messages.append(message)
        super()._send(destination, message, now_ms, out)


def as_before(old, message):
    """The same message as the previous release's record (dict events, its own summary and card)."""
    summary = message.summary and old.UserSummary(
        categories=message.summary.categories, brands=message.summary.brands,
        price_bands=message.summary.price_bands, active_hours=message.summary.active_hours,
        purchased=message.summary.purchased, recent=message.summary.recent,
        last_purchase={k: list(v) for k, v in message.summary.last_purchase.items()})
    event = message.event.to_dict() | {"v": 1}
    if isinstance(message, hops.ItemUpdate):
        return old.ItemUpdate(event=event, history=message.history, trigger=message.trigger, summary=summary,
                              repeat=message.repeat)
    card = old.ItemCard.decode(message.card.encode())
    return old.ItemSignal(event=event, card=card, trigger=message.trigger,
                          neighbours=tuple(old.Neighbour(*n) for n in
                                           ((n.item_id, n.category_id, n.similarity) for n in message.neighbours)),
                          summary=summary)


def round_trips(records, repeat: int) -> float:
    """Seconds to decode-then-encode every (class, encoded) pair, best of `repeat`."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for cls, raw in records:
            cls.decode(raw).encode()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--before", default=PREVIOUS_RELEASE, help="git revision of the previous codec")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per codec; the best counts")
    args = parser.parse_args(argv)

    old = previous_schemas(args.before)
    events = load_events(args.dataset, args.events)
    pipeline = RecordingPipeline(load_config(), DictStore())
    out = Outputs()
    now = int(time.time() * 1000)
    for event in events:
        pipeline.process(encode(event), now, out)
    states = [(stage, raw) for key, raw in pipeline.store.items()
              for stage in [key.split(":", 1)[0]] if stage in STATES]
    now_records = [(getattr(state, STATES[stage]), raw) for stage, raw in states]
    now_records += [(type(m), m.encode()) for m in pipeline.messages]
    before_records = [(getattr(old, STATES[stage]), raw) for stage, raw in states]
    before_records += [(type(b), b.encode()) for b in (as_before(old, m) for m in pipeline.messages)]
    # Both codecs read the records the same way, or the comparison means nothing. (The same JSON, not
    # always the same bytes: the two encoders spell some floats differently, 1e-05 and 1e-5.)
    for (cls_now, raw_now), (cls_before, raw_before) in zip(now_records[:len(states)], before_records):
        assert orjson.loads(cls_now.decode(raw_now).encode()) == orjson.loads(cls_before.decode(raw_before).encode())

    before_s = round_trips(before_records, args.repeat)
    now_s = round_trips(now_records, args.repeat)
    per_event_before, per_event_now = before_s / len(events) * 1e6, now_s / len(events) * 1e6
    print(f"{len(events)} events: {len(states)} states and {len(pipeline.messages)} hop messages, each decoded "
          f"and encoded once per pass (best of {args.repeat})")
    print(f"  previous codec ({args.before}): {before_s:.3f} s   this release (msgspec): {now_s:.3f} s")
    print(f"codec_us_before={per_event_before:.1f} codec_us_now={per_event_now:.1f} "
          f"now_vs_before={before_s / now_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
