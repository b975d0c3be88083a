"""The job's dataflow without Flink: admit -> user context -> item model -> push policy.

It calls the same core functions and stores the same versioned state encodings as the Flink
shells, one event at a time, over any key-value store. Benchmarks use it as the Python
ceiling (a dict) and as the naive baseline (Redis round trips); tests compare it with the job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from state_schemas import codec
from state_schemas.events import decode_event
from state_schemas.outputs import DeadLetter, Notification
from state_schemas.state import CandidateSet, ItemModel, ItemUpdate, PushState, UserContext

from . import intake, item_model, push_policy, user_context

if TYPE_CHECKING:
    from jobs.config import JobConfig


class StateStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class DictStore(dict):
    def set(self, key: str, value: str) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


@dataclass
class Outputs:
    notifications: list[Notification] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class LocalPipeline:
    def __init__(self, config: "JobConfig", store: StateStore):
        self.config = config
        self.store = store

    def process(self, raw: bytes, now_ms: int, out: Outputs) -> None:
        try:
            event = intake.admit(raw, now_ms, self.config.intake)
        except intake.Rejected as rejection:
            out.dead_letters.append(DeadLetter(reason=rejection.reason, stage="admit", raw=raw, rejected_at=now_ms))
            return
        # Hops exchange encoded records, as they do across Flink's keyed shuffles.
        user_key = "u:" + event.user_id
        step = user_context.observe(UserContext.decode(self.store.get(user_key)),
                                    decode_event(codec.dumps_str(event.to_dict())),
                                    self.config.intake, self.config.profile)
        self._store(user_key, step.state)
        if step.to_item_hop is not None:
            self._item_hop(step.to_item_hop.encode(), now_ms, out)
        if step.to_push_hop is not None:
            self._push_hop(event.user_id, decode_event(codec.dumps_str(step.to_push_hop.to_dict())), now_ms, out)

    def _item_hop(self, payload: str, now_ms: int, out: Outputs) -> None:
        update = ItemUpdate.decode(payload)
        item_key = "i:" + update.event["item_id"]
        state, candidates = item_model.update_item(ItemModel.decode(self.store.get(item_key)), update,
                                                   self.config.item_model, self.config.profile)
        self.store.set(item_key, state.encode())
        if candidates is not None:
            self._push_hop(update.event["user_id"], CandidateSet.decode(candidates.encode()), now_ms, out)

    def _push_hop(self, user_id: str, message, now_ms: int, out: Outputs) -> None:
        push_key = "p:" + user_id
        step = push_policy.handle(PushState.decode(self.store.get(push_key)), message, user_id, now_ms,
                                  self.config.policy, self.config.privacy.pseudonym_key)
        self._store(push_key, step.state)
        if step.notification is not None:
            out.notifications.append(step.notification)

    def _store(self, key: str, state) -> None:
        if state is None:
            self.store.delete(key)
        else:
            self.store.set(key, state.encode())
