"""User segments: hashed profile vectors, streaming k-means with forgetting, and decayed segment trends."""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import SegmentConfig
from operators.segments import MIN_WEIGHT, nearest, profile_vector, update_segments
from state_schemas.hops import SegmentUpdate
from state_schemas.segments import SegmentModel
from state_schemas.state import DecayedScores

PROPERTY = settings(max_examples=150, deadline=None)
HEAVY = settings(max_examples=25, deadline=None)
HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
ROOT = Path(__file__).resolve().parents[3]

keys = st.text(min_size=1, max_size=12)
scores = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
affinities = st.lists(st.tuples(keys, scores), max_size=30)
coordinates = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, allow_infinity=False)


def hashed(affinities, dimensions: int) -> np.ndarray:
    """The documented hashing, done independently: bucket crc32 % d, minus sign when crc32's top bit is set."""
    vector = np.zeros(dimensions)
    for key, score in affinities:
        h = zlib.crc32(key.encode("utf-8"))
        vector[h % dimensions] += -score if h >> 31 else score
    largest = np.abs(vector).max()
    if largest == 0:
        return vector
    vector = vector / largest  # so that squaring tiny scores cannot underflow to a zero norm
    return vector / np.linalg.norm(vector)


def message(vector, ts: int = T0, items=(), user: str = "u") -> SegmentUpdate:
    return SegmentUpdate(user_id=user, ts=ts, vector=tuple(float(v) for v in vector), items=tuple(items))


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


# --- profile vectors -------------------------------------------------------------------------------------------

@PROPERTY
@given(affinities=affinities, dimensions=st.integers(2, 64))
def test_profile_vector_is_unit_length_or_zero(affinities, dimensions):
    vector = profile_vector(affinities, dimensions)
    assert len(vector) == dimensions and all(isinstance(v, float) for v in vector)
    norm = math.sqrt(sum(v * v for v in vector))
    assert norm == pytest.approx(1.0, abs=1e-9) or norm == 0.0
    assert (norm == 0.0) == (not np.any(hashed(affinities, dimensions)))


def test_no_affinities_give_the_zero_vector():
    assert profile_vector([], 8) == (0.0,) * 8
    assert profile_vector([("cat:1", 0.0), ("brand:x", 0.0)], 8) == (0.0,) * 8


@PROPERTY
@given(affinities=affinities, dimensions=st.integers(2, 64))
def test_profile_vector_matches_hashing_computed_directly_from_zlib(affinities, dimensions):
    assert np.allclose(profile_vector(affinities, dimensions), hashed(affinities, dimensions), atol=1e-9)


@PROPERTY
@given(key=keys, score=st.floats(min_value=1e-3, max_value=1e6), dimensions=st.integers(2, 64))
def test_a_single_key_is_a_signed_basis_vector_at_its_crc32_bucket(key, score, dimensions):
    h = zlib.crc32(key.encode("utf-8"))
    expected = [0.0] * dimensions
    expected[h % dimensions] = -1.0 if h >= 2 ** 31 else 1.0
    assert profile_vector([(key, score)], dimensions) == pytest.approx(expected)


@PROPERTY
@given(affinities=st.lists(st.tuples(keys, st.integers(0, 1000).map(float)), max_size=30),
       factor=st.integers(-20, 20).map(lambda e: 2.0 ** e), order=st.randoms(use_true_random=False))
def test_profile_vector_ignores_scale_and_order(affinities, factor, order):
    # Whole scores and power-of-two factors add up exactly in any order, so a bucket that cancels
    # to zero does so in every order; otherwise rounding residue would be blown up by normalising.
    shuffled = list(affinities)
    order.shuffle(shuffled)
    base = profile_vector(affinities, 16)
    assert np.allclose(profile_vector([(k, s * factor) for k, s in shuffled], 16), base, atol=1e-9)


def test_profile_vector_is_the_same_in_every_process():
    """Python's hash() is salted per process; the buckets must not be, or segments would scramble on restart."""
    pairs = [("cat:123", 2.0), ("brand:acme", 1.0), ("price:p3", 0.5), ("cat:9", 0.25)]
    script = f"from operators.segments import profile_vector; print(repr(profile_vector({pairs!r}, 32)))"
    outputs = set()
    for salt in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=salt, PYTHONPATH=str(ROOT))
        run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True)
        outputs.add(run.stdout.strip())
    assert len(outputs) == 1
    assert np.allclose(eval(outputs.pop()), hashed(pairs, 32), atol=1e-12)


def test_non_finite_affinities_are_refused():
    with pytest.raises(ValueError, match="not finite"):
        profile_vector([("cat:1", float("nan"))], 8)


# --- nearest ---------------------------------------------------------------------------------------------------

grid = st.integers(-2, 2).map(float)  # a coarse grid makes ties common


