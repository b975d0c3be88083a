"""Keyed state and inter-hop records: versioned JSON that round-trips exactly and fails loudly when damaged."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.config import JobConfig
from operators import item_model, push_policy, user_context
from state_schemas.codec import SchemaError
from state_schemas.events import BehaviourEvent, OrderEvent
from state_schemas.state import (CandidateSet, DecayedScores, HistoryEntry, ItemModel, ItemUpdate, Neighbour,
                                 PushState, UserContext)

PROPERTY = settings(max_examples=150, deadline=None)
T0 = 1_700_000_000_000
CONFIG = JobConfig()

keys = st.text(min_size=1, max_size=20)
maybe_key = st.none() | keys
times = st.integers(0, 2 ** 53)
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
scores = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
behaviour_dicts = st.builds(BehaviourEvent, event_id=keys, user_id=keys, behavior=st.sampled_from(["view", "cart"]),
                            ts=times, item_id=keys, category_id=maybe_key,
                            price=st.none() | scores).map(lambda e: e.to_dict())
affinities = st.lists(st.tuples(keys, scores), max_size=8).map(tuple)
excludes = st.lists(keys, max_size=8).map(tuple)

user_contexts = st.builds(
    UserContext,
    seen=st.dictionaries(keys, times, max_size=20),
    history=st.lists(st.builds(HistoryEntry, item_id=keys, category_id=maybe_key, behavior=keys, ts=times),
                     max_size=10).map(tuple),
    category_affinity=st.builds(DecayedScores, at=times, scores=st.dictionaries(keys, scores, max_size=10)),
    purchased=excludes,
    last_trigger_ts=st.none() | times)
item_models = st.builds(
    ItemModel, category_id=maybe_key, price=st.none() | scores, interactions=st.integers(0, 10 ** 9),
    popularity=scores, popularity_at=times,
    row=st.dictionaries(keys, st.tuples(st.integers(1, 10 ** 6), maybe_key).map(list), max_size=20))
push_states = st.builds(
    PushState, marketing_day=st.integers(-1, 10 ** 6), marketing_today=st.integers(0, 50),
    transactional_day=st.integers(-1, 10 ** 6), transactional_today=st.integers(0, 50),
    last_marketing_ts=st.none() | times, recent_items=st.dictionaries(keys, times, max_size=20),
    transactional_keys=st.dictionaries(keys, times, max_size=20), opted_out=st.booleans())
item_updates = st.builds(ItemUpdate, event=behaviour_dicts,
                         history=st.lists(st.tuples(keys, maybe_key), max_size=10).map(tuple),
                         trigger=st.booleans(), affinity=affinities, exclude=excludes)
candidate_sets = st.builds(CandidateSet, event=behaviour_dicts, trigger_category=maybe_key,
                           candidates=st.lists(st.builds(Neighbour, item_id=keys, category_id=maybe_key,
                                                         co_count=scores), max_size=10).map(tuple),
                           affinity=affinities, exclude=excludes)

RECORDS = [(UserContext, user_contexts), (ItemModel, item_models), (PushState, push_states),
           (ItemUpdate, item_updates), (CandidateSet, candidate_sets)]


@pytest.mark.parametrize("cls, records", RECORDS, ids=[cls.__name__ for cls, _ in RECORDS])
@PROPERTY
@given(data=st.data())
def test_every_record_round_trips_exactly(cls, records, data):
    record = data.draw(records)
    encoded = record.encode()
    assert isinstance(encoded, str)
    assert orjson.loads(encoded)["v"] == cls.VERSION
    decoded = cls.decode(encoded)
    assert decoded == record
    assert decoded.encode() == encoded  # stable: decoding and re-encoding changes nothing


@pytest.mark.parametrize("cls", [UserContext, ItemModel, PushState])
def test_absent_state_decodes_to_the_empty_record(cls):
    assert cls.decode(None) == cls()


def test_empty_records_have_the_documented_defaults():
    assert PushState().marketing_day == -1 and PushState().transactional_day == -1
    assert PushState().last_marketing_ts is None and not PushState().opted_out
    assert UserContext().category_affinity == DecayedScores(at=0, scores={})
    assert ItemModel().interactions == 0 and ItemModel().row == {}


def test_decayed_scores_round_trip_through_their_list_form():
    scores = DecayedScores(at=T0, scores={"a": 1.5, "b": 0.25})
    assert scores.to_list() == [T0, {"a": 1.5, "b": 0.25}]
    assert DecayedScores.from_list(scores.to_list()) == scores


EMPTY = [UserContext(), ItemModel(), PushState(), ItemUpdate(event={"ts": 1}, history=(), trigger=False),
         CandidateSet(event={"ts": 1}, trigger_category=None, candidates=(), affinity=(), exclude=())]


@pytest.mark.parametrize("record", EMPTY, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("version", [0, 2, 99, "1", True])
def test_unknown_versions_are_rejected_loudly(record, version):
    cls = type(record)
    assert cls.decode(record.encode()) == record
    payload = orjson.loads(record.encode())
    payload["v"] = version
    with pytest.raises(SchemaError, match="unsupported schema version"):
        cls.decode(orjson.dumps(payload).decode())


@pytest.mark.parametrize("cls, what", [(UserContext, "user context state"), (ItemModel, "item model state"),
                                       (PushState, "push state")])
@pytest.mark.parametrize("damage", ["drop", "mistype"])
def test_damaged_state_is_reported_as_damaged(cls, what, damage):
    payload = orjson.loads(cls().encode())
    for key in [k for k in payload if k != "v"]:
        broken = dict(payload)
        if damage == "drop":
            del broken[key]
        else:
            broken[key] = {"not": "right"}
        try:
            decoded = cls.decode(orjson.dumps(broken).decode())
        except SchemaError as error:
            assert f"{what} is damaged" in str(error)
        else:  # a few fields hold free-form JSON; mistyping them is caught later, but dropping one never passes
            assert damage == "mistype", f"dropping {key!r} went unnoticed: {decoded}"


@pytest.mark.parametrize("cls, what", [(ItemUpdate, "item update"), (CandidateSet, "candidate set")])
def test_damaged_hop_records_are_schema_errors_that_name_the_record(cls, what):
    with pytest.raises(SchemaError, match=what):
        cls.decode('{"v": 1}')
    with pytest.raises(SchemaError, match=what):
        cls.decode("not json")


@pytest.mark.parametrize("cls, what", [(UserContext, "user context state"), (PushState, "push state")])
def test_non_object_state_is_rejected(cls, what):
    with pytest.raises(SchemaError, match=f"{what} must be a JSON object"):
        cls.decode("[1, 2]")
    with pytest.raises(SchemaError, match=f"malformed JSON in {what}"):
        cls.decode("{")


@PROPERTY
@given(steps=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["view", "cart", "purchase"]),
                                st.integers(0, 3 * 3_600_000)), max_size=25))
def test_state_written_by_the_operators_round_trips_after_every_event(steps):
    """The shells store encode() and load decode(): every state the core produces must survive that."""
    profile, items, policy = CONFIG.profile, CONFIG.item_model, CONFIG.policy
    user_state, item_states, push_state = UserContext(), {}, PushState()
    for n, (item, behavior, offset) in enumerate(steps):
        event = BehaviourEvent(event_id=f"e{n}", user_id="u", behavior=behavior, ts=T0 + offset,
                               item_id=f"i{item}", category_id=f"c{item % 3}", price=float(item))
        step = user_context.observe(user_state, event, CONFIG.intake, profile)
        user_state = UserContext.decode(step.state.encode())
        assert user_state == step.state
        update = ItemUpdate.decode(step.to_item_hop.encode())
        assert update == step.to_item_hop
        key = update.event["item_id"]
        new_item, candidates = item_model.update_item(ItemModel.decode(item_states.get(key)), update, items,
                                                      profile)
        item_states[key] = new_item.encode()
        assert ItemModel.decode(item_states[key]) == new_item
        if candidates is not None:
            assert CandidateSet.decode(candidates.encode()) == candidates
            decided = push_policy.handle(push_state, CandidateSet.decode(candidates.encode()), "u", T0, policy, "k" * 8)
            push_state = PushState.decode(decided.state.encode())
            assert push_state == decided.state
    shipped = OrderEvent("o", "u", "o1", "shipped", T0)
    decided = push_policy.handle(push_state, shipped, "u", T0, policy, "k" * 8)
    assert PushState.decode(decided.state.encode()) == decided.state
