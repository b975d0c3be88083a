"""The replay on a log built so that the right answers are known in advance."""
from evaluation.prequential import evaluate
from jobs.config import JobConfig
from state_schemas.events import BehaviourEvent

T0 = 1_700_000_000_000
MINUTE = 60_000


def _event(n, user, item, behavior="view"):
    return BehaviourEvent(event_id=f"e{n}", user_id=user, behavior=behavior, ts=T0 + n * MINUTE, item_id=item,
                          category_id="c")


def test_hybrid_recalls_the_co_viewed_item_and_popularity_the_popular_one():
    log = []
    for u in range(5):  # five shoppers view B, then A: the row of A holds B
        log += [_event(len(log), f"w{u}", "B"), _event(len(log) + 1, f"w{u}", "A")]
    for u in range(30):  # C is by far the most popular item
        log.append(_event(len(log), f"p{u}", "C"))
    log += [_event(len(log), "target", "A"), _event(len(log) + 1, "target", "B", behavior="cart")]

    tallies, catalogue = evaluate(log, JobConfig(), k=1)

    assert catalogue == 3
    assert tallies["hybrid"].targets == 1
    assert tallies["hybrid"].hit_rate == 1.0  # top-1 after viewing A: B, its co-viewed item
    assert tallies["popularity"].hit_rate == 0.0  # top-1 by popularity: C
    assert tallies["popularity"].recommended == {"C"}
