"""The job's keyed stages, once: what each decodes, which state record it keeps, which step decides.

The Flink job (`jobs/notification_job.py`) wires these stages with keyed edges; the Flink-free
`LocalPipeline` routes the same messages to the same steps. A message goes to the stage named
by its `DESTINATION`, keyed by its `routing_key` (see `state_schemas/hops.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from msgspec.structs import replace

from state_schemas.events import CatalogItem, InputEvent
from state_schemas.hops import (CATALOG_TERMS, INTENT, ITEM_MODEL, PUSH_POLICY, SEGMENTER, TO_ITEM_MODEL,
                                TO_PUSH_POLICY, USER_CONTEXT, VOCABULARY, IntentExample, SegmentUpdate, TermChange)
from state_schemas.segments import SegmentModel
from state_schemas.state import CatalogTerms, IntentModel, ItemModel, PushState, UserContext, UserDirectory

from . import catalog, intent, item_model, push_policy, segments, user_context

# The edges into keyed stages, by what their messages' routing keys name.
BY_USER, BY_ITEM, ONE_INSTANCE = "user", "item", "one instance"


DELETE_PART = "delete"  # what `DurablePart.split` returns when the stored part must be deleted


@dataclass(frozen=True, slots=True)
class DurablePart:
    """A field of a stage's state kept in keyed state of its own that never expires: consent and
    opt-outs must outlive any idleness, while the rest of the state may expire."""

    field: str
    record: type
    state_name: str

    def join(self, state, raw: str | None):
        """The stage's state with its durable part; (state, the part as stored, None if none was)."""
        if raw is None:  # nothing stored apart yet: the state's own field holds it (empty, or from an older release)
            return state, None
        stored = self.record.decode(raw)
        return replace(state, **{self.field: stored}), stored

    def split(self, state, stored):
        """(the state without its durable part, the part if it must be written, DELETE_PART if the stored
        one must go (the part is empty again: an erasure), else None)."""
        part = getattr(state, self.field)
        stripped = replace(state, **{self.field: self.record()})
        if part == self.record():
            return stripped, DELETE_PART if stored is not None else None
        return stripped, part if part is not stored else None


@dataclass(frozen=True, slots=True)
class Stage:
    name: str  # the destination hop messages name, and the Flink operator's uid
    accepts: object  # the record class, or tagged union of them, it decodes
    state: type | None  # its keyed state record (None: the vocabulary, kept term by term)
    state_name: str  # the Flink state's name: savepoints find state by it
    step: Callable  # (state, message, StepContext) -> Step
    on_timer: Callable | None = None  # (state, key, timestamp, StepContext) -> Step
    expires: bool = True  # idle state expires (flink.state_ttl_hours); not for state that must outlive idleness
    keyed_by: str = BY_USER  # BY_USER, BY_ITEM, or ONE_INSTANCE (a small global model on one instance)
    durable: DurablePart | None = None


STAGES = {stage.name: stage for stage in (
    Stage(USER_CONTEXT, InputEvent, UserContext, "user-context", user_context.step, user_context.on_timer),
    # An item's catalogue terms outlive idleness: a re-published item must not count as a new document.
    Stage(CATALOG_TERMS, CatalogItem, CatalogTerms, "catalog-terms", catalog.terms_step, expires=False,
          keyed_by=BY_ITEM),
    Stage(VOCABULARY, TermChange, None, "term-document-frequency", catalog.vocabulary_step, expires=False,
          keyed_by=ONE_INSTANCE),
    Stage(ITEM_MODEL, TO_ITEM_MODEL, ItemModel, "item-model", item_model.step, item_model.on_timer, keyed_by=BY_ITEM),
    Stage(INTENT, IntentExample, IntentModel, "intent-model", intent.learn_and_score, expires=False,
          keyed_by=ONE_INSTANCE),
    Stage(SEGMENTER, SegmentUpdate, SegmentModel, "segment-model", segments.step, expires=False,
          keyed_by=ONE_INSTANCE),
    # The shopper's directory entry (consent, opt-out, zone) never expires; the rest of the push state may.
    Stage(PUSH_POLICY, TO_PUSH_POLICY, PushState, "push-state", push_policy.step, push_policy.on_timer,
          durable=DurablePart("directory", UserDirectory, "user-directory")),
)}
