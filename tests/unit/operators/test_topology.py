"""The routing table: every hop message goes to a stage that reads it, every stage reads only messages
meant for it, and the Flink-free twin routes a message where the job's edges send it."""
from __future__ import annotations

import typing

from operators.topology import BY_ITEM, BY_USER, ONE_INSTANCE, STAGES
from state_schemas.events import BehaviourEvent, CatalogItem, OrderEvent, UserRecord
from state_schemas.hops import (CATALOG_TERMS, HOP_MESSAGES, INTENT, ITEM_MODEL, PUSH_POLICY, SEGMENTER,
                                SINGLE_INSTANCE_KEY, USER_CONTEXT, VOCABULARY, WINDOWS, AccountEvent, DirectoryRecord,
                                ForgetWatcher, IntentExample, IntentScore, ItemSignal, ItemUpdate, ListedItem,
                                SegmentAssignment, SegmentUpdate, TermChange, WatchedItemChange)
from state_schemas.state import ItemCard


def members(accepts) -> set[type]:
    return set(typing.get_args(accepts)) or {accepts}


def test_every_hop_message_goes_to_a_stage_that_decodes_it_or_to_the_windows():
    for message in HOP_MESSAGES:
        if message.DESTINATION == WINDOWS:  # Flink SQL reads these, outside the keyed stages
            continue
        assert message in members(STAGES[message.DESTINATION].accepts), message


def test_every_stage_decodes_only_messages_addressed_to_it():
    for name, stage in STAGES.items():
        for message in members(stage.accepts):
            assert getattr(message, "DESTINATION", name) == name, (name, message)
    assert members(STAGES[USER_CONTEXT].accepts) >= {BehaviourEvent, OrderEvent}  # the admitted input events
    assert members(STAGES[CATALOG_TERMS].accepts) == {CatalogItem}


T0 = 1_700_000_000_000
EVENT = BehaviourEvent(event_id="e", user_id="u1", behavior="view", ts=T0, item_id="i1")
ITEM = CatalogItem(item_id="i1", title="t", category_id="c", price=1.0, ts=T0)


def test_each_message_is_routed_by_the_key_its_stage_is_keyed_by():
    examples = [
        (ItemUpdate(event=EVENT, history=(), trigger=False), "i1"),
        (ListedItem(item=ITEM, vector=()), "i1"),
        (TermChange(item=ITEM, counts={}), SINGLE_INSTANCE_KEY),
        (ItemSignal(event=EVENT, card=STAGES[ITEM_MODEL].state().card(), trigger=False), "u1"),
        (SegmentUpdate(user_id="u1", ts=T0, vector=()), SINGLE_INSTANCE_KEY),
        (SegmentAssignment(user_id="u1", ts=T0, segment=0), "u1"),
        (AccountEvent(event=OrderEvent(event_id="o", user_id="u1", order_id="o1", status="paid", ts=T0)), "u1"),
        (DirectoryRecord(event=UserRecord(user_id="u1", ts=T0)), "u1"),
        (WatchedItemChange(user_id="u1", item_id="i1", change="price_drop", ts=T0, card=ItemCard()), "u1"),
        (ForgetWatcher(user_id="u1", item_id="i1", ts=T0), "i1"),
        (IntentExample(user_id="u1", ts=T0, x=(1.0,)), SINGLE_INSTANCE_KEY),
        (IntentScore(user_id="u1", ts=T0, probability=0.5), "u1"),
    ]
    assert {type(message) for message, _ in examples} == set(HOP_MESSAGES) - {m for m in HOP_MESSAGES
                                                                                if m.DESTINATION == WINDOWS}
    by = {BY_USER: "u1", BY_ITEM: "i1", ONE_INSTANCE: SINGLE_INSTANCE_KEY}
    for message, key in examples:
        assert message.routing_key == key == by[STAGES[message.DESTINATION].keyed_by], message
        assert message.event_time == T0
    assert {STAGES[name].keyed_by for name in (VOCABULARY, SEGMENTER, INTENT)} == {ONE_INSTANCE}
    assert STAGES[PUSH_POLICY].keyed_by == BY_USER and STAGES[CATALOG_TERMS].keyed_by == BY_ITEM
