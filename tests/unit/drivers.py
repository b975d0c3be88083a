"""Drivers that run the real core steps over plain inputs, keeping their state as the shells do."""
from __future__ import annotations

from operators import catalog
from operators.content import tfidf_vector
from operators.steps import emitted
from state_schemas.events import CatalogItem
from state_schemas.hops import ListedItem, TermChange
from state_schemas.state import CatalogTerms

T0 = 1_700_000_000_000


class Vocabulary:
    """The catalogue-terms stage (one state per item) and the vocabulary stage (one document count and a
    frequency per term), fed term counts directly; each record's vector as the vocabulary stage emitted it."""

    def __init__(self) -> None:
        self.terms: dict[str, CatalogTerms] = {}
        self.documents = 0
        self.document_frequency: dict[str, int] = {}
        self.vectors: dict[str, tuple] = {}

    def observe(self, item_id: str, term_counts: dict[str, int], max_terms: int = 16) -> None:
        item = CatalogItem(item_id=item_id, title="t", category_id="c", price=1.0, ts=T0)
        counted = catalog.count_terms(self.terms.get(item_id, CatalogTerms()), item, term_counts)
        self.terms[item_id] = CatalogTerms.decode(counted.state.encode())
        [change] = emitted(counted, TermChange)
        view = catalog.VocabularyView(self.documents, self.document_frequency.get)
        weighed = catalog.weigh(view, TermChange.decode(change.encode()), max_terms)
        self.documents = weighed.state.documents
        for term, frequency in weighed.state.frequencies.items():
            if frequency:
                self.document_frequency[term] = frequency
            else:
                del self.document_frequency[term]
        [listed] = emitted(weighed, ListedItem)
        self.vectors[item_id] = listed.vector

    def vector(self, term_counts: dict[str, int], max_terms: int) -> tuple:
        """A vector by the frequencies as they are now."""
        return tfidf_vector(term_counts, self.document_frequency, self.documents, max_terms)
