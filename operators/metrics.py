"""Counter names the Flink shell keeps besides each step's own: dead letters by the kind of their reason,
and the event-to-decision latency as cumulative buckets, a Prometheus-style histogram made of counters
(PyFlink offers counters, meters and distributions, no percentiles), read back by `quantile`."""
from __future__ import annotations

import re
from typing import Mapping

LATENCY = "event_to_decision_ms"
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
_REASON_KIND = re.compile(r"[A-Za-z][A-Za-z ()\-]*")  # the fixed words a reason starts with, before any value


def dead_letter_counter(reason: str) -> str:
    """`dead_lettered_<kind>`: the kind is the reason's leading words, which the code writes, so the names
    are few and carry no value from the record (no id, no payload)."""
    found = _REASON_KIND.match(reason)
    kind = re.sub(r"[^a-z0-9]+", "_", found.group(0).lower()).strip("_")[:60] if found else ""
    return f"dead_lettered_{kind or 'other'}"


def latency_counters(latency_ms: int) -> tuple[str, ...]:
    """The counters one observation increments: each bucket bound at or above it, and the count
    (`<LATENCY>_le_inf` is the count)."""
    return tuple(f"{LATENCY}_le_{bound}" for bound in LATENCY_BOUNDS_MS if latency_ms <= bound) + (f"{LATENCY}_le_inf",)


def quantile(cumulative: Mapping[float, float], q: float) -> float | None:
    """The q-quantile from cumulative bucket counts (upper bound -> observations at or below it, with
    float('inf') holding all), interpolated linearly within a bucket as Prometheus' histogram_quantile does."""
    total = cumulative.get(float("inf"), 0)
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in sorted(cumulative):
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the largest bound: its bound is all that is known
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower
