"""Runs the bounded job of another source tree (a git revision unpacked by bench/variants.py --against), in
this process of its own: its packages come first on the path, and its jobs.runtime hands its own root to the
JVM's Python, so nothing of the calling tree's code runs in the job.

    python bench/run_job_in_tree.py TREE CONFIG_OVERRIDES_JSON CONNECTOR_JAR JOB_NAME
"""
import json
import sys
from pathlib import Path

tree, overrides, jar, job_name = sys.argv[1:5]
sys.path.insert(0, tree)

from config import load_config  # noqa: E402
from jobs import notification_job  # noqa: E402

notification_job.run(load_config(overrides=json.loads(overrides)), [Path(jar)], job_name=job_name,
                     extra_flink={"restart-strategy.type": "none"})
