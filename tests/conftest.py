"""Options shared by all tests. Service fixtures (broker, Redis, Flink) live in tests/integration."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption(
        "--dataset-dir",
        default=os.environ.get("NOTIFY_ENGINE_DATASET_DIR", str(REPO_ROOT.parent / "shared" / "data")),
        help="folder with the real event data (Taobao UserBehavior and REES46 CSVs); never committed",
    )


@pytest.fixture(scope="session")
def dataset_dir(request) -> Path:
    path = Path(request.config.getoption("--dataset-dir"))
    if not path.is_dir():
        pytest.fail(f"dataset folder {path} is missing: pass --dataset-dir or set NOTIFY_ENGINE_DATASET_DIR")
    return path
