"""The learned blend (operators.blend): candidates with every signal, ordered by a model their outcomes train."""
from config import load_config
from operators import blend
from state_schemas.state import FtrlModel, ItemCard, PushState, UserSummary
from tests.unit.fakes import FakeSide
from tests.unit.operators.test_scorer import T0, TRIGGER, ids, signal

CONFIG = load_config(overrides={"scoring": {"weight_cf": 0.0, "weight_recency": 0.0}})


def scene():
    side = FakeSide(cards={item: ItemCard(category_id=f"c-{item}") for item in ("seen", "peer", TRIGGER)})
    sig = signal(neighbours=[("peer", "c-peer", 0.5)], summary=UserSummary(recent=("seen", TRIGGER)))
    return sig, PushState(), side


def test_candidates_carry_every_signal_whatever_the_hand_set_weights():
    sig, state, side = scene()
    entries = blend.candidates(sig, state, side, T0, CONFIG, with_trigger=False)
    # Both would score 0 with these hand-set weights (cf and recency off): the learned blend still sees them.
    assert sorted(ids(entries)) == ["peer", "seen"]
    by_id = {e.item_id: e for e in entries}
    assert by_id["peer"].signals[0] == 1.0 and by_id["seen"].signals[5] == 0.5  # cf; recency of the 2nd newest
    assert TRIGGER in ids(blend.candidates(sig, state, side, T0, CONFIG, with_trigger=True))


def test_outcomes_teach_it_which_signal_predicts_the_choice():
    sig, state, side = scene()
    entries = blend.candidates(sig, state, side, T0, CONFIG, with_trigger=False)
    model = FtrlModel()
    for _ in range(200):  # the shopper keeps coming back to what they saw, never to the CF peer
        model = blend.learn(model, entries, "seen", CONFIG.blend)
    assert ids(blend.rescore(entries, model, CONFIG.blend, 0.0)) == ["seen", "peer"]
    for _ in range(600):  # now the opposite
        model = blend.learn(model, entries, "peer", CONFIG.blend)
    ranked = blend.rescore(entries, model, CONFIG.blend, 0.0)
    assert ids(ranked) == ["peer", "seen"] and 0.0 < ranked[1].score < ranked[0].score < 1.0


def test_an_outcome_outside_the_candidates_trains_only_the_top_ones_as_not_chosen():
    sig, state, side = scene()
    entries = blend.candidates(sig, state, side, T0, CONFIG, with_trigger=False)
    one = load_config(overrides={"blend": {"negatives": 1}}).blend
    assert blend.learn(FtrlModel(), entries, "elsewhere", one).examples == 1
    assert blend.learn(FtrlModel(), entries, "seen", one).examples == 2  # the positive and one negative
