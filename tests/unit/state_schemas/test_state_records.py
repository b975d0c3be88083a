"""Keyed state and inter-hop records: versioned JSON that round-trips exactly, fails loudly when damaged,
and still reads what the previous release wrote."""
from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig
from operators import item_model, push_policy, user_context
from operators.segments import update_segments
from operators.steps import emitted
from state_schemas.codec import SchemaError
from state_schemas.events import BehaviourEvent, CatalogItem, OrderEvent
from state_schemas.hops import (AccountEvent, ItemSignal, ItemUpdate, ListedItem, SegmentAssignment, SegmentUpdate,
                                UserSummary)
from state_schemas.segments import SegmentModel
from state_schemas.state import (Candidate, CatalogChange, CoCount, DecayedScores, DecayedValue, HistoryEntry, ItemCard,
                                 ItemModel, MarketingSend, Neighbour, PendingRecommendation, Planned, PushState,
                                 RecentSend, State, UserContext, UserDirectory, Watch)
from state_schemas.events import FeedbackEvent
from state_schemas.state import Engagement, IntentActivity, PendingIntent, Rates, SentNote
from tests.unit.fakes import FakeSide

PROPERTY = settings(max_examples=150, deadline=None)
HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
CONFIG = JobConfig()

# Printable: ids inside the events some records carry hold no control characters (the intake refuses them).
keys = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=20)
maybe_key = st.none() | keys
times = st.integers(0, 2 ** 53)
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
scores = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
behaviour_events = st.builds(BehaviourEvent, event_id=keys, user_id=keys, behavior=st.sampled_from(["view", "cart"]),
                             ts=times, item_id=keys, category_id=maybe_key, brand=maybe_key, price=st.none() | scores)
pairs = st.lists(st.tuples(keys, scores), max_size=8).map(tuple)
vectors = st.lists(st.tuples(keys, finite), max_size=8).map(tuple)
item_lists = st.lists(keys, max_size=8).map(tuple)
decayed = st.builds(DecayedScores, at=times, scores=st.dictionaries(keys, scores, max_size=10))
last_purchases = st.dictionaries(keys, st.tuples(keys, times), max_size=5)
neighbours = st.lists(st.builds(Neighbour, item_id=keys, category_id=maybe_key, similarity=scores),
                      max_size=10).map(tuple)

user_contexts = st.builds(
    UserContext,
    seen=st.dictionaries(keys, times, max_size=20),
    history=st.lists(st.builds(HistoryEntry, item_id=keys, category_id=maybe_key, behavior=keys, ts=times),
                     max_size=10).map(tuple),
    category_affinity=decayed, purchased=item_lists, last_trigger_ts=st.none() | times,
    brand_affinity=decayed, price_affinity=decayed,
    active_hours=st.builds(DecayedScores, at=times,
                           scores=st.dictionaries(st.sampled_from([str(h) for h in range(24)]), scores)),
    last_purchase=last_purchases, last_segment_ts=st.none() | times)
item_models = st.builds(
    ItemModel, category_id=maybe_key, price=st.none() | scores, interactions=st.integers(0, 10 ** 9),
    popularity=st.builds(DecayedValue, value=scores, at=times),
    row=st.dictionaries(keys, st.builds(CoCount, count=st.integers(1, 10 ** 6), category_id=maybe_key), max_size=20),
    title=maybe_key, brand=maybe_key, stock=st.none() | st.integers(0, 10 ** 6), listed_at=st.none() | times,
    vector=vectors, neighbours=neighbours)
item_cards = st.builds(ItemCard, interactions=st.integers(0, 10 ** 9),
                       popularity=st.builds(DecayedValue, value=scores, at=times),
                       category_id=maybe_key, title=maybe_key, in_stock=st.booleans(), vector=vectors,
                       listed_at=st.none() | times, price=st.none() | scores)
