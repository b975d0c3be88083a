"""bench/stacks.py over collapsed stacks written by hand, in py-spy's `--format raw --nolineno` form."""
from __future__ import annotations

from bench.stacks import package, parse, shares

SITE = "/work/main/.venv/lib/python3.11/site-packages"
STDLIB = "/root/.pyenv/versions/3.11.7/lib/python3.11"
STACKS = "\n".join([
    # 60 samples: the stage function decoding state with msgspec
    f"process 1234;run ({SITE}/pyflink/fn_execution/x.py);process_element (/work/main/jobs/stage_functions.py);"
    f"load (/work/main/state_schemas/codec.py);decode ({SITE}/msgspec/__init__.py) 60",
    # 30 samples: the same stage in a Redis round trip, through the standard library's socket module
    f"process 1234;run ({SITE}/pyflink/fn_execution/x.py);process_element (/work/main/jobs/stage_functions.py);"
    f"execute ({SITE}/redis/client.py);recv ({STDLIB}/socket.py) 30",
    # 10 samples: a recursive core function, counted once per stack
    "process 1234;rank (/work/main/operators/ranking.py);rank (/work/main/operators/ranking.py) 10",
    "process 1234;<native> 7",  # no code frame: left out
])


def test_a_frame_is_placed_in_its_distribution_its_stdlib_module_or_the_project_package():
    assert package(f"{SITE}/pyflink/fn_execution/x.py") == "pyflink"
    assert package(f"{SITE}/six.py") == "six"
    assert package(f"{STDLIB}/json/decoder.py") == "stdlib json"
    assert package("/work/main/operators/ranking.py") == "operators"
    assert package("/elsewhere/tool.py") == "/elsewhere/tool.py"


def test_stacks_are_read_root_first_without_frames_that_name_no_code():
    stacks = parse(STACKS)
    assert [count for _, count in stacks] == [60, 30, 10]
    assert stacks[2][0] == [("rank", "/work/main/operators/ranking.py")] * 2


def test_leaf_shares_by_package_and_inclusive_shares_of_the_projects_functions():
    total, by_package, inclusive = shares(parse(STACKS))
    assert total == 100
    assert by_package == {"msgspec": 60, "stdlib socket": 30, "operators": 10}
    assert inclusive == {"process_element (stage_functions.py)": 90, "load (codec.py)": 60, "rank (ranking.py)": 10}
