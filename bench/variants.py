"""Before/after of hot-path choices, in one run: the job's sustained events/s with the current
code and with each alternative swapped in, on the same preloaded events.

    .venv/bin/python bench/variants.py [--events 40000] [--repeat 2]
    .venv/bin/python bench/variants.py --only --against 1f4a419   # this tree against a git revision's job

A variant here changes the job as the driver builds it (its graph or its config): the operators run in
the JVM's own Python, which imports the project from its source tree, so a change patched into this process
never reaches them. A change to the operators' code is measured against the revision before it, unpacked
from git and run by bench/run_job_in_tree.py.

Last line: one `<variant>_vs_current=<ratio>` per variant (above 1: the variant is faster).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyflink.common import Types  # noqa: E402

from bench import harness  # noqa: E402
from bench.against_release import release_tree  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_stream.csv"


@contextmanager
def unordered_edges():
    """What handing each key's records on in event-time order costs (jobs/ordering.py): keyed edges as
    PyFlink's `key_by` makes them, in whatever order the network delivers."""
    from jobs import notification_job

    def keyed(edge, uid):
        merged = edge.streams[0].union(*edge.streams[1:]) if len(edge.streams) > 1 else edge.streams[0]
        return merged.key_by(lambda record: record[0], key_type=Types.STRING())

    saved = notification_job._Edge.keyed
    notification_job._Edge.keyed = keyed
    try:
        yield
    finally:
        notification_job._Edge.keyed = saved


@contextmanager
def current():
    yield


VARIANTS = {"unordered_edges": unordered_edges}
# What each personalisation stage costs: the same job with it switched off in config.
CONFIG_VARIANTS = {"no_trending": {"trending": {"enabled": False}}, "no_segments": {"segments": {"enabled": False}},
                   "no_intent": {"intent": {"enabled": False}}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant, interleaved; the median counts")
    parser.add_argument("--only", nargs="*", choices=[*VARIANTS, *CONFIG_VARIANTS],
                        help="these variants against the current code (default: all; none with --only alone)")
    parser.add_argument("--against", nargs="+", default=[], metavar="REV",
                        help="also the job of these git revisions, each run from its own unpacked tree")
    args = parser.parse_args(argv)
    events = harness.load_events(args.dataset, args.events)
    trees = {f"at_{rev}": release_tree(rev) for rev in args.against}
    if trees:  # each run then starts a JVM of its own, this tree's too, so none is warmer than another
        trees["current"] = ROOT
    env = harness.start_services(Path(tempfile.mkdtemp(prefix="notify-variants-")))
    names = ["current", *([*VARIANTS, *CONFIG_VARIANTS] if args.only is None else args.only),
             *(name for name in trees if name != "current")]
    rates: dict[str, list[float]] = {name: [] for name in names}
    try:
        for round_ in range(args.repeat):
            for name in names:
                with VARIANTS.get(name, current)():
                    rate = harness.job_throughput(env, events, f"{name} (round {round_ + 1})", mode="thread",
                                                  guarantee="at-least-once", overrides=CONFIG_VARIANTS.get(name),
                                                  tree=trees.get(name))
                rates[name].append(rate)
                print(f"  {name:<14} round {round_ + 1}: {rate:,.0f} events/s", flush=True)
    finally:
        env.broker.stop()
        env.redis.stop()
    base = statistics.median(rates["current"])
    print(" ".join(f"{name}_vs_current={statistics.median(rates[name]) / base:.3f}" for name in names[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
