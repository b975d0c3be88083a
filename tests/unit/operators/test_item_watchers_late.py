"""Who a price drop or restock tells does not hang on whether the catalogue record or the shopper's look
was read first (a bounded replay reads the small catalogue topic long before the events)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from operators import item_model
from operators.steps import emitted
from state_schemas.events import BehaviourEvent
from state_schemas.hops import ItemUpdate, WatchedItemChange
from state_schemas.state import ItemModel
from tests.unit.operators.test_item_model import CONFIG, DAY, T0, StepContextFor, listing, told

WATCH_MS = CONFIG.journeys.watch_ms
HOUR = 3_600_000


def look(state, user, behavior, ts):
    """One shopper's event on the item: (state, the changes it was told of)."""
    event = BehaviourEvent(event_id=f"{user}-{behavior}-{ts}", user_id=user, behavior=behavior, ts=ts,
                           item_id="target", category_id="c1")
    done = item_model.step(state, ItemUpdate(event=event, history=(), trigger=False), StepContextFor(CONFIG))
    return done.state, [(m.user_id, m.change, m.ts, m.was_price) for m in emitted(done, WatchedItemChange)]


def test_a_look_read_after_the_price_cut_it_preceded_is_told_once():
    state, _ = told(ItemModel(), listing(100.0, 5, T0))
    state, nobody = told(state, listing(80.0, 5, T0 + HOUR))
    assert nobody == []  # no watcher yet: the look is still on its way
    state, late = look(state, "early", "view", T0 + 10)
    assert late == [("early", "price_drop", T0 + HOUR, 100.0)]
    state, again = look(state, "early", "cart", T0 + 20)  # already a watcher: not told twice
    assert again == []
    _, after = look(state, "after", "view", T0 + 2 * HOUR)  # looked at the new price
    assert after == []


def test_a_late_look_is_told_of_a_restock_only_if_it_carted_or_favourited():
    state, _ = told(ItemModel(), listing(10.0, 0, T0))
    state, _ = told(state, listing(10.0, 4, T0 + HOUR))
    state, viewer = look(state, "viewer", "view", T0 + 1)
    _, fan = look(state, "fan", "favourite", T0 + 2)
    assert viewer == [] and fan == [("fan", "back_in_stock", T0 + HOUR, None)]


def test_a_viewer_read_after_a_restock_is_told_once_their_favourite_is_read():
    state, _ = told(ItemModel(), listing(10.0, 0, T0))
    state, _ = told(state, listing(10.0, 4, T0 + HOUR))
    state, viewed = look(state, "fan", "view", T0 + 1)
    state, favourited = look(state, "fan", "favourite", T0 + 2)
    _, again = look(state, "fan", "cart", T0 + 3)
    assert viewed == [] and favourited == [("fan", "back_in_stock", T0 + HOUR, None)] and again == []


def test_a_watcher_who_looked_after_the_cut_is_not_told_and_old_changes_lapse():
    state, _ = told(ItemModel(), listing(100.0, 5, T0))
    state, _ = look(state, "before", "view", T0 + 1)
    state, _ = look(state, "since", "view", T0 + 2 * HOUR)  # read before the record of an hour earlier
    state, cut = told(state, listing(50.0, 5, T0 + HOUR))
    assert [user for user, _, _ in cut] == ["before"]
    _, stale = look(state, "old", "view", T0 + HOUR - WATCH_MS)  # the cut came after its watch lapsed
    assert stale == []
    later, _ = told(state, listing(20.0, 5, T0 + HOUR + WATCH_MS))
    assert [c.ts for c in later.changes] == [T0 + HOUR + WATCH_MS]  # the first cut is older than watch_ms



@settings(max_examples=150, deadline=None)
@given(looks=st.lists(st.tuples(st.sampled_from(["view", "cart", "favourite"]),
                                st.integers(min_value=-3 * DAY, max_value=3 * DAY)), min_size=1, max_size=12),
       restock=st.booleans(), record_at=st.integers(min_value=0, max_value=12))
def test_whoever_is_read_first_the_same_shoppers_are_told(looks, restock, record_at):
    """Each shopper looks once; the cut or restock lands at T0. Whatever place the record takes among the
    looks when read, exactly those who looked before it (within watch_ms) are told, each once."""
    before, change = (listing(10.0, 0, T0 - 5 * DAY), listing(10.0, 3, T0)) if restock else \
        (listing(100.0, 5, T0 - 5 * DAY), listing(50.0, 5, T0))
    state, _ = told(ItemModel(), before)
    shoppers = [(f"u{n}", behavior, T0 + offset) for n, (behavior, offset) in enumerate(looks)]
    told_now = []
    for position in range(len(shoppers) + 1):
        if position == min(record_at, len(shoppers)):
            state, cut = told(state, change)
            told_now += [user for user, _, _ in cut]
        if position < len(shoppers):
            state, late = look(state, *shoppers[position])
            told_now += [user for user, _, _, _ in late]
    expected = [user for user, behavior, ts in shoppers
                if ts <= T0 and (not restock or behavior in ("cart", "favourite"))]
    assert sorted(told_now) == sorted(expected)
