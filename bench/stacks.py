"""py-spy's collapsed stacks ("frame;frame;... count", `--format raw`) summed for bench/profile_job.py: which
package the sampled code was in, and which of the project's functions were on the stack."""
from __future__ import annotations

import collections
import re
from pathlib import Path

PROJECT = ("jobs", "operators", "state_schemas", "config", "notify_engine")
# A py-spy frame: "function (path:line)", the line left out with --nolineno.
FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*)\)$")


def package(path: str) -> str:
    """The installed distribution, the standard library module or the project package a frame's file is in."""
    parts = Path(path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    library = [n for n, part in enumerate(parts) if re.fullmatch(r"python3\.\d+", part)]
    if library and len(parts) > library[-1] + 1:
        return "stdlib " + parts[library[-1] + 1].removesuffix(".py")
    return next((name for name in PROJECT if name in parts), path)


def parse(stacks: str) -> list[tuple[list[tuple[str, str]], int]]:
    """Collapsed stacks ("frame;frame;... count") as (frames root first, samples)."""
    parsed = []
    for line in stacks.splitlines():
        trace, _, count = line.rpartition(" ")
        frames = []
        for frame in trace.split(";"):
            match = FRAME.match(frame)
            if match:  # thread names and "<native>" frames say nothing of the code
                frames.append((match["function"], match["path"]))
        if frames:
            parsed.append((frames, int(count)))
    return parsed


def shares(stacks: list[tuple[list[tuple[str, str]], int]]) -> tuple[int, collections.Counter, collections.Counter]:
    """Samples in all; leaf samples by package; inclusive samples by project function (once per stack)."""
    total, by_package, inclusive = 0, collections.Counter(), collections.Counter()
    for frames, count in stacks:
        total += count
        by_package[package(frames[-1][1])] += count
        for key in {f"{function} ({Path(path).name})" for function, path in frames if package(path) in PROJECT}:
            inclusive[key] += count
    return total, by_package, inclusive