@PROPERTY
@given(data=st.data(), k=st.integers(1, 6), d=st.integers(1, 5))
def test_nearest_is_the_first_argmin_of_squared_distance(data, k, d):
    centroids = data.draw(st.lists(st.lists(grid, min_size=d, max_size=d).map(tuple), min_size=k, max_size=k))
    vector = data.draw(st.lists(grid, min_size=d, max_size=d))
    model = SegmentModel(centroids=tuple(centroids), weights=(1.0,) * k, trends=(DecayedScores(),) * k)
    distances = ((np.asarray(centroids) - np.asarray(vector)) ** 2).sum(axis=1)
    assert nearest(model, vector) == int(np.argmin(distances))  # numpy's argmin also takes the first minimum


def test_nearest_needs_centroids_of_the_same_dimension():
    with pytest.raises(ValueError, match="no centroids"):
        nearest(SegmentModel(), (1.0, 0.0))
    model = SegmentModel(centroids=((1.0, 0.0),), weights=(1.0,), trends=(DecayedScores(),))
    with pytest.raises(ValueError):
        nearest(model, (1.0, 0.0, 0.0))


# --- streaming k-means -----------------------------------------------------------------------------------------

def config(**changes) -> SegmentConfig:
    return SegmentConfig(**{"segments": 3, "dimensions": 4, "decay": 0.9, "trend_items": 5,
                            "trend_half_life_hours": 24.0, **changes})


item_names = st.sampled_from([f"i{n}" for n in range(8)])
vectors4 = st.lists(coordinates, min_size=4, max_size=4).filter(lambda v: any(v))


@PROPERTY
@given(stream=st.lists(vectors4, min_size=1, max_size=40), k=st.integers(1, 4),
       decay=st.sampled_from([1.0, 0.999, 0.9, 0.5]))
def test_each_update_moves_one_centroid_towards_x_and_keeps_weights_bounded(stream, k, decay):
    cfg = config(segments=k, decay=decay)
    model = SegmentModel()
    for step, x in enumerate(stream, start=1):
        old = model
        model, assignment = update_segments(old, message(x, T0 + step), cfg)
        s = assignment.segment
        assert model.updates == step and 0 <= s < len(model.centroids) <= k
        new_c, x_arr = np.asarray(model.centroids[s]), np.asarray(x)
        if s == len(old.centroids):  # seeded
            assert len(model.centroids) == len(old.centroids) + 1 and model.centroids[s] == tuple(x)
        else:  # moved along the line from its old position to x, no further than x
            old_c = np.asarray(old.centroids[s])
            direction = x_arr - old_c
            length = float(np.linalg.norm(direction))
            if length < 1e-9:  # x is where the centroid was: it stays put
                assert np.allclose(new_c, old_c, atol=1e-9)
            else:
                t = float((direction / length) @ (new_c - old_c)) / length
                assert -1e-9 <= t <= 1 + 1e-9
                assert np.allclose(new_c, old_c + t * direction, atol=1e-9)
        changed = [i for i in range(len(old.centroids)) if i != s and model.centroids[i] != old.centroids[i]]
        assert len(changed) <= 1  # at most the partner of a merge
        for i in changed:  # a merge: the two old centroids' weighted mean, weights summed
            wi, ws = (max(old.weights[j] * decay, MIN_WEIGHT) for j in (i, s))
            assert model.weights[i] == pytest.approx(wi + ws, rel=1e-9)
            merged = (np.asarray(old.centroids[i]) * wi + np.asarray(old.centroids[s]) * ws) / (wi + ws)
            assert np.allclose(model.centroids[i], merged, atol=1e-9)
            assert model.centroids[s] == tuple(x) and model.weights[s] == 1.0
        bound = step if decay == 1.0 else 1.0 / (1.0 - decay)
        assert all(0.0 < w <= bound * (1 + 1e-9) for w in model.weights)
        # Weights are decayed counts: together they are the decayed number of vectors seen.
        assert sum(model.weights) == pytest.approx(sum(decay ** (step - j) for j in range(1, step + 1)), rel=1e-6)


@PROPERTY
@given(stream=st.lists(vectors4, min_size=1, max_size=40), decay=st.sampled_from([1.0, 0.99, 0.8]))
def test_a_single_segment_is_the_exponentially_weighted_mean_of_its_vectors(stream, decay):
    model = SegmentModel()
    for step, x in enumerate(stream):
        model, _ = update_segments(model, message(x, T0 + step), config(segments=1, decay=decay))
    age = np.arange(len(stream))[::-1]
    expected = (np.asarray(stream) * (decay ** age)[:, None]).sum(axis=0) / (decay ** age).sum()
    assert np.allclose(model.centroids[0], expected, atol=1e-9)
    assert model.weights[0] == pytest.approx((decay ** age).sum(), rel=1e-9)


