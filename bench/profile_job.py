"""Where the job's Python time goes: py-spy samples the mini-cluster's JVM (thread mode runs the operators
in an interpreter embedded in it) while a bounded job drains a preloaded topic.

    .venv/bin/python bench/profile_job.py [--events 20000] [--top 25]

Prints the share of samples (threads holding the GIL) spent in each package, by leaf frame, and the
project's functions by inclusive share; writes the collapsed stacks (for a flame graph, e.g. speedscope)
to bench/results/profile-<time>.txt. py-spy needs ptrace rights on the JVM (root, or
kernel.yama.ptrace_scope 0).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.stacks import parse, shares  # noqa: E402
from jobs import notification_job  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_stream.csv"
def embedded_python(timeout: float = 180.0) -> int:
    """The JVM PyFlink starts as this process's child (the py4j gateway, which hosts the mini-cluster), once
    it has loaded the Python interpreter the operators run in: py-spy finds nothing to sample before that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(os.getpid()), "java"], capture_output=True, text=True).stdout
        for pid in children.split():
            if "libpython" in Path(f"/proc/{pid}/maps").read_text():
                return int(pid)
        time.sleep(0.2)
    raise RuntimeError("no JVM under this process loaded a Python interpreter")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args(argv)
    events = harness.load_events(args.dataset, args.events)
    env = harness.start_services(Path(tempfile.mkdtemp(prefix="notify-profile-")))
    out = ROOT / "bench" / "results" / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    out.parent.mkdir(exist_ok=True)
    try:
        topics = harness.new_topics(env, partitions=harness.TOPIC_PARTITIONS)
        harness.publish_records(env.broker.bootstrap, topics.events, harness.keyed_records(events), "events")
        config = harness.job_config(env, topics, bounded=True, mode="thread", guarantee="at-least-once")
        failed = []

        def run_job() -> None:
            try:
                notification_job.run(config, [env.jar], job_name="profile", extra_flink=harness.BATCH_FLINK)
            except Exception as error:  # reported below, after py-spy has stopped
                failed.append(error)

        job = threading.Thread(target=run_job)
        started = time.monotonic()
        job.start()
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        spy = subprocess.Popen([py_spy, "record", "--pid", str(embedded_python()), "--format", "raw",
                                "--output", str(out), "--rate", str(args.rate), "--gil", "--nolineno", "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        job.join()
        elapsed = time.monotonic() - started
        spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        spy.wait(timeout=60)
        if spy.returncode not in (0, -signal.SIGINT) or not out.exists():
            raise RuntimeError(f"py-spy failed: {spy.stderr.read().decode(errors='replace')}")
        if failed:
            raise RuntimeError("the profiled job failed") from failed[0]
    finally:
        env.broker.stop()
        env.redis.stop()
    total, by_package, inclusive = shares(parse(out.read_text()))
    print(f"{len(events)} events in {elapsed:.1f} s (job start included); {total} samples holding the GIL; "
          f"stacks in {out.relative_to(ROOT)}")
    print("\nleaf frames by package:")
    for name, count in by_package.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    print("\nthe project's functions, inclusive:")
    for name, count in inclusive.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
