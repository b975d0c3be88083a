"""`make bench`: throughput, latency and scaling of the job, as ratios measured in one run.

Last line: ceiling_ratio=<a> naive_ratio=<b> scale_ratio=<c> p99_ms_low_latency=<d> p99_ms_exactly_once=<e>
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench import harness, lateness  # noqa: E402
from config import to_dict  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_stream.csv"


def cluster_rate(env, events, parallelism, workdir):
    """events/s of a bounded job on the standalone cluster, from its clock's notification to its end."""
    from notify_engine.cluster import StandaloneCluster

    topics = harness.new_topics(env, partitions=harness.TOPIC_PARTITIONS)
    harness.publish_records(env.broker.bootstrap, topics.events, harness.clocked(events, harness.TOPIC_PARTITIONS),
                            f"cluster p={parallelism}")
    config = harness.job_config(env, topics, bounded=True, mode="thread", guarantee="at-least-once",
                                parallelism=parallelism)
    config_file = workdir / f"cluster-p{parallelism}.yaml"
    config_file.write_text(yaml.safe_dump(to_dict(config)))
    cluster = StandaloneCluster()
    with harness.ticker(f"standalone cluster, parallelism {parallelism}"):
        job_id = cluster.submit(config_file, parallelism)
        state = cluster.wait_for(job_id, {"FINISHED", "FAILED", "CANCELED"}, timeout=900)
    if state != "FINISHED":
        raise RuntimeError(f"cluster job {job_id} ended {state}")
    finished = time.time() * 1000
    output = harness.job_output(env, topics.notifications)
    print(f"  cluster p={parallelism}: {len(output)} notifications", flush=True)
    return harness.run_rate(len(events), finished, output, f"cluster p={parallelism}")


