"""Killing parts of a running standalone cluster, and judging what the sink committed afterwards.

A faulted, restored or rescaled run is compared with a clean run of the same input. The job decides
deterministically (each key's records reach a keyed stage in event-time order, `jobs/ordering.py`), so
the committed notifications must carry the same ids, none twice, each the same decision: kind, journey,
channel, source event and send time. Which items a recommendation names also reads Redis side inputs
(item cards, trending, neighbours) as they stand when it is ranked, which no checkpoint holds: those are
counted apart (`items_changed`), not judged.
"""
from __future__ import annotations

import collections
import hashlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

TASK_MANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"


@dataclass(frozen=True)
class Delivery:
    """How a faulted run's committed ids differ from a clean run's."""

    lost: int  # ids of the clean run the faulted run never committed
    duplicated: int  # committed copies beyond the first
    extra: int  # ids only the faulted run committed: a decision that changed on replay

    def line(self) -> str:
        return f"lost={self.lost} duplicated={self.duplicated} extra={self.extra}"


def compare_deliveries(clean: Iterable[str], faulted: Iterable[str]) -> Delivery:
    clean_ids, counts = set(clean), collections.Counter(faulted)
    return Delivery(lost=len(clean_ids - counts.keys()), duplicated=sum(n - 1 for n in counts.values()),
                    extra=len(counts.keys() - clean_ids))


def decision(notification) -> tuple:
    """What was decided, apart from the items named: who, what, why, on which channel, when."""
    n = notification
    return n.notification_id, n.user, n.kind, n.journey, n.channel, n.source_event_id, n.scheduled_at


def decisions_changed(clean: Iterable, other: Iterable) -> int:
    """Notifications both runs committed (by id) that differ in what was decided."""
    ours = {n.notification_id: decision(n) for n in clean}
    return sum(1 for n in other if n.notification_id in ours and ours[n.notification_id] != decision(n))


def items_changed(clean: Iterable, other: Iterable) -> int:
    """Notifications both runs committed (by id) that name other items: ranking reads side inputs as they stand."""
    ours = {n.notification_id: tuple(n.item_ids) for n in clean}
    return sum(1 for n in other if n.notification_id in ours and ours[n.notification_id] != tuple(n.item_ids))


def described_changes(clean: Iterable, other: Iterable, limit: int = 10) -> list[str]:
    """The first `limit` notifications one run committed and the other did not, or decided otherwise, as lines."""
    ours, theirs = {n.notification_id: n for n in clean}, {n.notification_id: n for n in other}

    def line(tag, n):
        return (f"{tag} {n.notification_id} user={n.user} {n.kind}/{n.journey} {n.channel} source={n.source_event_id} "
                f"scheduled_at={n.scheduled_at} items={list(n.item_ids)}")

    lines = [line("lost", ours[i]) for i in sorted(ours.keys() - theirs.keys())]
    lines += [line("extra", theirs[i]) for i in sorted(theirs.keys() - ours.keys())]
    for i in sorted(ours.keys() & theirs.keys()):
        if decision(ours[i]) != decision(theirs[i]):
            lines += [line("was", ours[i]), line("now", theirs[i])]
    return lines[:limit]


def expected_inboxes(records: Iterable[tuple[bytes | None, bytes | None]], size: int) -> dict[str, dict[str, bytes]]:
    """What each user's inbox must hold after the committed (key, value) records of the notifications topic,
    in topic order: the `size` newest by source event time (Redis breaks ties by id) since their last erasure."""
    from state_schemas.outputs import Notification

    sent: dict[str, list] = collections.defaultdict(list)
    for key, value in records:
        if value is None:
            sent[key.decode()] = []
            continue
        notification = Notification.decode(value)
        sent[notification.user].append((notification.source_event_time, notification.notification_id, value))
    return {user: {nid: value for _, nid, value in sorted(kept)[-size:]} for user, kept in sent.items() if kept}


def inbox_mismatches(expected: dict[str, dict[str, bytes]], held: dict[str, dict[str, bytes]]) -> int:
    """Users whose inbox in Redis (`held`: user -> id -> body) differs from what the topic says."""
    return sum(expected.get(user, {}) != held.get(user, {}) for user in expected.keys() | held.keys())


def sha256(payload: bytes) -> str:
    """As a dead letter names its raw payload."""
    return hashlib.sha256(payload).hexdigest()


def java_processes(main_class: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of the JVMs whose command line names `main_class`."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if main_class.encode() in arguments:
            found.append(int(entry.name))
    return sorted(found)


def kill_hard(pid: int, timeout: float = 30.0) -> None:
    """SIGKILL, as a machine failure would: no shutdown hooks, no flush. Returns once the pid is gone."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """A zombie (dead, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class TaskManagerSupervisor:
    """Keeps `count` TaskManagers running, as a process supervisor or Kubernetes would: a killed
    TaskManager can take a healthy one with it (Flink stops a TaskManager on an error while a task
    fails over, e.g. a lost connection to the killed peer), and the job needs all its slots back."""

    def __init__(self, start_taskmanager, count: int, poll_s: float = 1.0):
        import threading

        self.start_taskmanager, self.count, self.poll_s = start_taskmanager, count, poll_s
        self.started = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskmanager-supervisor", daemon=True)

    def __enter__(self) -> "TaskManagerSupervisor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            for _ in range(self.count - len(java_processes(TASK_MANAGER_MAIN))):
                self.start_taskmanager()
                self.started += 1
