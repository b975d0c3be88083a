"""Pseudonyms: outputs, keys and logs carry a keyed hash of the user id, never the id itself."""
from __future__ import annotations

import hashlib
import hmac


def pseudonym(user_id: str, key: str) -> str:
    """A stable keyed pseudonym: without the key it cannot be matched against a list of user ids."""
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:20]


def notification_id(user_pseudonym: str, source_event_id: str, kind: str) -> str:
    """Deterministic, so a replay after a failure produces the same id and consumers can dedup. Built
    from the keyed pseudonym: a hash of the raw id could be matched against a list of user ids."""
    return hashlib.sha256(f"{user_pseudonym}\x1f{source_event_id}\x1f{kind}".encode()).hexdigest()[:24]
