"""Item-keyed hop: decayed popularity and a capped co-occurrence row per item.

On (user, item i) with the user's recent items H, the row of i counts C[i][j] += 1 for j in H:
"people who interacted with i had just looked at j". One record per event reaches this hop
(no fan-out per pair), and work per event is bounded by |H| and the row cap.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from state_schemas.state import CandidateSet, ItemModel, ItemUpdate, Neighbour

from .decay import decayed_add

if TYPE_CHECKING:
    from jobs.config import ItemModelConfig, ProfileConfig

HOUR_MS = 3_600_000


def _trim(row: dict[str, list], cap: int) -> dict[str, list]:
    # Trim with slack so the sort runs once per many inserts, not on every event.
    if len(row) <= cap + cap // 4:
        return row
    return dict(sorted(row.items(), key=lambda kv: kv[1][0], reverse=True)[:cap])


def update_item(state: ItemModel, update: ItemUpdate, config: "ItemModelConfig",
                profile: "ProfileConfig") -> tuple[ItemModel, CandidateSet | None]:
    event = update.event
    ts = event["ts"]
    weight = profile.event_weights.get(event["behavior"], 0.0)
    popularity, popularity_at = decayed_add(state.popularity, state.popularity_at, weight, ts,
                                            config.popularity_half_life_hours * HOUR_MS)
    row = state.row
    if update.history:
        row = dict(row)
        for other, category in update.history:
            entry = row.get(other)
            row[other] = [entry[0] + 1, category or entry[1]] if entry else [1, category]
        row = _trim(row, config.row_cap)
    new_state = replace(
        state,
        category_id=event.get("category_id") or state.category_id,
        price=event.get("price", state.price),
        interactions=state.interactions + 1,
        popularity=popularity,
        popularity_at=popularity_at,
        row=row,
    )
    if not update.trigger or not row:  # without candidates the push policy could only say no
        return new_state, None
    top = sorted(row.items(), key=lambda kv: kv[1][0], reverse=True)[: config.neighbours]
    candidates = tuple(Neighbour(item_id, entry[1], float(entry[0])) for item_id, entry in top)
    return new_state, CandidateSet(event=event, trigger_category=new_state.category_id, candidates=candidates,
                                   affinity=update.affinity, exclude=update.exclude)
