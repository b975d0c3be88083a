"""The catalogue path: each item one document in the vocabulary however often it is re-published, and
its vector weighed by the frequencies its own record has just updated."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.content import tfidf_vector
from tests.unit.drivers import Vocabulary

PROPERTY = settings(max_examples=150, deadline=None)
terms = st.text("abcdefgh", min_size=1, max_size=3)


def test_a_republished_item_with_the_same_terms_counts_once():
    vocabulary = Vocabulary()
    vocabulary.observe("i-1", {"red": 2, "cat:c-1": 1})
    vocabulary.observe("i-1", {"red": 1, "cat:c-1": 1})  # new counts, same terms
    vocabulary.observe("i-2", {"red": 1})
    assert vocabulary.documents == 2
    assert vocabulary.document_frequency == {"red": 2, "cat:c-1": 1}


def test_a_republished_item_with_new_terms_moves_its_counts():
    vocabulary = Vocabulary()
    vocabulary.observe("i-1", {"red": 1, "price:p1": 1})
    vocabulary.observe("i-2", {"red": 1})
    vocabulary.observe("i-1", {"blue": 1, "price:p2": 1})
    assert vocabulary.documents == 2
    assert vocabulary.document_frequency == {"red": 1, "blue": 1, "price:p2": 1}


@PROPERTY
@given(updates=st.lists(st.tuples(st.sampled_from(["i-1", "i-2", "i-3", "i-4"]),
                                  st.dictionaries(terms, st.integers(0, 3), max_size=6)), max_size=30))
def test_vocabulary_counts_each_item_once_by_its_latest_terms(updates):
    vocabulary = Vocabulary()
    latest = {}
    for item_id, term_counts in updates:
        vocabulary.observe(item_id, term_counts)
        latest[item_id] = {t for t, c in term_counts.items() if c > 0}
    assert vocabulary.documents == len(latest)
    assert vocabulary.document_frequency == dict(Counter(t for ts in latest.values() for t in ts))


def test_a_record_is_weighed_by_the_frequencies_including_its_own_terms():
    vocabulary = Vocabulary()
    vocabulary.observe("i-1", {"red": 1, "shoes": 1})
    vocabulary.observe("i-2", {"red": 1, "hat": 1})
    # two documents, "red" in both, "hat" in one: the second record's vector counts itself
    assert dict(vocabulary.vectors["i-2"]) == pytest.approx(dict(tfidf_vector(
        {"red": 1, "hat": 1}, {"red": 2, "hat": 1}, 2, 16)), rel=1e-12)
    vocabulary.observe("i-1", {"red": 1, "shoes": 1})  # re-published unchanged: still two documents
    assert vocabulary.documents == 2 and vocabulary.document_frequency == {"red": 2, "shoes": 1, "hat": 1}