def test_the_first_distinct_vectors_seed_the_segments_in_order():
    cfg = config(segments=3)
    a, b, c, d = (1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    model = SegmentModel()
    segments = []
    for x in (a, a, b, c):
        model, assignment = update_segments(model, message(x), cfg)
        segments.append(assignment.segment)
    assert segments == [0, 0, 1, 2]  # a repeated profile does not take a second segment
    assert model.centroids == (a, b, c)
    model, _ = update_segments(model, message(d), cfg)
    assert len(model.centroids) == 3  # full: d joins or replaces, never adds


def test_two_seeds_in_one_group_merge_to_make_room_for_a_far_vector():
    """An unlucky seeding: two near-identical seeds; a far vector costs more to join than they cost merged."""
    cfg = config(segments=2, dimensions=2, decay=1.0)
    near1, near2, far = (1.0, 0.0), tuple(unit([1.0, 0.1])), (0.0, 1.0)
    model = SegmentModel()
    for x in (near1, near2):
        model, _ = update_segments(model, message(x), cfg)
    model, assignment = update_segments(model, message(far), cfg)
    assert assignment.segment == 1
    assert model.centroids[1] == far and model.weights == (2.0, 1.0)
    assert np.allclose(model.centroids[0], (np.asarray(near1) + np.asarray(near2)) / 2)


def test_well_separated_segments_are_not_merged_for_a_nearby_vector():
    cfg = config(segments=2, dimensions=2, decay=1.0)
    model = SegmentModel()
    for x in ((1.0, 0.0), (0.0, 1.0)):
        model, _ = update_segments(model, message(x), cfg)
    x = tuple(unit([1.0, 0.2]))
    model, assignment = update_segments(model, message(x), cfg)
    assert assignment.segment == 0 and model.weights == (2.0, 1.0)
    assert model.centroids[1] == (0.0, 1.0)


@PROPERTY
@given(stream=st.lists(st.tuples(st.sampled_from([(1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)]),
                                 st.lists(item_names, max_size=3)), max_size=12))
def test_a_zero_vector_moves_nothing_and_is_shown_the_heaviest_segment(stream):
    cfg = config(decay=0.8)
    model = SegmentModel()
    for n, (x, items) in enumerate(stream):
        model, _ = update_segments(model, message(x, T0 + n, items), cfg)
    after, assignment = update_segments(model, message((0.0,) * 4, T0 + 99, ["unseen"]), cfg)
    assert after == model
    if not model.centroids:
        assert (assignment.segment, assignment.trend) == (0, ())
    else:
        heaviest = int(np.argmax(model.weights))
        assert assignment.segment == heaviest
        scores = model.trends[heaviest].scores
        assert [item for item, _ in assignment.trend] == sorted(scores, key=lambda i: (-scores[i], i))


@pytest.mark.parametrize("vector", [(1.0, 0.0), (1.0, 0.0, 0.0, 0.0, 0.0), (float("nan"), 0.0, 0.0, 1.0)])
def test_vectors_of_the_wrong_shape_or_not_finite_are_refused(vector):
    with pytest.raises(ValueError, match="4 finite numbers"):
        update_segments(SegmentModel(), message(vector), config())


@pytest.mark.parametrize("changes", [{"dimensions": 5}, {"segments": 1}])
def test_a_model_restored_under_another_shape_is_rebuilt(changes):
    model = SegmentModel()
    for x in ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)):
        model, _ = update_segments(model, message(x, items=["old"]), config())
    cfg = config(**changes)
    x = (0.0,) * (cfg.dimensions - 1) + (1.0,)
    rebuilt, assignment = update_segments(model, message(x, items=["new"]), cfg)
    assert rebuilt.centroids == (x,) and rebuilt.weights == (1.0,) and rebuilt.updates == 1
    assert assignment.segment == 0 and assignment.trend == (("new", 1.0),)


def purity_under_best_matching(labels, truth, k: int) -> float:
    """Share of points whose segment maps to their planted cluster, under the best one-to-one mapping."""
    return max(sum(p[label] == t for label, t in zip(labels, truth)) for p in itertools.permutations(range(k))) \
        / len(truth)