push_states = st.builds(
    PushState, marketing_day=st.integers(-1, 10 ** 6), marketing_today=st.integers(0, 50),
    transactional_day=st.integers(-1, 10 ** 6), transactional_today=st.integers(0, 50),
    last_marketing_ts=st.none() | times,
    recent_items=st.dictionaries(keys, st.builds(RecentSend, at=times, category_id=maybe_key), max_size=20),
    transactional_keys=st.dictionaries(keys, times, max_size=20), content=decayed,
    segment=st.none() | st.integers(0, 1000), segment_trend=pairs, directory=st.builds(
        UserDirectory, listed_at=st.none() | times, time_zone=st.none() | st.sampled_from(["UTC", "Asia/Shanghai"]),
        locale=st.none() | st.sampled_from(["en", "zh-CN"]), channels=st.none() | st.just(("push", "sms")),
        consent=st.none() | st.just({"marketing": ("push",)}), quiet_hours=st.none() | st.just(("22:00", "07:00")),
        opted_out_at=st.none() | times))
summaries = st.builds(UserSummary, categories=pairs, brands=pairs, price_bands=pairs, active_hours=pairs,
                      purchased=item_lists, recent=item_lists, last_purchase=last_purchases)
item_updates = st.builds(ItemUpdate, event=behaviour_events,
                         history=st.lists(st.tuples(keys, maybe_key), max_size=10).map(tuple),
                         trigger=st.booleans(), summary=st.none() | summaries, repeat=st.booleans())
item_signals = st.builds(ItemSignal, event=behaviour_events, card=item_cards, trigger=st.booleans(),
                         neighbours=neighbours, summary=st.none() | summaries)
catalog_items = st.builds(CatalogItem, item_id=keys, title=keys, category_id=keys, price=scores, ts=times,
                          brand=maybe_key, tags=item_lists, stock=st.none() | st.integers(0, 10 ** 6))
listed_items = st.builds(ListedItem, item=catalog_items, vector=vectors)

RECORDS = [(UserContext, user_contexts), (ItemModel, item_models), (ItemCard, item_cards), (PushState, push_states),
           (ItemUpdate, item_updates), (ItemSignal, item_signals), (ListedItem, listed_items)]


@pytest.mark.parametrize("cls, records", RECORDS, ids=[cls.__name__ for cls, _ in RECORDS])
@PROPERTY
@given(data=st.data())
def test_every_record_round_trips_exactly(cls, records, data):
    record = data.draw(records)
    encoded = record.encode()
    assert isinstance(encoded, str if issubclass(cls, State) else bytes)  # state is a ValueState of strings
    assert orjson.loads(encoded).get("v", cls.VERSION) == cls.VERSION  # a message leaves out its current version
    decoded = cls.decode(encoded)
    assert decoded == record
    assert decoded.encode() == encoded  # stable: decoding and re-encoding changes nothing


@pytest.mark.parametrize("cls", [UserContext, ItemModel, PushState])
def test_absent_state_decodes_to_the_empty_record(cls):
    assert cls.decode(None) == cls()


def test_empty_records_have_the_documented_defaults():
    assert PushState().marketing_day == -1 and PushState().transactional_day == -1
    assert PushState().last_marketing_ts is None and PushState().directory == UserDirectory()
    assert UserDirectory().opted_out_at is None and UserDirectory().encode() == "{}"
    assert PushState().segment is None and PushState().content == DecayedScores()
    assert UserContext().category_affinity == DecayedScores(at=0, scores={})
    assert UserContext().last_segment_ts is None and UserContext().last_purchase == {}
    assert ItemModel().interactions == 0 and ItemModel().row == {} and ItemModel().neighbours == ()
    assert ItemCard().in_stock  # an item without a catalogue record is assumed available
    assert ItemModel().card().in_stock and not ItemModel(stock=0).card().in_stock and ItemModel(stock=3).card().in_stock


def test_decayed_scores_round_trip_through_their_list_form():
    scores = DecayedScores(at=T0, scores={"a": 1.5, "b": 0.25})
    assert scores.to_list() == [T0, {"a": 1.5, "b": 0.25}]
    assert DecayedScores.from_list(scores.to_list()) == scores


EVENT = BehaviourEvent(event_id="e", user_id="u", behavior="view", ts=1, item_id="i")
EMPTY = [UserContext(), ItemModel(), ItemCard(), PushState(), ItemUpdate(event=EVENT, history=(), trigger=False),
         ItemSignal(event=EVENT, card=ItemCard(), trigger=False),
         ListedItem(item=CatalogItem(item_id="i", title="t", category_id="c", price=1.0, ts=1), vector=())]