class Figures(dict):
    """The run's figures, each printed the moment it is measured: a run cut short still shows them."""

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        print(f"  = {key} {value:,.3f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="Taobao UserBehavior or REES46 CSV (default: the shared Taobao stream)")
    parser.add_argument("--events", type=int, default=20000, help="events of the 1x workload")
    parser.add_argument("--scale", type=int, default=10, help="population factor of the scaled workload")
    parser.add_argument("--scale-events", type=int, default=2000,
                        help="events of the base log that --scale multiplies (x10: far more than Flink's network "
                             "buffers hold)")
    parser.add_argument("--naive-events", type=int, default=5000)
    parser.add_argument("--process-events", type=int, default=10000, help="events of the process-mode run")
    parser.add_argument("--cluster-events", type=int, default=12000, help="events of each standalone-cluster run")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--lateness-seconds", type=float, default=60.0,
                        help="seconds of wall-clock-stamped events fed to the marketing lateness run")
    parser.add_argument("--latency-rate", type=float,
                        help="events/s fed to the latency runs (default: half the job's measured events/s)")
    parser.add_argument("--warm-events", type=int, default=10000,
                        help="events replayed before the latency runs, so the models are warm")
    parser.add_argument("--skip-cluster", action="store_true", help="skip parallelism 1 vs 2 on a standalone cluster")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    print(f"dataset {args.dataset}; work dir {workdir}", flush=True)
    latency_events = harness.load_events(args.dataset, None)
    events = latency_events[: args.events]
    scale_base = events[: args.scale_events]
    control, scaled = harness.scale_workloads(scale_base, args.scale)
    print(f"workload: {len(events)} events, {len({e.user_id for e in events})} users, "
          f"{len({e.item_id for e in events})} items; scale: {len(scaled)} events over "
          f"{len({e.user_id for e in scale_base})} users (1x) or {len({e.user_id for e in scaled})} ({args.scale}x)",
          flush=True)
    env = harness.start_services(workdir)
    results = Figures()
    started = time.monotonic()
    try:
        base_config = harness.job_config(env, harness.new_topics(env), bounded=True, mode="thread",
                                         guarantee="at-least-once")
        results["ceiling_eps"] = harness.python_ceiling(events, base_config, "python ceiling")
        uncapped = base_config.with_overrides(harness.UNCAPPED)
        results["ceiling_eps_scale_1x"] = harness.python_ceiling(control, uncapped, "ceiling 1x")
        results["ceiling_eps_scale_10x"] = harness.python_ceiling(scaled, uncapped, f"ceiling {args.scale}x")

        naive_topics = harness.new_topics(env)
        harness.publish_records(env.broker.bootstrap, naive_topics.events,
                                harness.keyed_records(events[: args.naive_events]), "naive input")
        results["naive_eps"] = harness.naive_baseline(env, naive_topics, base_config, args.naive_events)

        # Process mode, the fallback, is the slowest phase: it runs on the first --process-events only.
        for mode, guarantee, workload in (("thread", "at-least-once", events), ("thread", "exactly-once", events),
                                          ("process", "at-least-once", events[: args.process_events])):
            results[f"job_eps_{mode}_{guarantee}"] = harness.job_throughput(
                env, workload, f"job {mode} {guarantee}", mode=mode, guarantee=guarantee)
        # Same number of events and about as many decisions either way, so only the population differs (run
        # length alone moves cost, and so does every decision).
        for factor, workload in ((1, control), (args.scale, scaled)):
            rate = harness.job_throughput(env, workload, f"job {factor}x population, {len(workload)} events",
                                          harness.UNCAPPED, mode="thread", guarantee="at-least-once")
            results[f"job_us_per_event_{factor}x"] = 1e6 / rate

        rate = args.latency_rate or results["job_eps_thread_at-least-once"] / 2
        for name, guarantee, checkpoint_ms in (("low", "at-least-once", 2000), ("eo", "exactly-once", 1000)):
            measured = harness.latency(env, latency_events, warm_events=args.warm_events, rate=rate,
                                       seconds=args.latency_seconds, mode="thread", guarantee=guarantee,
                                       checkpoint_ms=checkpoint_ms)
            for k, v in vars(measured).items():
                results[f"latency_{name}_{k}"] = v
        late = lateness.marketing_lateness(env, latency_events, rate=rate, seconds=args.lateness_seconds)
        print(f"  marketing messages timed: {late.journeys}", flush=True)
        for k in ("samples", "p50_ms", "p99_ms", "p50_intended_ms", "p99_intended_ms", "p50_decided_ms",
                  "p99_decided_ms", "after_input", "after_input_p50_ms"):
            results[f"marketing_lateness_{k}"] = getattr(late, k)

        if not args.skip_cluster:
            from notify_engine.cluster import StandaloneCluster

            cluster = StandaloneCluster().start()
            try:
                results["cluster_eps_p1"] = cluster_rate(env, events[: args.cluster_events], 1, workdir)
                results["cluster_eps_p2"] = cluster_rate(env, events[: args.cluster_events], 2, workdir)
            finally:
                cluster.stop()
    finally:
        env.broker.stop()
        env.redis.stop()

    job = results["job_eps_thread_at-least-once"]
    ratios = {
        "ceiling_ratio": job / results["ceiling_eps"],
        "naive_ratio": job / results["naive_eps"],
        "scale_ratio": results[f"job_us_per_event_{args.scale}x"] / results["job_us_per_event_1x"],
        "p99_ms_low_latency": results["latency_low_p99_ms"],
        "p99_ms_exactly_once": results["latency_eo_p99_ms"],
    }
    extra = {
        "process_vs_thread": results["job_eps_process_at-least-once"] / job,
        "exactly_once_vs_at_least_once": results["job_eps_thread_exactly-once"] / job,
        "ceiling_scale_ratio": results["ceiling_eps_scale_1x"] / results[f"ceiling_eps_scale_{args.scale}x"],
    }
    if "cluster_eps_p1" in results:
        extra["cluster_p2_speedup"] = results["cluster_eps_p2"] / results["cluster_eps_p1"]
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                  "ratios": ratios, "extra": extra}, indent=2))
    print("\nmeasured (this run):")
    for key, value in {**results, **extra}.items():
        print(f"  {key:<40} {value:,.3f}")
    print(f"report: {report}; the whole run took {time.monotonic() - started:.0f} s")
    print(" ".join(f"{k}={v:.3f}" if "ratio" in k else f"{k}={v:.1f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
