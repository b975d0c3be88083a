"""Experiments: assignment by a salted hash of the user id (uniform, stable, independent across salts), a holdout
that gets no marketing but whose would-be sends are exposures, variants that change how messages are decided."""
from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import yaml

from config import ConfigError, load_config, to_dict
from operators import experiments, push_policy
from operators.steps import END_OF_STREAM, StepContext
from state_schemas.hops import AccountEvent
from state_schemas.outputs import Exposure, Notification
from state_schemas.state import PushState
from tests.unit.operators.test_push_policy import CREATED, DISCOVERY, NO_QUIET_HOURS, NO_SIDE, T0, item_signal, order

USERS = [f"shopper-{n}" for n in range(20000)]
# Upper 0.1% points of the chi-square distribution (tables): a fair assignment exceeds them once in a thousand.
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27}
SUBJECT = {"salt": "subject-1", "traffic": 0.8,
           "variants": {"short": {"weight": 1}, "long": {"weight": 1}, "emoji": {"weight": 2}}}


def point(salt: str, user: str) -> float:
    """The scheme the README documents, written out again: the first 64 bits of SHA-256(salt NUL user id)."""
    return int.from_bytes(hashlib.sha256(f"{salt}\0{user}".encode()).digest()[:8], "big") / 2 ** 64


def chi2(observed: Counter, expected: dict) -> float:
    return sum((observed.get(key, 0) - want) ** 2 / want for key, want in expected.items())


def with_tests(holdout_share=0.0, **tests):
    return load_config(overrides={"experiments": {"holdout_share": holdout_share, "tests": tests},
                                  "scoring": DISCOVERY, "policy": {"quiet_hours": NO_QUIET_HOURS}})


def test_variants_are_drawn_in_proportion_to_their_weights_within_the_traffic():
    section = with_tests(subject=SUBJECT).experiments
    seen = Counter(experiments.variant_of(user, section.tests["subject"]) for user in USERS)
    n = len(USERS)
    expected = {None: 0.2 * n, "short": 0.2 * n, "long": 0.2 * n, "emoji": 0.4 * n}
    assert chi2(seen, expected) < CHI2_999[3], seen


def test_the_holdout_takes_its_share_and_is_independent_of_each_experiment():
    section = with_tests(holdout_share=0.05, subject=SUBJECT).experiments
    assigned = [experiments.assign(user, section) for user in USERS]
    held = sum(a.holdout for a in assigned)
    assert abs(held - 1000) < 4.5 * (len(USERS) * 0.05 * 0.95) ** 0.5
    # 2 x 2 contingency: in the holdout or not, in the experiment's traffic or not
    table = Counter((a.holdout, bool(a.variants)) for a in assigned)
    n, rows, cols = len(USERS), Counter(), Counter()
    for (h, v), count in table.items():
        rows[h] += count
        cols[v] += count
    expected = {(h, v): rows[h] * cols[v] / n for h in (True, False) for v in (True, False)}
    assert chi2(table, expected) < CHI2_999[1], table


def test_assignment_is_the_documented_hash_so_any_instance_restart_or_reader_finds_the_same():
    config = with_tests(holdout_share=0.05, subject=SUBJECT)
    reloaded = load_config(overrides=yaml.safe_load(yaml.safe_dump(to_dict(config))))
    for user in USERS[:2000]:
        mine = experiments.assign(user, config.experiments)
        assert mine == experiments.assign(user, reloaded.experiments)
        assert mine.holdout == (point("holdout-1", user) < 0.05)
        p = point("subject-1", user)
        want = None if p >= 0.8 else "emoji" if p < 0.4 else "long" if p < 0.6 else "short"  # in name order
        assert mine.variants == ((("subject", want),) if want else ())


def test_a_new_salt_draws_anew():
    again = dict(SUBJECT, salt="subject-2")
    section = with_tests(a=SUBJECT, b=again).experiments
    same = sum(experiments.variant_of(u, section.tests["a"]) == experiments.variant_of(u, section.tests["b"])
               for u in USERS)
    # Independent draws agree with probability 0.2^2 + 0.2^2 + 0.2^2 + 0.4^2 = 0.28
    assert abs(same / len(USERS) - 0.28) < 0.02


