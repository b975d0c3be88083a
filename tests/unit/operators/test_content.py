"""Content signal: term extraction, TF-IDF item vectors, cosine, the decayed user vector, the replay vocabulary."""
from __future__ import annotations

import math
import unicodedata
from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from operators.content import (PRICE_BAND_BOUNDS, STOPWORDS, add_vector, cosine, event_terms,
                               item_terms, price_band, tfidf_vector, title_words)
from state_schemas.events import CatalogItem
from state_schemas.state import DecayedScores
from tests.unit.drivers import Vocabulary

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
STRUCTURED = ("tag:", "brand:", "cat:", "price:")

PROPERTY = settings(max_examples=150, deadline=None)


def printable(**sizes):
    """Ids and names as the intake admits them: any text without control characters."""
    return st.text(st.characters(exclude_categories=("Cc", "Cs")), **sizes)


prices = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
terms = st.text("abcdefgh", min_size=1, max_size=3)
counts = st.dictionaries(terms, st.integers(1, 20), min_size=1, max_size=12)
non_negative_vectors = st.dictionaries(terms, st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False),
                                       max_size=12)
half_lives = st.integers(min_value=60_000, max_value=200 * HOUR_MS)
catalog_items = st.builds(
    CatalogItem, item_id=printable(min_size=1, max_size=10), title=st.text(min_size=1, max_size=120),
    category_id=printable(min_size=1, max_size=10), price=prices, ts=st.just(T0),
    brand=st.none() | printable(min_size=1, max_size=20), tags=st.lists(st.text(min_size=1, max_size=10),
                                                                       max_size=6).map(tuple))


def item(title="Plain item", category_id="c-1", price=5.0, brand=None, tags=()) -> CatalogItem:
    return CatalogItem(item_id="i-1", title=title, category_id=category_id, price=price, ts=T0, brand=brand,
                       tags=tags)


def norm(vector) -> float:
    return math.sqrt(sum(w * w for _, w in vector))


# --- price bands -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("price, band", [
    (0.0, "p0"), (9.99, "p0"), (10.0, "p1"), (24.99, "p1"), (25.0, "p2"), (49.99, "p2"), (50.0, "p3"),
    (99.99, "p3"), (100.0, "p4"), (249.99, "p4"), (250.0, "p5"), (499.99, "p5"), (500.0, "p6"),
    (999.99, "p6"), (1000.0, "p7"), (1e6, "p7"),
])
def test_price_bands_follow_the_documented_bounds(price, band):
    assert price_band(price) == band


def test_no_price_has_no_band():
    assert price_band(None) is None
    assert price_band(float("nan")) is None


@PROPERTY
@given(low=prices, high=prices)
def test_price_bands_never_go_down_as_price_goes_up(low, high):
    low, high = sorted((low, high))
    assert int(price_band(low)[1:]) <= int(price_band(high)[1:])
    assert int(price_band(high)[1:]) == sum(1 for bound in PRICE_BAND_BOUNDS if high >= bound)


# --- terms -------------------------------------------------------------------------------------------------

def test_item_terms_from_title_tags_brand_category_and_price():
    phone = item(title="The Samsung Galaxy S21 phone, 128GB and 2 cameras - 2021 5G", category_id="c-7",
                 price=799.0, brand="Samsung", tags=("Android", "android", "5G"))
    assert item_terms(phone) == {
        "samsung": 1, "galaxy": 1, "s21": 1, "phone": 1, "128gb": 1, "cameras": 1, "5g": 1,
        "tag:android": 1, "tag:5g": 1, "brand:samsung": 1, "cat:c-7": 1, "price:p6": 1,
    }


def test_title_words_are_counted_and_unicode_words_kept():
    assert item_terms(item(title="Red red SHOES for running", price=30.0)) == {
        "red": 2, "shoes": 1, "running": 1, "cat:c-1": 1, "price:p2": 1}
    # "à" is one letter; Arabic-Indic "٢٠٢٤" is digits only.
    assert title_words("Café crème à la maison ٢٠٢٤") == ["café", "crème", "la", "maison"]


