"""Does this tree decide as an earlier release does, and how fast? Both replay the same log through their own
Flink-free pipeline (`LocalPipeline`, the Python ceiling of `make bench`), in one run, turn about, and
their notifications are compared field by field; the core's events/s of each is the median of the turns.

    .venv/bin/python bench/against_release.py [--release d3f0ca4] [--events 20000] [--dataset FILE]
    .venv/bin/python bench/against_release.py --generated 3000     # the project's own shop, with its catalogue
    .venv/bin/python bench/against_release.py --ignore-copy        # the same decisions, whatever they say

The release is read from git (`git archive`) into a scratch folder and run there in a process of its
own, so nothing of this tree leaks into it. A refactoring that means to change no behaviour should end
with `same_notifications=true`.

An untimed turn each also counts the records that cross each edge per input event (each edge into a keyed
stage is a keyed shuffle in the Flink job, which routes exactly these messages) and the timers that fire.

Last line: same_notifications=<true|false> notifications_release=<a> notifications_now=<b> differing=<c>
           core_eps_release=<d> core_eps_now=<e> now_vs_release=<f>
           hop_records_per_event_release=<g> hop_records_per_event_now=<h>
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_stream.csv"
PREVIOUS_RELEASE = "d3f0ca4"  # the last landed commit before issue 8

# Runs inside either tree: the config module moved in issue 8, the rest of what it uses did not.
REPLAY = """
import json, sys, time
try:
    from config import load_config
except ImportError:
    from jobs.config import load_config
from notify_engine import datasets, generator
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from state_schemas.events import encode

dataset, events, generated, counted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
crossings, steps = {}, {}
if counted:  # an untimed turn: what crosses each edge (the job's keyed shuffles) and how often each stage runs
    send, apply = LocalPipeline._send, LocalPipeline._apply

    def counting_send(self, destination, message, *rest):
        edge = destination or type(message).__name__.lower()
        crossings[edge] = crossings.get(edge, 0) + 1
        return send(self, destination, message, *rest)

    def counting_apply(self, stage, *rest):
        steps[stage.name] = steps.get(stage.name, 0) + 1
        return apply(self, stage, *rest)

    LocalPipeline._send, LocalPipeline._apply = counting_send, counting_apply
catalog = []
if generated:
    shop = generator.GeneratorConfig(users=200, items=120, events=generated, seed=5, start_ms=1_790_000_000_000)
    log, catalog = list(generator.generate_events(shop)), generator.generate_catalog(shop)
else:
    log = datasets.sorted_by_time(datasets.read_events(dataset))[:events]
pipeline, out, now = LocalPipeline(load_config(), DictStore()), Outputs(), 1_800_000_000_000
raws = [encode(event) for event in log]
started = time.perf_counter()
for item in catalog:
    pipeline.process_catalog(encode(item), now, out)
for raw in raws:
    pipeline.process(raw, now, out)
if hasattr(pipeline, "finish"):  # what waits for its time (a session's end, say) is decided at the end of input
    pipeline.finish(now, out)
elapsed = time.perf_counter() - started
json.dump({"seconds": elapsed, "events": len(raws), "crossings": crossings, "steps": steps,
           "serving": len(getattr(out, "serving", ())),
           "notifications": [[n.notification_id, n.kind, n.channel, n.title, n.body, list(n.item_ids), n.reason,
                              round(n.score, 6), n.source_event_id, n.source_event_time] for n in out.notifications]},
          sys.stdout)
"""


def replay(tree: Path, args, counted: bool = False) -> dict:
    done = subprocess.run([sys.executable, "-c", REPLAY, str(args.dataset), str(args.events), str(args.generated),
                           "1" if counted else "0"],
                          cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def print_crossings(counted: dict) -> dict:
    """Records per input event on each edge, and stage runs per event (messages plus timers), for both trees;
    returns the records per event over the edges between stages (each crosses Python and Java in the job;
    those into keyed stages are shuffles), the sink of notifications left out."""
    per_event = {}
    for name, run in counted.items():
        events = run["events"]
        per_event[name] = sum(n for edge, n in run["crossings"].items() if edge != "notification") / events
        edges = ", ".join(f"{edge} {n / events:.3f}" for edge, n in sorted(run["crossings"].items()))
        timers = ", ".join(f"{stage} {(n - run['crossings'].get(stage, 0)) / events:.3f}"
                           for stage, n in sorted(run["steps"].items()) if n > run["crossings"].get(stage, 0))
        print(f"{name}: records per event by edge: {edges}; serving writes {run['serving'] / events:.3f}; "
              f"timer firings per event: {timers or '-'}")
    return per_event


def release_tree(rev: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="release-"))
    archive = folder / "release.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "tree", filter="data")
    return folder / "tree"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", default=PREVIOUS_RELEASE, help="git revision to compare with")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--generated", type=int, default=0,
                        help="replay this many events of the project's own generator, with its catalogue, instead")
    parser.add_argument("--repeat", type=int, default=1, help="turns each; the median events/s counts")
    parser.add_argument("--ignore-copy", action="store_true",
                        help="compare what was decided, not what it says (title and body): for a change of copy")
    args = parser.parse_args(argv)
    args.dataset = args.dataset.resolve()  # the replays run in other folders
    tree, rates = release_tree(args.release), {"release": [], "now": []}
    for _ in range(args.repeat):  # turn about, so a slow spell of the machine falls on both
        runs = {"release": replay(tree, args), "now": replay(ROOT, args)}
        for name, run in runs.items():
            rates[name].append(run["events"] / run["seconds"])
    counted = {"release": replay(tree, args, counted=True), "now": replay(ROOT, args, counted=True)}
    per_event = print_crossings(counted)
    before, now = runs["release"]["notifications"], runs["now"]["notifications"]
    if args.ignore_copy:  # fields 3 and 4 are the title and the body
        before, now = ([n[:3] + n[5:] for n in notifications] for notifications in (before, now))
    eps = {name: statistics.median(values) for name, values in rates.items()}
    differing = [(a, b) for a, b in zip(before, now) if a != b] + [(x, None) for x in before[len(now):]] + \
        [(None, x) for x in now[len(before):]]
    for old, new in differing[:5]:
        print(f"  release: {old}\n  now:     {new}")
    source = f"{args.generated} generated events with a catalogue" if args.generated else \
        f"{args.events} events of {args.dataset.name}"
    print(f"{source}: {len(before)} notifications from {args.release}, {len(now)} from this tree")
    print(f"core events/s, {args.repeat} turn(s) each: release {[round(r) for r in rates['release']]}, "
          f"now {[round(r) for r in rates['now']]}")
    print(f"same_notifications={str(not differing).lower()} notifications_release={len(before)} "
          f"notifications_now={len(now)} differing={len(differing)} core_eps_release={eps['release']:.0f} "
          f"core_eps_now={eps['now']:.0f} now_vs_release={eps['now'] / eps['release']:.2f} "
          f"hop_records_per_event_release={per_event['release']:.3f} hop_records_per_event_now={per_event['now']:.3f}")
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main())
