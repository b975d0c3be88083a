"""Hostile records never crash the intake and never disappear: each is dead-lettered with a reason and its
bytes, and valid events mixed with them decide exactly as without them (the job's core, Flink-free)."""
from __future__ import annotations

import base64
import hashlib
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import load_config
from notify_engine import generator
from notify_engine.hostile import KINDS, hostile_records
from operators import intake
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from state_schemas.events import encode

CONFIG = load_config()
NOW = 1_800_000_000_000


def _kept_bytes(letter: dict) -> bytes:
    return letter["raw"].encode() if "raw" in letter else base64.b64decode(letter["raw_base64"])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 32))
def test_every_hostile_record_is_rejected_with_a_reason(seed):
    for kind, payload in hostile_records(90, seed, NOW, CONFIG.intake):
        with pytest.raises(intake.Rejected) as rejection:
            intake.admit(payload, NOW, CONFIG.intake)
        assert rejection.value.reason, kind


def test_the_kinds_are_rejected_for_their_own_reasons():
    reasons = {kind: set() for kind in KINDS}
    for kind, payload in hostile_records(900, 3, NOW, CONFIG.intake):
        with pytest.raises(intake.Rejected) as rejection:
            intake.admit(payload, NOW, CONFIG.intake)
        reasons[kind].add(rejection.value.reason.split(":")[0])
    assert reasons["oversized"] == reasons["deep_nested"] == {"oversized payload"}
    assert reasons["absurd_time"] == {"absurd timestamp"}
    assert {"malformed JSON in event"} == reasons["nested"] == reasons["not_utf8"]
    assert reasons["control_characters"] == {"behaviour event"}


def test_mixed_into_a_replay_each_is_dead_lettered_byte_for_byte_and_the_decisions_do_not_change():
    shop = generator.GeneratorConfig(users=120, items=200, events=2_500, seed=11, start_ms=NOW - 3 * 86_400_000)
    valid = [encode(event) for event in generator.generate_events(shop)]
    hostile = [payload for _, payload in hostile_records(1_000, 5, NOW, CONFIG.intake)]
    mixed = list(valid)
    rng = random.Random(1)
    for payload in hostile:  # anywhere in the stream, the valid events keeping their order
        mixed.insert(rng.randrange(len(mixed) + 1), payload)

    def replay(records):
        pipeline, out = LocalPipeline(CONFIG, DictStore()), Outputs()
        for item in generator.generate_catalog(shop):
            pipeline.process_catalog(encode(item), NOW, out)
        for raw in records:
            pipeline.process(raw, NOW, out)
        pipeline.finish(NOW, out)
        return out

    clean, dirty = replay(valid), replay(mixed)
    assert clean.notifications and dirty.notifications == clean.notifications
    assert dirty.serving == clean.serving and not clean.dead_letters
    letters = [letter.to_dict() for letter in dirty.dead_letters]
    assert Counter(letter["sha256"] for letter in letters) == Counter(hashlib.sha256(p).hexdigest() for p in hostile)
    by_hash = {hashlib.sha256(p).hexdigest(): p for p in hostile}
    for letter in letters:
        payload = by_hash[letter["sha256"]]
        assert letter["reason"] and letter["size"] == len(payload)
        assert not letter["truncated"] and _kept_bytes(letter) == payload  # all under the 64 KiB kept whole