@PROPERTY
@given(title=st.text(max_size=200))
def test_title_words_are_lowercase_words_that_cannot_collide_with_structured_terms(title):
    for word in title_words(title):
        assert ":" not in word and not word.startswith(STRUCTURED)
        assert (len(word) >= 2 or _is_cjk(word)) and not word.isdigit() and word not in STOPWORDS
        assert word == word.lower() and word in title.lower()


def _is_cjk(character: str) -> bool:
    # Planes 2 and 3 hold Han ideographs only; some are newer than this Python's Unicode names. A code point
    # not yet assigned has no name: inside the kana, Han and Hangul syllable blocks it is read as theirs.
    blocks = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xAC00, 0xD7AF))
    unassigned_in_block = unicodedata.category(character) == "Cn" and any(
        low <= ord(character) <= high for low, high in blocks)
    return unicodedata.name(character, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")) or \
        0x20000 <= ord(character) <= 0x2FFFF or unassigned_in_block


def test_chinese_titles_become_character_bigrams_so_titles_sharing_a_word_share_terms():
    assert title_words("无线蓝牙耳机") == ["无线", "线蓝", "蓝牙", "牙耳", "耳机"]
    assert title_words("Apple 蓝牙耳机 Pro Max") == ["apple", "蓝牙", "牙耳", "耳机", "pro", "max"]
    assert title_words("男 运动鞋，2024新款") == ["男", "运动", "动鞋", "新款"]  # a lone character is a term
    assert title_words("ワイヤレス") == ["ワイ", "イヤ", "ヤレ", "レス"]
    one, other = set(title_words("小米无线蓝牙耳机")), set(title_words("华为蓝牙耳机降噪"))
    assert {"蓝牙", "牙耳", "耳机"} <= one & other  # one whole-title token each before: nothing shared


def test_event_terms_name_only_what_the_event_carries():
    assert event_terms("2053013555631882655", "samsung", 129.99) == {
        "cat:2053013555631882655": 1, "brand:samsung": 1, "price:p4": 1}
    assert event_terms("c-1", None, None) == {"cat:c-1": 1}
    assert event_terms(None, None, None) == {}


def test_an_event_brand_meets_the_catalogue_brand_despite_case_and_spacing():
    assert event_terms(None, "apple", None) == event_terms(None, "  Apple ", None) == {"brand:apple": 1}
    assert event_terms(None, "Hewlett  Packard", None) == {"brand:hewlett packard": 1}


@PROPERTY
@given(catalog_item=catalog_items)
def test_item_terms_spell_structured_terms_exactly_as_event_terms_do(catalog_item):
    terms = item_terms(catalog_item)
    structured = {t: c for t, c in terms.items() if t.startswith(("brand:", "cat:", "price:"))}
    assert structured == event_terms(catalog_item.category_id, catalog_item.brand, catalog_item.price)
    words = Counter(title_words(catalog_item.title))
    assert {t: c for t, c in terms.items() if not t.startswith(STRUCTURED)} == dict(words)
    assert all(c == 1 for t, c in terms.items() if t.startswith("tag:"))


# --- TF-IDF ------------------------------------------------------------------------------------------------

CORPUS = {
    "shoe": {"red": 2, "shoes": 1, "cat:shoes": 1, "price:p2": 1},
    "boot": {"black": 1, "boots": 1, "cat:shoes": 1, "price:p3": 1},
    "shirt": {"red": 1, "shirt": 1, "cat:tops": 1, "price:p2": 1},
    "hat": {"black": 1, "hat": 2, "cat:tops": 1, "price:p0": 1},
}


def reference_tfidf(doc: dict[str, int], corpus: dict[str, dict[str, int]]) -> dict[str, float]:
    """TF-IDF written out longhand, normalised, every term kept."""
    n = len(corpus)
    total = sum(doc.values())
    raw = {}
    for term, count in doc.items():
        df = sum(1 for other in corpus.values() if term in other)
        raw[term] = (count / total) * (math.log((1 + n) / (1 + df)) + 1)
    length = math.sqrt(sum(v * v for v in raw.values()))
    return {term: v / length for term, v in raw.items()}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_tfidf_matches_the_textbook_formula_over_a_small_corpus(name):
    vocabulary = Vocabulary()
    for item_id, doc in CORPUS.items():
        vocabulary.observe(item_id, doc)
    vector = vocabulary.vector(CORPUS[name], max_terms=100)
    assert dict(vector) == pytest.approx(reference_tfidf(CORPUS[name], CORPUS), rel=1e-12)


def test_tfidf_keeps_the_strongest_terms_and_renormalises():
    df = {"red": 2, "shoes": 1, "cat:shoes": 2, "price:p2": 2}
    vector = tfidf_vector(CORPUS["shoe"], df, 4, max_terms=2)
    # "red" (tf 2/5, idf ln(5/3)+1) and "shoes" (tf 1/5, idf ln(5/2)+1) beat the df-2 singletons.
    red, shoes = 2 / 5 * (math.log(5 / 3) + 1), 1 / 5 * (math.log(5 / 2) + 1)
    length = math.hypot(red, shoes)
    assert [t for t, _ in vector] == ["red", "shoes"]
    assert dict(vector) == pytest.approx({"red": red / length, "shoes": shoes / length}, rel=1e-12)


def test_tfidf_breaks_ties_by_term():
    vector = tfidf_vector({"b": 1, "c": 1, "a": 1}, {}, 10, max_terms=2)
    assert vector == (("a", pytest.approx(1 / math.sqrt(2))), ("b", pytest.approx(1 / math.sqrt(2))))


def test_tfidf_of_nothing_is_empty():
    assert tfidf_vector({}, {}, 10, 5) == ()
    assert tfidf_vector({"a": 0}, {}, 10, 5) == ()


def test_tfidf_accepts_a_lookup_function_and_treats_an_unknown_term_as_unseen():
    df = {"a": 3, "b": 1}
    doc = {"a": 1, "b": 2, "z": 1}
    assert tfidf_vector(doc, df.get, 5, 3) == tfidf_vector(doc, df, 5, 3) == tfidf_vector(doc, {**df, "z": 0}, 5, 3)


def test_a_document_frequency_above_the_document_count_still_gives_a_positive_weight():
    assert dict(tfidf_vector({"a": 1, "b": 1}, {"a": 50}, 3, 2)) == pytest.approx(
        dict(tfidf_vector({"a": 1, "b": 1}, {"a": 3}, 3, 2)))


@PROPERTY
@given(term_counts=counts, df=st.dictionaries(terms, st.integers(0, 50)), documents=st.integers(0, 50),
       max_terms=st.integers(1, 15))
def test_tfidf_vectors_are_unit_length_ranked_and_at_most_max_terms(term_counts, df, documents, max_terms):
    vector = tfidf_vector(term_counts, df, documents, max_terms)
    assert len(vector) == min(max_terms, len(term_counts))
    assert norm(vector) == pytest.approx(1.0, rel=1e-12)
    assert all(w > 0 for _, w in vector)
    assert list(vector) == sorted(vector, key=lambda tw: (-tw[1], tw[0]))
    assert {t for t, _ in vector} <= set(term_counts)


@PROPERTY
@given(documents=st.integers(1, 10_000), data=st.data())
def test_a_rarer_term_outweighs_a_commoner_one_of_the_same_count(documents, data):
    rare = data.draw(st.integers(0, documents - 1))
    common = data.draw(st.integers(rare + 1, documents))
    weights = dict(tfidf_vector({"rare": 1, "common": 1}, {"rare": rare, "common": common}, documents, 2))
    assert weights["rare"] > weights["common"]


# --- cosine ------------------------------------------------------------------------------------------------

def test_cosine_by_hand():
    assert cosine({"x": 3.0, "y": 4.0}, {"x": 1.0}) == pytest.approx(3 / 5)
    assert cosine({"x": 1.0}, {"y": 1.0}) == 0.0
    assert cosine((("x", 3.0), ("y", 4.0)), {"x": 2.0, "z": 0.0}) == pytest.approx(3 / 5)


def test_cosine_with_an_empty_or_zero_vector_is_zero():
    assert cosine({}, {"x": 1.0}) == cosine({"x": 1.0}, ()) == cosine({}, {}) == 0.0
    assert cosine({"x": 0.0}, {"x": 1.0}) == 0.0


@PROPERTY
@given(a=non_negative_vectors, b=non_negative_vectors, scale=st.floats(0.1, 100.0))
def test_cosine_of_non_negative_vectors_is_in_unit_range_symmetric_and_scale_free(a, b, scale):
    value = cosine(a, b)
    assert 0.0 <= value <= 1.0
    assert value == cosine(b, a)
    assert cosine(tuple(a.items()), tuple(b.items())) == pytest.approx(value)
    assert cosine({t: w * scale for t, w in a.items()}, b) == pytest.approx(value, abs=1e-12)


@PROPERTY
@given(a=non_negative_vectors)
def test_cosine_of_a_vector_with_itself_is_one(a):
    assume(sum(w * w for w in a.values()) > 1e-100)
    assert cosine(a, a) == pytest.approx(1.0, rel=1e-12)


# --- the user's content vector -----------------------------------------------------------------------------

def test_add_vector_halves_the_old_vector_after_one_half_life_then_adds():
    user = DecayedScores(at=T0, scores={"a": 2.0, "b": 4.0})
    after = add_vector(user, (("b", 0.6), ("c", 0.8)), 2.0, T0 + HOUR_MS, HOUR_MS, 10)
    assert after.at == T0 + HOUR_MS
    assert after.scores == pytest.approx({"a": 1.0, "b": 2.0 + 1.2, "c": 1.6})


def test_a_late_item_adds_its_weight_decayed_and_keeps_the_time():
    user = DecayedScores(at=T0 + 2 * HOUR_MS, scores={"a": 2.0})
    after = add_vector(user, {"a": 1.0, "b": 0.5}, 4.0, T0, HOUR_MS, 10)
    assert after.at == T0 + 2 * HOUR_MS
    assert after.scores == pytest.approx({"a": 2.0 + 4.0 * 0.25, "b": 0.5 * 4.0 * 0.25})


def test_add_vector_keeps_the_strongest_terms_tie_broken_by_term():
    user = DecayedScores(at=T0, scores={"a": 5.0, "b": 1.0})
    after = add_vector(user, {"d": 1.0, "c": 1.0, "e": 3.0}, 1.0, T0, HOUR_MS, 3)
    assert after.scores == {"a": 5.0, "e": 3.0, "b": 1.0}  # b, c and d tie at 1.0


def test_add_vector_does_not_mutate_its_input():
    user = DecayedScores(at=T0, scores={"a": 1.0})
    add_vector(user, {"a": 1.0, "b": 1.0}, 1.0, T0 + HOUR_MS, HOUR_MS, 4)
    add_vector(user, {"a": 1.0, "b": 1.0}, 1.0, T0 - HOUR_MS, HOUR_MS, 4)
    assert user == DecayedScores(at=T0, scores={"a": 1.0})


@PROPERTY
@given(observations=st.lists(st.tuples(non_negative_vectors, st.floats(0.0, 10.0),
                                       st.integers(0, 30 * 24 * HOUR_MS)), min_size=1, max_size=15),
       order=st.randoms(use_true_random=False), half_life=half_lives)


def test_add_vector_matches_the_closed_form_in_any_order_and_time_never_moves_back(observations, order, half_life):
    shuffled = list(observations)
    order.shuffle(shuffled)
    end = T0 + max(offset for _, _, offset in observations)
    expected: dict[str, float] = {}
    for vector, weight, offset in observations:
        for term, value in vector.items():
            expected[term] = expected.get(term, 0.0) + weight * value * 0.5 ** ((end - T0 - offset) / half_life)
    for sequence in (observations, shuffled):
        user, latest = DecayedScores(at=T0), T0
        for vector, weight, offset in sequence:
            user = add_vector(user, vector, weight, T0 + offset, half_life, max_terms=1000)
            latest = max(latest, T0 + offset)
            assert user.at == latest
        assert set(user.scores) == set(expected)
        for term, value in user.scores.items():
            assert value == pytest.approx(expected[term], rel=1e-9, abs=1e-9)


@PROPERTY
@given(observations=st.lists(st.tuples(non_negative_vectors, st.integers(0, 10 * HOUR_MS)), max_size=20),
       max_terms=st.integers(1, 8))
def test_add_vector_never_keeps_more_than_max_terms(observations, max_terms):
    user = DecayedScores()
    for vector, offset in observations:
        user = add_vector(user, vector, 1.0, T0 + offset, HOUR_MS, max_terms)
        assert len(user.scores) <= max_terms
