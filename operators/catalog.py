"""The catalogue path: each record's terms, counted once per item in one global vocabulary, to a TF-IDF vector.

    catalog-terms (keyed by item): the item's term set from its last record -> what changed
    vocabulary (one instance): document frequencies (one term at a time) -> the record's vector

Each item is one document however often it is re-published: its terms move their counts from
the old term set to the new one. The per-item term sets live with the items (spread over the
instances); the single instance holds only the vocabulary, whose size is bounded by the terms,
not by the catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from state_schemas.events import CatalogItem
from state_schemas.hops import ListedItem, TermChange
from state_schemas.state import CatalogTerms

from .content import item_terms, tfidf_vector
from .steps import Step, StepContext


def observe_terms(state: CatalogTerms, item: CatalogItem) -> Step:
    """Catalogue-terms stage: what this record changes in the vocabulary."""
    return count_terms(state, item, item_terms(item))


def count_terms(state: CatalogTerms, item: CatalogItem, counts: dict[str, int]) -> Step:
    """The record's term counts, and how its term set differs from the item's last one."""
    terms = frozenset(term for term, count in counts.items() if count > 0)
    previous = frozenset(state.terms or ())
    change = TermChange(item=item, counts=counts, added=tuple(sorted(terms - previous)),
                        removed=tuple(sorted(previous - terms)), new_document=state.terms is None)
    return Step(state=CatalogTerms(terms=tuple(sorted(terms))), emit=(change,))


def terms_step(state: CatalogTerms, item: CatalogItem, context: StepContext) -> Step:
    return observe_terms(state, item)


@dataclass(frozen=True, slots=True)
class VocabularyView:
    """The vocabulary as the single instance holds it: the document count, and frequencies looked up
    one term at a time (a catalogue's vocabulary is too large to load whole for every record)."""

    documents: int
    frequency: Callable[[str], int | None]


@dataclass(frozen=True, slots=True)
class VocabularyChange:
    """The vocabulary stage's new state: the document count and the new frequency of each changed term
    (0: the term left the vocabulary)."""

    documents: int
    frequencies: dict[str, int]


def weigh(vocabulary: VocabularyView, change: TermChange, terms_per_item: int) -> Step:
    """Vocabulary stage: count the record's term changes, then weigh its terms by the new frequencies."""
    frequencies: dict[str, int] = {}
    for term in change.removed:
        frequencies[term] = max((vocabulary.frequency(term) or 0) - 1, 0)
    for term in change.added:
        frequencies[term] = (vocabulary.frequency(term) or 0) + 1
    documents = vocabulary.documents + (1 if change.new_document else 0)

    def frequency(term: str) -> int:
        known = frequencies.get(term)
        return known if known is not None else vocabulary.frequency(term) or 0

    vector = tfidf_vector(change.counts, frequency, documents, terms_per_item)
    return Step(state=VocabularyChange(documents, frequencies), emit=(ListedItem(item=change.item, vector=vector),))


def vocabulary_step(vocabulary: VocabularyView, change: TermChange, context: StepContext) -> Step:
    return weigh(vocabulary, change, context.config.catalog.terms_per_item)