@pytest.mark.parametrize("tests, message", [
    ({"x": {"salt": "s", "variants": {"a": {}}}}, "experiments.tests.x.variants must name at least two variants"),
    ({"x": {"variants": {"a": {}, "b": {}}}}, "experiments.tests.x.salt must be a non-empty text"),
    ({"x": {"salt": "s", "traffic": 0, "variants": {"a": {}, "b": {}}}}, "experiments.tests.x.traffic must be in"),
    ({"x": {"salt": "s", "variants": {"a": {"weight": 0}, "b": {}}}}, "experiments.tests.x.variants.a.weight"),
    ({"x": {"salt": "s", "variants": {"a": {}, "b": {"overrides": {"kafka": {"bounded": True}}}}}},
     "experiments.tests.x.variants.b.overrides may not change kafka"),
    ({"x": {"salt": "s", "variants": {"a": {}, "b": {"overrides": {"policy": {"daily_marketing_cap": -1}}}}}},
     "experiments.tests.x.variants.b: invalid config: policy.daily_marketing_cap must be >= 0"),
    ({"x": {"salt": "s", "variants": {"a": {}, "b": {"overrides": {"policy": {"cap": 1}}}}}},
     "unknown config key(s) policy.cap"),
    ({"x": {"salt": "s", "variants": {"a": {}, "b": {"overrides": {"content": {"templates_file": "b.yaml"}}}}}},
     "experiments.tests.x.variants.b.overrides gives its copy inline"),
])
def test_bad_experiments_are_refused_with_what_is_wrong(tests, message):
    with pytest.raises(ConfigError) as caught:
        with_tests(**tests)
    assert message in str(caught.value)


def test_five_percent_are_held_out_unless_the_config_says_otherwise():
    assert load_config().experiments.holdout_share == 0.05


def test_the_holdout_share_is_bounded():
    with pytest.raises(ConfigError, match="experiments.holdout_share must be in"):
        with_tests(holdout_share=0.6)


def _user_where(condition) -> str:
    return next(user for user in USERS if condition(user))


def run(user: str, config, *messages):
    """Each message through the push policy's step, then every timer it set fired in turn: all it emitted,
    the final state and the counters."""
    state, emitted, counts = PushState(), [], []
    context = StepContext(CREATED, NO_SIDE, config)
    for message in messages:
        done = push_policy.step(state, message, context)
        state, timers = done.state, sorted(t for t in done.timers if t != END_OF_STREAM)
        emitted += done.emit
        counts += done.counts
        while timers:
            done = push_policy.on_timer(state, user, timers[0], context)
            state, timers = done.state, sorted({*timers[1:], *(t for t in done.timers if t != END_OF_STREAM)})
            emitted += done.emit
            counts += done.counts
    return emitted, state, counts


def test_a_holdout_shopper_gets_no_marketing_but_an_exposure_and_moves_on_as_if_it_was_sent():
    held = _user_where(lambda user: point("holdout-1", user) < 0.3)
    messages = (item_signal(user=held), AccountEvent(event=order(user=held, status="shipped", ts=T0 + 1)))
    sent, sent_state, _ = run(held, with_tests(holdout_share=0.0), *messages)
    logged, logged_state, counts = run(held, with_tests(holdout_share=0.3), *messages)
    marketing = [n for n in sent if isinstance(n, Notification) and n.kind == "marketing"]
    assert marketing, "without a holdout the shopper gets a recommendation"
    assert [n for n in logged if isinstance(n, Notification) and n.kind == "marketing"] == []
    assert [e.notification for e in logged if isinstance(e, Exposure)] == marketing
    assert {e.experiment for e in logged if isinstance(e, Exposure)} == {"holdout"}
    assert [n for n in logged if isinstance(n, Notification)] == [n for n in sent if n.kind == "transactional"]
    assert logged_state == sent_state
    assert counts.count("holdout_exposures") == len(marketing) and counts.count("sent_marketing") == 0


def test_a_variant_decides_by_its_own_settings_and_its_messages_name_it():
    silence = {"policy": {"daily_marketing_cap": 0, "weekly_marketing_cap": 0}}
    test = {"salt": "cap-1", "variants": {"control": {}, "silent": {"overrides": silence}}}
    config = with_tests(cap=test)
    control = _user_where(lambda user: point("cap-1", user) < 0.5)
    silent = _user_where(lambda user: point("cap-1", user) >= 0.5)
    told, _, _ = run(control, config, item_signal(user=control))
    quiet, _, counts = run(silent, config, item_signal(user=silent),
                           AccountEvent(event=order(user=silent, status="shipped", ts=T0 + 1)))
    assert [n.experiments for n in told if n.kind == "marketing"] == [(("cap", "control"),)]
    assert [n.kind for n in quiet] == ["transactional"] and quiet[0].experiments == (("cap", "silent"),)
    assert "suppressed_daily_cap" in counts or "suppressed_weekly_cap" in counts, counts


def test_a_variant_words_its_messages_with_its_own_copy():
    title = {"templates": {"recommendation_many": {"en": {"title": "Fresh picks"}},
                           "recommendation_one": {"en": {"title": "Fresh picks"}}}}
    test = {"salt": "copy-1", "variants": {"plain": {}, "fresh": {"overrides": {"content": {"templates": title}}}}}
    config = with_tests(copy=test)
    fresh = _user_where(lambda user: point("copy-1", user) < 0.5)  # variants take their shares in name order
    plain = _user_where(lambda user: point("copy-1", user) >= 0.5)
    [old], _, _ = run(plain, config, item_signal(user=plain))
    [new], _, _ = run(fresh, config, item_signal(user=fresh))
    assert (old.title, new.title) == ("Picked for you", "Fresh picks")
    assert new.body.endswith("picked for you.") and new.experiments == (("copy", "fresh"),)