@pytest.mark.parametrize("record", EMPTY, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("version", [0, "next", 99, "1", True])
def test_unknown_versions_are_rejected_loudly(record, version):
    cls = type(record)
    assert cls.decode(record.encode()) == record
    payload = orjson.loads(record.encode())
    payload["v"] = cls.VERSION + 1 if version == "next" else version
    with pytest.raises(SchemaError, match="unsupported schema version"):
        cls.decode(orjson.dumps(payload).decode())


# Keys the first release wrote; the others arrived with version 2 and may be absent in a v1 record.
V1_KEYS = {UserContext: {"seen", "h", "aff", "bought", "trig"},
           ItemModel: {"cat", "price", "n", "pop", "row"},
           PushState: {"mday", "mk", "tday", "tx", "last", "recent", "txk", "out"}}


@pytest.mark.parametrize("cls, what", [(UserContext, "user context state"), (ItemModel, "item model state"),
                                       (PushState, "push state")])
@pytest.mark.parametrize("damage", ["drop", "mistype"])
def test_damaged_state_is_reported_as_damaged(cls, what, damage):
    payload = orjson.loads(cls().encode())
    assert V1_KEYS[cls] < set(payload)
    for key in [k for k in payload if k != "v"]:
        broken = dict(payload)
        if damage == "drop":
            del broken[key]
        else:
            broken[key] = {"not": "right"}
        try:
            decoded = cls.decode(orjson.dumps(broken).decode())
        except SchemaError as error:
            assert damage == "mistype", f"dropping {key!r} should read as empty, as in a migrated record: {error}"
            assert f"{what} is damaged" in str(error)
        else:
            # Every field is typed, so a mistyped one is always caught; an absent one reads as empty,
            # as a field added since an earlier version does.
            assert damage == "drop", f"mistyping {key!r} went unnoticed: {decoded}"
            assert decoded == cls()


@pytest.mark.parametrize("cls, what", [(ItemUpdate, "item update"), (ItemSignal, "item signal"),
                                       (ListedItem, "listed item")])
def test_damaged_hop_records_are_schema_errors_that_name_the_record(cls, what):
    with pytest.raises(SchemaError, match=what):
        cls.decode('{"v": 1}')
    with pytest.raises(SchemaError, match=what):
        cls.decode("not json")


def test_a_damaged_item_card_names_the_card():
    with pytest.raises(SchemaError, match="item card"):
        ItemCard.decode('{"v": 1, "n": "many"}')
    with pytest.raises(SchemaError, match="item card"):
        ItemCard.decode("not json")


@pytest.mark.parametrize("cls, what", [(UserContext, "user context state"), (PushState, "push state")])
def test_non_object_state_is_rejected(cls, what):
    with pytest.raises(SchemaError, match=f"{what} must be a JSON object"):
        cls.decode("[1, 2]")
    with pytest.raises(SchemaError, match=f"malformed JSON in {what}"):
        cls.decode("{")


def test_an_item_card_inside_a_signal_must_be_an_object():
    payload = orjson.loads(ItemSignal(event=EVENT, card=ItemCard(), trigger=False).encode())
    payload["card"] = "in stock"
    with pytest.raises(SchemaError, match="item signal: field 'card' must be an object"):
        ItemSignal.decode(orjson.dumps(payload).decode())


# --- records the previous release wrote ----------------------------------------------------------

def test_a_v1_user_context_reads_with_an_empty_brand_price_hour_and_purchase_profile():
    v1 = orjson.dumps({"v": 1, "seen": {"e1": T0}, "h": [["i1", "c1", "purchase", T0]], "aff": [T0, {"c1": 8.0}],
                       "bought": ["i1"], "trig": T0}).decode()
    state = UserContext.decode(v1)
    assert state == UserContext(seen={"e1": T0}, history=(HistoryEntry("i1", "c1", "purchase", T0),),
                                category_affinity=DecayedScores(T0, {"c1": 8.0}), purchased=("i1",),
                                last_trigger_ts=T0)
    assert orjson.loads(state.encode())["v"] == UserContext.VERSION and UserContext.decode(state.encode()) == state


def test_a_v1_item_model_reads_without_catalogue_facts_or_neighbours():
    v1 = orjson.dumps({"v": 1, "cat": "c1", "price": 9.5, "n": 3, "pop": [2.0, T0], "row": {"j": [2, "c2"]}}).decode()
    state = ItemModel.decode(v1)
    assert state == ItemModel(category_id="c1", price=9.5, interactions=3, popularity=DecayedValue(2.0, T0),
                              row={"j": CoCount(2, "c2")})
    assert state.card().in_stock and state.card().listed_at is None


def test_a_v1_item_card_reads_with_an_unknown_price():
    card = ItemCard.decode(orjson.dumps({"v": 1, "n": 3, "pop": [1.0, T0], "cat": "c", "t": "Pan", "s": True,
                                         "vec": [], "l": None}).decode())
    assert card.price is None and card.title == "Pan" and card.v == ItemCard.VERSION


def test_a_v1_push_state_reads_with_recent_items_of_unknown_category():
    v1 = orjson.dumps({"v": 1, "mday": 5, "mk": 2, "tday": 4, "tx": 1, "last": T0, "recent": {"a": T0, "b": T0 - 1},
                       "txk": {"o1:shipped": T0}, "out": True}).decode()
    state = PushState.decode(v1)
    assert state == PushState(marketing_day=5, marketing_today=2, transactional_day=4, transactional_today=1,
                              last_marketing_ts=T0, recent_items={"a": RecentSend(T0), "b": RecentSend(T0 - 1)},
                              transactional_keys={"o1:shipped": T0}, directory=UserDirectory(opted_out_at=0))
    assert orjson.loads(state.encode())["v"] == PushState.VERSION and PushState.decode(state.encode()) == state


def test_a_v5_push_state_reads_as_never_erased():
    """A new field in a state record: what the previous encoding wrote (a savepoint's state) still reads."""
    v5 = orjson.dumps({"v": 5, "mday": 5, "mk": 2, "ph": 19, "va": T0, "vh": 20}).decode()
    state = PushState.decode(v5)
    assert state.erased_at is None and state.population_hour == 19 and state.voted_hour == 20
    assert state.marketing_today == 2 and PushState.decode(state.encode()) == state


def test_a_v2_opt_out_moves_into_the_directory_entry():
    """v2 kept the opt-out in the expiring push state; v3 reads it as an unsubscribe of unknown time."""
    v2 = orjson.dumps({"v": 2, "mday": 5, "mk": 0, "tday": -1, "tx": 0, "last": None, "recent": {}, "txk": {},
                       "out": True, "content": [0, {}], "seg": None, "segtrend": []}).decode()
    state = PushState.decode(v2)
    assert state.directory == UserDirectory(opted_out_at=0) and state.legacy_opted_out is False
    assert PushState.decode(orjson.dumps({**orjson.loads(v2), "out": False})).directory == UserDirectory()


def test_a_v3_pending_recommendation_moves_into_the_agenda():
    """v3 held one pending recommendation; v4 keeps every journey's messages in the agenda."""
    event = {"event_id": "t1", "user_id": "u", "behavior": "view", "ts": T0, "item_id": "i", "type": "behaviour"}
    v3 = orjson.dumps({"v": 3, "act": T0, "pend": {"e": event, "c": [["j", 0.5, "c", "because", "Pan", 9.5]],
                                                   "at": T0 + 1800000, "due": T0 + 1800000}}).decode()
    state = PushState.decode(v3)
    [entry] = state.agenda
    assert (entry.journey, entry.key, entry.source, entry.intended_at, entry.due) == (
        "recommendation", "", "t1", T0 + 1800000, T0 + 1800000)
    assert entry.event.event_id == "t1" and entry.candidates == (Candidate("j", 0.5, "c", "because", "Pan", 9.5),)
    assert state.legacy_pending is None and PushState.decode(state.encode()) == state


def test_a_v1_item_update_is_refused_loudly_rather_than_misread():
    v1 = orjson.dumps({"v": 1, "e": {"ts": 1}, "h": [], "t": True, "a": [["c1", 1.0]], "x": ["i1"]}).decode()
    with pytest.raises(SchemaError, match="item update"):
        ItemUpdate.decode(v1)


# --- what the operators write --------------------------------------------------------------------

def catalogue(item: int) -> CatalogItem:
    return CatalogItem(item_id=f"i{item}", title=f"Red wool item {item}", category_id=f"c{item % 3}",
                       price=float(20 * item), ts=T0 - HOUR_MS, brand="acme", stock=item % 2)


@PROPERTY
@given(steps=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["view", "cart", "purchase"]),
                                st.integers(0, 3 * HOUR_MS)), max_size=25),
       listed=st.sets(st.integers(0, 6)))
