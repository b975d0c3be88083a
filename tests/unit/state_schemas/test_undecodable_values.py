"""A value that is not UTF-8 reaches the dead letters byte for byte: the Kafka source hands it on as a
marker with the value in base64 (TextOrMarkerDeserializationSchema.java), `source_bytes` restores it."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import load_config
from operators import intake
from state_schemas.codec import UNDECODABLE, source_bytes
from state_schemas.outputs import DeadLetter

CONFIG = load_config()
NOW = 1_700_000_000_000


def marker(value: bytes) -> str:
    """What the Java deserialiser hands on for a value its strict UTF-8 decoder refuses."""
    return "\x00undecodable\x00" + base64.b64encode(value).decode()


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(st.binary(max_size=300).filter(lambda value: not _is_utf8(value)))
def test_any_value_that_is_not_utf8_comes_back_byte_for_byte(value):
    assert source_bytes(marker(value)) == value


@given(st.text(max_size=300))
def test_text_is_its_utf8(text):
    assert source_bytes(text) == text.encode("utf-8")


def test_text_that_only_begins_like_the_marker_is_left_to_the_schema():
    assert UNDECODABLE == "\x00undecodable\x00"
    assert source_bytes(UNDECODABLE + "not base64!") == (UNDECODABLE + "not base64!").encode()


def test_the_dead_letter_keeps_the_exact_bytes_and_says_why():
    value = b'{"type":"behaviour","event_id":"x9","user_id":"caf\xe9","behavior":"view","item_id":"i","ts":1}'
    raw = source_bytes(marker(value))
    with pytest.raises(intake.Rejected) as rejection:
        intake.admit(raw, NOW, CONFIG.intake)
    assert "Invalid UTF-8" in rejection.value.reason
    letter = DeadLetter(reason=rejection.value.reason, stage="admit", raw=raw, rejected_at=NOW).to_dict()
    assert "raw" not in letter and base64.b64decode(letter["raw_base64"]) == value
    assert letter["size"] == len(value)
