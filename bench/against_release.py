"""Does this tree decide as an earlier release does? Both replay the same log through their own Flink-free
pipeline (`LocalPipeline`), in one run, and their notifications are compared field by field.

    .venv/bin/python bench/against_release.py [--release d3f0ca4] [--events 20000] [--dataset FILE]
    .venv/bin/python bench/against_release.py --generated 3000     # the project's own shop, with its catalogue

The release is read from git (`git archive`) into a scratch folder and run there in a process of its
own, so nothing of this tree leaks into it. A refactoring that means to change no behaviour should end
with `same_notifications=true`.

Last line: same_notifications=<true|false> notifications_release=<a> notifications_now=<b> differing=<c>
"""
from __future__ import annotations

import argparse
import json
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
import json, sys
try:
    from config import load_config
except ImportError:
    from jobs.config import load_config
from notify_engine import datasets, generator
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from state_schemas.events import encode

dataset, events, generated = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
catalog = []
if generated:
    shop = generator.GeneratorConfig(users=200, items=120, events=generated, seed=5, start_ms=1_790_000_000_000)
    log, catalog = list(generator.generate_events(shop)), generator.generate_catalog(shop)
else:
    log = datasets.sorted_by_time(datasets.read_events(dataset))[:events]
pipeline, out, now = LocalPipeline(load_config(), DictStore()), Outputs(), 1_800_000_000_000
for item in catalog:
    pipeline.process_catalog(encode(item), now, out)
for event in log:
    pipeline.process(encode(event), now, out)
json.dump([[n.notification_id, n.kind, n.channel, n.title, n.body, list(n.item_ids), n.reason, round(n.score, 6),
            n.source_event_id, n.source_event_time] for n in out.notifications], sys.stdout)
"""


def replay(tree: Path, args) -> list:
    done = subprocess.run([sys.executable, "-c", REPLAY, str(args.dataset), str(args.events), str(args.generated)],
                          cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


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
    args = parser.parse_args(argv)
    args.dataset = args.dataset.resolve()  # the replays run in other folders
    before, now = replay(release_tree(args.release), args), replay(ROOT, args)
    differing = [(a, b) for a, b in zip(before, now) if a != b] + [(x, None) for x in before[len(now):]] + \
        [(None, x) for x in now[len(before):]]
    for old, new in differing[:5]:
        print(f"  release: {old}\n  now:     {new}")
    source = f"{args.generated} generated events with a catalogue" if args.generated else \
        f"{args.events} events of {args.dataset.name}"
    print(f"{source}: {len(before)} notifications from {args.release}, {len(now)} from this tree")
    print(f"same_notifications={str(not differing).lower()} notifications_release={len(before)} "
          f"notifications_now={len(now)} differing={len(differing)}")
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main())
