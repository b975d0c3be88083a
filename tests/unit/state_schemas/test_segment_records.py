"""Segmenter records: versioned JSON that round-trips exactly, and a model that refuses to restore when damaged."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import SegmentConfig
from operators.segments import update_segments
from state_schemas.codec import SchemaError
from state_schemas.hops import SegmentAssignment, SegmentUpdate
from state_schemas.segments import SegmentModel
from state_schemas.state import DecayedScores, State

PROPERTY = settings(max_examples=150, deadline=None)

keys = st.text(min_size=1, max_size=20)
times = st.integers(0, 2 ** 53)
finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-300, max_value=1e6, allow_nan=False, allow_infinity=False)
trends = st.builds(DecayedScores, at=times, scores=st.dictionaries(keys, positive, max_size=8))


@st.composite
def segment_models(draw):
    k, d = draw(st.integers(0, 5)), draw(st.integers(1, 6))
    return SegmentModel(
        centroids=tuple(draw(st.lists(finite, min_size=d, max_size=d).map(tuple)) for _ in range(k)),
        weights=tuple(draw(positive) for _ in range(k)),
        trends=tuple(draw(trends) for _ in range(k)),
        updates=draw(st.integers(0, 2 ** 53)))


segment_updates = st.builds(SegmentUpdate, user_id=keys, ts=times, vector=st.lists(finite, max_size=40).map(tuple),
                            items=st.lists(keys, max_size=10).map(tuple))
segment_assignments = st.builds(SegmentAssignment, user_id=keys, ts=times, segment=st.integers(0, 1000),
                                trend=st.lists(st.tuples(keys, finite), max_size=20).map(tuple))

RECORDS = [(SegmentModel, segment_models()), (SegmentUpdate, segment_updates),
           (SegmentAssignment, segment_assignments)]


@pytest.mark.parametrize("cls, records", RECORDS, ids=[cls.__name__ for cls, _ in RECORDS])
@PROPERTY
@given(data=st.data())
def test_every_segment_record_round_trips_exactly(cls, records, data):
    record = data.draw(records)
    encoded = record.encode()
    assert isinstance(encoded, str if issubclass(cls, State) else bytes)  # state is a ValueState of strings
    assert orjson.loads(encoded).get("v", cls.VERSION) == cls.VERSION  # a message leaves out its current version
    decoded = cls.decode(encoded)
    assert decoded == record
    assert decoded.encode() == encoded


def test_absent_model_state_is_the_empty_unseeded_model():
    empty = SegmentModel.decode(None)
    assert empty == SegmentModel() and empty.centroids == () and empty.updates == 0


SEEDED = SegmentModel(centroids=((1.0, 0.0), (0.0, 1.0)), weights=(2.5, 1.0),
                      trends=(DecayedScores(at=5, scores={"a": 1.0}), DecayedScores(at=7, scores={})), updates=4)
EXAMPLES = [SegmentModel(), SEEDED, SegmentUpdate(user_id="u", ts=1, vector=(0.5, 0.5), items=("a",)),
            SegmentAssignment(user_id="u", ts=1, segment=0, trend=(("a", 1.0),))]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("version", [0, 2, 99, "1", True])
def test_unknown_versions_are_rejected_loudly(record, version):
    cls = type(record)
    assert cls.decode(record.encode()) == record
    payload = orjson.loads(record.encode())
    payload["v"] = version
    with pytest.raises(SchemaError, match="unsupported schema version"):
        cls.decode(orjson.dumps(payload).decode())


@pytest.mark.parametrize("damage", ["drop", "mistype"])
def test_every_field_of_the_model_is_checked(damage):
    payload = orjson.loads(SEEDED.encode())
    # The update counter alone may go missing: it reads as 0, as in a fresh model, and means nothing else.
    for key in [k for k in payload if k != "v" and (damage == "mistype" or k != "n")]:
        broken = dict(payload)
        if damage == "drop":
            del broken[key]
        else:
            broken[key] = {"not": "right"}
        with pytest.raises(SchemaError, match="segment model state is damaged"):
            SegmentModel.decode(orjson.dumps(broken).decode())


@pytest.mark.parametrize("field, value, reason", [
    ("c", [[1.0, 0.0], [0.0, 1.0, 0.0]], "differ in dimension"),
    ("c", [[], []], "empty vector"),
    ("c", [[1.0, None], [0.0, 1.0]], "must be a number"),
    ("c", [[1.0, "0"], [0.0, 1.0]], "must be a number"),
    ("c", [[1.0, True], [0.0, 1.0]], "must be a number"),
    ("c", [[1.0, 0.0]], "1 centroids, 2 weights, 2 trends"),
    ("w", [2.5], "2 centroids, 1 weights"),
    ("w", [2.5, 0.0], "weights must be > 0"),
    ("w", [2.5, -1.0], "weights must be > 0"),
    ("t", [[5, {"a": 1.0}]], "2 centroids, 2 weights, 1 trends"),
    ("t", [[5, {"a": 1.0}], [7, {}, 3]], "array` of at most length 2"),
    ("t", [[5, {"a": "high"}], [7, {}]], "must be a number"),
    ("t", [[5.5, {}], [7, {}]], "field 't' must be an integer"),
    ("n", -1, "updates must be"),
    ("n", 1.5, "field 'n' must be an integer"),
])
def test_a_model_that_does_not_hang_together_is_refused(field, value, reason):
    payload = orjson.loads(SEEDED.encode())
    payload[field] = value
    with pytest.raises(SchemaError, match=f"segment model state is damaged: .*{reason}"):
        SegmentModel.decode(orjson.dumps(payload).decode())


def test_numbers_beyond_float_range_are_refused():
    raw = SEEDED.encode().replace("2.5", "1e999")
    with pytest.raises(SchemaError):
        SegmentModel.decode(raw)


@pytest.mark.parametrize("cls, what", [(SegmentModel, "segment model state"), (SegmentUpdate, "segment update"),
                                       (SegmentAssignment, "segment assignment")])
def test_non_objects_and_malformed_json_name_the_record(cls, what):
    with pytest.raises(SchemaError, match=f"{what} must be a JSON object"):
        cls.decode("[1, 2]")
    with pytest.raises(SchemaError, match=f"malformed JSON in {what}"):
        cls.decode("{")


@pytest.mark.parametrize("cls, good, field, value", [
    (SegmentUpdate, EXAMPLES[2], "u", None),
    (SegmentUpdate, EXAMPLES[2], "ts", "soon"),
    (SegmentUpdate, EXAMPLES[2], "x", None),
    (SegmentUpdate, EXAMPLES[2], "x", [0.5, "a"]),
    (SegmentUpdate, EXAMPLES[2], "i", "a"),
    (SegmentAssignment, EXAMPLES[3], "s", -1),
    (SegmentAssignment, EXAMPLES[3], "s", None),
    (SegmentAssignment, EXAMPLES[3], "t", "a"),
    (SegmentAssignment, EXAMPLES[3], "t", [["a"]]),
    (SegmentAssignment, EXAMPLES[3], "t", [["", 1.0]]),
    (SegmentAssignment, EXAMPLES[3], "t", [["a", None]]),
])
def test_damaged_messages_are_schema_errors_that_name_the_record(cls, good, field, value):
    payload = orjson.loads(good.encode())
    if value is None:
        del payload[field]
    else:
        payload[field] = value
    what = "segment update" if cls is SegmentUpdate else "segment assignment"
    with pytest.raises(SchemaError, match=what):
        cls.decode(orjson.dumps(payload).decode())


@PROPERTY
@given(steps=st.lists(st.tuples(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
                                st.integers(0, 10 ** 9), st.lists(keys, max_size=3)), max_size=30))
def test_models_and_assignments_written_by_the_segmenter_round_trip(steps):
    """The shell stores encode() and loads decode(): every model the core produces must survive that."""
    config = SegmentConfig(segments=2, dimensions=3, decay=0.9, trend_items=3)
    model = SegmentModel()
    for vector, ts, items in steps:
        update = SegmentUpdate.decode(SegmentUpdate(user_id="u", ts=ts, vector=tuple(vector), items=tuple(items))
                                      .encode())
        model, assignment = update_segments(model, update, config)
        assert SegmentModel.decode(model.encode()) == model
        assert SegmentAssignment.decode(assignment.encode()) == assignment