@HEAVY
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_planted_clusters_are_recovered_from_a_shuffled_stream(seed):
    rng = np.random.default_rng(seed)
    dimensions, k, per_cluster = 32, 3, 100
    directions = np.linalg.qr(rng.normal(size=(dimensions, k)))[0].T  # orthonormal
    points = [(c, unit(directions[c] + rng.normal(scale=0.1, size=dimensions)))
              for c in range(k) for _ in range(per_cluster)]
    cfg = SegmentConfig(segments=k, dimensions=dimensions, decay=0.999, trend_items=5)
    model = SegmentModel()
    for step, index in enumerate(rng.permutation(len(points))):
        cluster, x = points[index]
        model, _ = update_segments(model, message(x, T0 + step * 1000, items=[f"c{cluster}-{step % 7}"]), cfg)
    labels = [nearest(model, x) for _, x in points]
    truth = [c for c, _ in points]
    assert purity_under_best_matching(labels, truth, k) >= 0.95
    # Each segment trends on its own cluster's items.
    for segment in range(k):
        members = [t for label, t in zip(labels, truth) if label == segment]
        majority = max(set(members), key=members.count)
        assert all(item.startswith(f"c{majority}-") for item in model.trends[segment].scores)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_users_with_distinct_tastes_land_in_distinct_segments_through_hashed_profiles(seed):
    rng = np.random.default_rng(seed)
    tastes = [[f"cat:{g}{i}" for i in range(4)] + [f"brand:{g}{i}" for i in range(3)] + [f"price:p{g}"]
              for g in range(3)]
    users = []
    for n in range(240):
        taste = int(rng.integers(3))
        keys = rng.choice(tastes[taste], size=5, replace=False)
        users.append((taste, profile_vector([(str(key), float(rng.uniform(0.2, 1.0))) for key in keys], 32)))
    cfg = SegmentConfig(segments=3, dimensions=32)
    model = SegmentModel()
    for n, (_, x) in enumerate(users):
        model, _ = update_segments(model, message(x, T0 + n), cfg)
    labels = [nearest(model, x) for _, x in users]
    assert purity_under_best_matching(labels, [t for t, _ in users], 3) >= 0.95


# --- segment trends --------------------------------------------------------------------------------------------

trend_steps = st.lists(st.tuples(st.integers(0, 10 * 24 * HOUR_MS), st.lists(item_names, max_size=4)),
                       min_size=1, max_size=25)


@PROPERTY
@given(steps=trend_steps, half_life_hours=st.floats(min_value=1.0, max_value=100.0))
def test_a_trend_is_the_decayed_item_count_whatever_the_arrival_order(steps, half_life_hours):
    cfg = config(segments=1, trend_items=8, trend_half_life_hours=half_life_hours)
    model, latest = SegmentModel(), -1
    for offset, items in steps:
        model, assignment = update_segments(model, message((1.0, 0.0, 0.0, 0.0), T0 + offset, items), cfg)
        latest = max(latest, offset)
        assert model.trends[0].at == T0 + latest  # late messages never move time back
    expected: dict[str, float] = {}
    for offset, items in steps:
        for item in items:
            expected[item] = expected.get(item, 0.0) + 0.5 ** ((latest - offset) / (half_life_hours * HOUR_MS))
    assert set(model.trends[0].scores) == set(expected)
    for item, score in expected.items():
        assert model.trends[0].scores[item] == pytest.approx(score, rel=1e-9)


@PROPERTY
@given(steps=trend_steps, keep=st.integers(1, 5))
def test_trend_lists_are_bounded_sorted_and_scaled_to_the_strongest(steps, keep):
    cfg = config(segments=2, trend_items=keep)
    model = SegmentModel()
    for n, (offset, items) in enumerate(steps):
        x = (1.0, 0.0, 0.0, 0.0) if n % 2 else (0.0, 1.0, 0.0, 0.0)
        model, assignment = update_segments(model, message(x, T0 + offset, items), cfg)
        stored = model.trends[assignment.segment].scores
        assert all(len(trend.scores) <= keep for trend in model.trends)
        assert len(assignment.trend) == min(keep, len(stored))
        values = [score for _, score in assignment.trend]
        assert values == sorted(values, reverse=True)
        if values:
            assert values[0] == 1.0 and all(0.0 < v <= 1.0 for v in values)
            strongest = max(stored.values())
            for item, score in assignment.trend:
                assert score == pytest.approx(stored[item] / strongest, abs=1e-4)


def test_a_trend_keeps_the_most_frequent_items_of_a_message():
    cfg = config(segments=1, trend_items=2)
    _, assignment = update_segments(SegmentModel(), message((1.0, 0.0, 0.0, 0.0), T0,
                                                            ["a", "b", "b", "c", "c", "c"]), cfg)
    assert [item for item, _ in assignment.trend] == ["c", "b"]
    assert assignment.trend[1][1] == pytest.approx(2 / 3, abs=1e-4)


def test_the_assignment_names_the_user_and_the_time_of_the_message():
    _, assignment = update_segments(SegmentModel(), message((0.0, 1.0, 0.0, 0.0), T0 + 5, ["i"], user="u7"),
                                    config())
    assert (assignment.user_id, assignment.ts, assignment.segment) == ("u7", T0 + 5, 0)