def test_state_written_by_the_operators_round_trips_after_every_event(steps, listed):
    """The shells store encode() and load decode(): every state and record the core produces must survive that."""
    side, item_states = FakeSide(), {}
    for item in listed:
        joined = item_model.join_catalog(ItemModel(), catalogue(item), (("red", 0.6), ("wool", 0.8)),
                                         CONFIG.journeys)
        item_states[f"i{item}"] = joined.state.encode()
        side.card_map[f"i{item}"] = joined.state.card()
    user_state, push_state, model = UserContext(), PushState(), SegmentModel()

    def push(message):
        decided = push_policy.handle(push_state, message, "u", T0, side, CONFIG)
        assert PushState.decode(decided.state.encode()) == decided.state
        for notification in decided.emit:
            assert type(notification).decode(notification.encode()) == notification
        return PushState.decode(decided.state.encode())

    for n, (item, behavior, offset) in enumerate(steps):
        event = BehaviourEvent(event_id=f"e{n}", user_id="u", behavior=behavior, ts=T0 + offset,
                               item_id=f"i{item}", category_id=f"c{item % 3}", price=float(item),
                               brand="acme" if item % 2 else None)
        step = user_context.observe(user_state, event, CONFIG.intake, CONFIG.profile, CONFIG.segments)
        user_state = UserContext.decode(step.state.encode())
        assert user_state == step.state
        for sent in emitted(step, SegmentUpdate):
            segment_update = SegmentUpdate.decode(sent.encode())
            assert segment_update == sent
            model, assignment = update_segments(model, segment_update, CONFIG.segments)
            push_state = push(SegmentAssignment.decode(assignment.encode()))
        [sent] = emitted(step, ItemUpdate)
        update = ItemUpdate.decode(sent.encode())
        assert update == sent
        key = update.event.item_id
        item_step = item_model.update_item(ItemModel.decode(item_states.get(key)), update, side.cards,
                                           CONFIG.item_model, CONFIG.profile, CONFIG.catalog.terms_per_item)
        item_states[key] = item_step.state.encode()
        assert ItemModel.decode(item_states[key]) == item_step.state
        card = item_step.state.card()
        side.card_map[key] = ItemCard.decode(card.encode())
        assert side.card_map[key] == card
        [produced] = emitted(item_step, ItemSignal)
        signal = ItemSignal.decode(produced.encode())
        assert signal == produced
        push_state = push(signal)
    order = AccountEvent(event=OrderEvent("o", "u", "o1", "shipped", T0))
    decided = push_policy.handle(push_state, AccountEvent.decode(order.encode()), "u", T0, side, CONFIG)
    assert PushState.decode(decided.state.encode()) == decided.state


