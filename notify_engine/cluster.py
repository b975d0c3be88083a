"""A standalone Flink cluster from the pip package's own distribution (`pyflink/bin`), on loopback.

    notify-engine cluster up            # JobManager + TaskManager, REST on 127.0.0.1:8081
    notify-engine cluster submit --config my.yaml
    notify-engine cluster savepoint --job <id> [--stop]     # prints the savepoint's path
    notify-engine cluster restore --config my.yaml --from <savepoint or retained checkpoint> [--parallelism 2]
    notify-engine cluster down
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jobs.runtime import FLINK_CONF_DIR, PROJECT_ROOT, prepare_python_environment

from .services import cache_dir, ensure_connector_jar, without_metrics_classpath

JOB_SCRIPT = PROJECT_ROOT / "jobs" / "notification_job.py"


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def _lib_dir_with_python() -> Path:
    """Flink's lib/ plus flink-python, so the embedded interpreter (pemja) is loaded once per
    TaskManager by the system class loader. Shipped only with each job, the second job in the same
    TaskManager fails on JDK 17 (NoSuchFieldException: loadedLibraryNames)."""
    lib = cache_dir() / "flink-lib"
    lib.mkdir(parents=True, exist_ok=True)
    jars = list((flink_home() / "lib").glob("*.jar")) + list((flink_home() / "opt").glob("flink-python-*.jar"))
    for jar in jars:
        link = lib / jar.name
        if not link.exists() or link.resolve() != jar.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(jar)
    return lib


@dataclass
class StandaloneCluster:
    rest_port: int = 8081

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def _env(self) -> dict[str, str]:
        prepare_python_environment()  # the TaskManager embeds CPython and needs the venv's packages
        log_dir = cache_dir() / "flink-log"
        log_dir.mkdir(parents=True, exist_ok=True)
        return without_metrics_classpath(dict(
            os.environ, FLINK_HOME=str(flink_home()), FLINK_CONF_DIR=str(FLINK_CONF_DIR), FLINK_LOG_DIR=str(log_dir),
            FLINK_LIB_DIR=str(_lib_dir_with_python()), PYFLINK_CLIENT_EXECUTABLE=sys.executable))

    def _bin(self, name: str) -> str:
        path = flink_home() / "bin" / name
        path.chmod(path.stat().st_mode | 0o111)  # wheels may drop the executable bit
        return str(path)

    def rest(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.rest_url + path, method=method, data=data,
                                         headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def running(self) -> bool:
        try:
            return self.rest("/overview").get("taskmanagers", 0) > 0
        except OSError:
            return False

    def start(self, timeout: float = 90.0) -> "StandaloneCluster":
        if self.running():
            return self
        subprocess.run(["bash", self._bin("start-cluster.sh")], env=self._env(), check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return self
            time.sleep(1)
        raise RuntimeError(f"Flink cluster did not come up on {self.rest_url}; logs in {cache_dir() / 'flink-log'}")

    def start_taskmanager(self) -> None:
        """One more TaskManager, as a replacement for a lost one (`taskmanager.sh start`)."""
        subprocess.run(["bash", self._bin("taskmanager.sh"), "start"], env=self._env(), check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start_jobmanager(self) -> None:
        """A JobManager again, after a lost one (`jobmanager.sh start`); the TaskManagers reconnect to it."""
        subprocess.run(["bash", self._bin("jobmanager.sh"), "start"], env=self._env(), check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def completed_checkpoints(self, job_id: str) -> int:
        return self.rest(f"/jobs/{job_id}/checkpoints")["counts"]["completed"]

    def restarts(self, job_id: str) -> int:
        """How often the job restarted after a failure (its `numRestarts` metric)."""
        metrics = self.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
        return int(float(metrics[0]["value"])) if metrics else 0

    def stop(self) -> None:
        subprocess.run(["bash", self._bin("stop-cluster.sh")], env=self._env(), check=False,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def submit(self, config_path: Path, parallelism: int | None = None, restore_from: str | None = None,
               drop_unmatched_state: bool = False) -> str:
        """`flink run -d -py jobs/notification_job.py -j <connector> [-s <savepoint> [-n]]`; returns the job id.
        `drop_unmatched_state` (-n, --allowNonRestoredState): state of operators the job no longer has is left
        behind instead of refusing the savepoint."""
        command = ["bash", self._bin("flink"), "run", "-m", f"127.0.0.1:{self.rest_port}", "-d",
                   "-py", str(JOB_SCRIPT), "-pyexec", sys.executable, "-pyclientexec", sys.executable,
                   "-j", str(ensure_connector_jar())]
        if parallelism:
            command += ["-p", str(parallelism)]
        if restore_from:
            command += ["-s", restore_from] + (["-n"] if drop_unmatched_state else [])
        command += ["--config", str(config_path)] + (["--parallelism", str(parallelism)] if parallelism else [])
        result = subprocess.run(command, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=300)
        found = re.search(r"JobID ([0-9a-f]{32})", result.stdout)
        if result.returncode != 0 or not found:
            raise RuntimeError(f"flink run failed ({result.returncode}):\n{result.stdout[-5000:]}")
        return found.group(1)

    def job_state(self, job_id: str) -> str:
        return self.rest(f"/jobs/{job_id}")["state"]

    def wait_for(self, job_id: str, states: set[str], timeout: float = 300.0) -> str:
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in states:
                return state
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still {state} after {timeout}s")

    def cancel(self, job_id: str) -> None:
        self.rest(f"/jobs/{job_id}?mode=cancel", method="PATCH")

    def source_drained(self, job_id: str, source: str = "events", idle_ms: int = 5000) -> bool:
        """Whether every subtask of the `source` source has read all it holds (no pending records) and read
        nothing for `idle_ms`: how a restored bounded replay is known to be at the end of its input."""
        vertex = next(v for v in self.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith(f"Source: {source}"))
        scope = "Source__" + source
        names = [f"{n}.{scope}.{metric}" for n in range(vertex["parallelism"]) for metric in
                 ("sourceIdleTime", "pendingRecords")]
        found = {m["id"]: m["value"] for m in self.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/metrics?get="
                                                        + ",".join(names))}
        for n in range(vertex["parallelism"]):
            idle, pending = found.get(f"{n}.{scope}.sourceIdleTime"), found.get(f"{n}.{scope}.pendingRecords")
            if idle is None or float(idle) < idle_ms or (pending is not None and float(pending) > 0):
                return False
        return True

    def drain_when_read(self, job_id: str, timeout: float = 900.0) -> str:
        """Once the job runs with every task and its events source has read all its topic holds, drain it
        (stop-with-savepoint: event time to its end, every timer fires, the sink commits) and return the state it
        ended in: how a replay in an unbounded job, or a bounded one restored from a savepoint (FLINK-31006), is
        brought to its end. A drain refused while the job restarts is asked for again once it runs."""
        deadline = time.monotonic() + timeout
        read_since = None
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in {"FINISHED", "FAILED", "CANCELED"}:
                return state
            if not (state == "RUNNING" and self.all_tasks_running(job_id) and self.source_drained(job_id)):
                read_since = None
            elif read_since is None:
                read_since = time.monotonic()
            elif time.monotonic() - read_since >= 3:  # read all for a while, not just between two restarts
                try:
                    self.savepoint(job_id, drain=True)
                except RuntimeError as refused:
                    print(f"drain of {job_id} refused, asking again once it runs: {str(refused)[:200]}", flush=True)
                    read_since = None
                    continue
                return self.wait_for(job_id, {"FINISHED", "FAILED", "CANCELED"}, timeout=600)
            time.sleep(1)
        return self.job_state(job_id)

    def all_tasks_running(self, job_id: str) -> bool:
        return all(vertex["status"] == "RUNNING" for vertex in self.rest(f"/jobs/{job_id}")["vertices"])

    def savepoint(self, job_id: str, stop: bool = False, directory: str | None = None, drain: bool = False,
                  timeout: float = 300.0) -> str:
        """A savepoint of the running job (with `stop`, stop-with-savepoint: the sink commits what it
        holds and the job ends; with `drain` too, event time first jumps to its end and every timer
        fires, as at the end of a bounded input); returns its path, the argument of `restore_from`."""
        if stop or drain:
            trigger = self.rest(f"/jobs/{job_id}/stop", "POST", {"drain": drain, "targetDirectory": directory})
        else:
            trigger = self.rest(f"/jobs/{job_id}/savepoints", "POST", {"cancel-job": False,
                                                                        "target-directory": directory})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.rest(f"/jobs/{job_id}/savepoints/{trigger['request-id']}")
            if found["status"]["id"] == "COMPLETED":
                operation = found["operation"]
                if "failure-cause" in operation:
                    raise RuntimeError(f"savepoint of {job_id} failed: {operation['failure-cause'].get('class')}: "
                                       f"{str(operation['failure-cause'].get('stack-trace', ''))[:2000]}")
                return operation["location"]
            time.sleep(0.5)
        raise TimeoutError(f"no savepoint of {job_id} within {timeout}s")


def retained_checkpoint(checkpoint_dir: str, job_id: str) -> str | None:
    """The newest complete checkpoint a job left on disk (its `_metadata` written), for `flink run -s`
    after the JobManager was lost with the job."""
    root = Path(checkpoint_dir.removeprefix("file://")) / job_id
    complete = [path for path in root.glob("chk-*") if (path / "_metadata").exists()]
    if not complete:
        return None
    return str(max(complete, key=lambda path: int(path.name.removeprefix("chk-"))))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="notify-engine cluster",
                                     description="A standalone Flink cluster on 127.0.0.1 from pyflink/bin.")
    parser.add_argument("action", choices=["up", "down", "status", "submit", "savepoint", "restore"])
    parser.add_argument("--config", type=Path, help="job config for submit and restore")
    parser.add_argument("--parallelism", type=int, help="for submit and restore (may differ from the savepoint's)")
    parser.add_argument("--job", help="job id for savepoint")
    parser.add_argument("--stop", action="store_true", help="savepoint: stop the job with the savepoint")
    parser.add_argument("--drain", action="store_true",
                        help="savepoint: stop it as at the end of its input (every timer fires); see README")
    parser.add_argument("--directory", help="savepoint: target directory (default: the savepoint-dir of flink-conf)")
    parser.add_argument("--from", dest="restore_from", help="restore: a savepoint or retained checkpoint path")
    parser.add_argument("--drop-unmatched-state", action="store_true",
                        help="restore: leave behind the state of operators this job has not (e.g. a savepoint "
                             "written before the SQL window operators had fixed ids: README, Upgrades)")
    args = parser.parse_args(argv)
    cluster = StandaloneCluster()
    if args.action == "up":
        cluster.start()
        print(f"Flink cluster up: {cluster.rest_url}")
    elif args.action == "down":
        cluster.stop()
        print("Flink cluster stopped")
    elif args.action == "status":
        print(json.dumps(cluster.rest("/overview"), indent=2) if cluster.running() else "down")
    elif args.action == "savepoint":
        if args.job is None:
            parser.error("savepoint needs --job")
        print(cluster.savepoint(args.job, stop=args.stop, directory=args.directory, drain=args.drain))
    else:
        if args.config is None or (args.action == "restore" and not args.restore_from):
            parser.error(f"{args.action} needs --config" + (" and --from" if args.action == "restore" else ""))
        job_id = cluster.submit(args.config, args.parallelism, args.restore_from if args.action == "restore" else None,
                                args.drop_unmatched_state)
        print(f"submitted job {job_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