def test_every_state_field_is_encoded():
    """A field added to a record but left out of encode() would be lost at the first checkpoint."""
    rich = {
        UserContext: UserContext(seen={"e": 1}, history=(HistoryEntry("i", "c", "view", 1),),
                                 category_affinity=DecayedScores(1, {"c": 1.0}), purchased=("i",), last_trigger_ts=1,
                                 brand_affinity=DecayedScores(1, {"b": 1.0}),
                                 price_affinity=DecayedScores(1, {"p1": 1.0}),
                                 active_hours=DecayedScores(1, {"3": 1.0}), last_purchase={"c": ("i", 1)},
                                 last_segment_ts=1, factors=(0.5, -0.25),
                                 intent=IntentActivity(1, 1, 1, (1.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), 1),
                                 intent_pending=(PendingIntent(1, (1.0, 0.5)),)),
        ItemModel: ItemModel(category_id="c", price=1.0, interactions=1, popularity=DecayedValue(1.0, 1),
                             row={"j": CoCount(1, "c")}, title="t", brand="b", stock=1, listed_at=1,
                             vector=(("w", 1.0),), neighbours=(Neighbour("j", "c", 0.5),),
                             watchers={"u": Watch("cart", 1, 2.5)},
                             changes=(CatalogChange("price_drop", 1, ItemCard(price=1.0), was_price=2.0),),
                             factors=(0.5, -0.25)),
        PushState: PushState(marketing_day=1, marketing_today=1, transactional_day=1, transactional_today=1,
                             last_marketing_ts=1, recent_items={"i": RecentSend(1, "c")}, transactional_keys={"o:s": 1},
                             marketing_sends=(MarketingSend(1, "push"),),
                             legacy_opted_out=True, content=DecayedScores(1, {"w": 1.0}), segment=1,
                             segment_trend=(("i", 1.0),),
                             directory=UserDirectory(listed_at=1, time_zone="UTC", locale="en", channels=("push",),
                                                     consent={"marketing": ("push",)}, quiet_hours=("22:00", "07:00"),
                                                     opted_out_at=1),
                             last_active=1, legacy_pending=PendingRecommendation(
                                 event=BehaviourEvent(event_id="e", user_id="u", behavior="view", ts=1, item_id="i"),
                                 candidates=(Candidate("j", 0.5, "c", "because", "Pan", 9.5),), intended_at=2, due=3),
                             agenda=(Planned("cart_abandonment", key="i", source="e", intended_at=2, earliest=2, due=3,
                                             reminder=1,
                                             event=BehaviourEvent(event_id="e", user_id="u", behavior="view", ts=1,
                                                                  item_id="i"),
                                             order=OrderEvent("o", "u", "o1", "delivered", 1),
                                             candidates=(Candidate("j", 0.5, "c", "because", "Pan", 9.5),),
                                             was_price=3.0, best_hour=19),),
                             watched={"i": Watch("favourite", 1, 2.0)}, voted_hour=20, voted_at=1, population_hour=19,
                             erased_at=4,
                             engagement=Engagement(sent={"n1": SentNote("push", "recommendation", 1, True, True,
                                                                                items=("i",), categories=("c",),
                                                                                template="recommendation_one")},
                                                   ignored=2, channels={"push": Rates(1.0, 1.0, 0.0, 1)},
                                                   journeys={"recommendation": Rates(1.0, 1.0, 0.0, 1)}),
                             pending_feedback=(FeedbackEvent(event_id="f", user_id="u", action="open", ts=5,
                                                             notification_id="n1"),),
                             send_threshold=0.4, decided_days=(19000, 19001), intent=0.25, intent_at=5),
    }
    for cls, record in rich.items():
        decoded = cls.decode(record.encode())
        for f in msgspec.structs.fields(cls):
            if f.name != "v":
                assert getattr(decoded, f.name) == getattr(record, f.name) != getattr(cls(), f.name), f.name


@pytest.mark.parametrize("cls, previous", [(UserContext, 2), (ItemModel, 4), (ItemCard, 2)])
def test_a_record_of_the_release_before_factors_reads_with_none(cls, previous):
    written = orjson.loads(cls(factors=(0.5,)).encode())
    del written["mf"]
    written["v"] = previous
    record = cls.decode(orjson.dumps(written).decode())
    assert record.factors == () and record.v == cls.VERSION > previous


def test_a_sent_note_written_before_attribution_reads_with_no_items():
    wire = orjson.loads(PushState(engagement=Engagement(sent={"n1": SentNote("push", "recommendation", 1, True)}))
                        .encode())
    holder = next(v for v in wire.values() if isinstance(v, dict) and "sent" in v)
    holder["sent"]["n1"] = ["push", "recommendation", 1, True, True, False, False]  # as the release before wrote it
    read = PushState.decode(orjson.dumps(wire)).engagement.sent["n1"]
    assert (read.opened, read.items, read.categories, read.template) == (True, (), (), None)
