"""Notification copy: the templates file's shape, and the checks it must pass when the config loads,
so that a bad template is refused before the job starts, never found at send time."""
from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path

import yaml

BUILT_IN = Path(__file__).with_name("templates.yaml")

ITEM_PLACEHOLDERS = frozenset({"first", "first_price", "count", "others"})
ORDER_PLACEHOLDERS = frozenset({"order", "carrier", "first", "first_price"})
# What each template may say. The order statuses are the transactional templates.
PLACEHOLDERS = {
    "recommendation_one": ITEM_PLACEHOLDERS,
    "recommendation_many": ITEM_PLACEHOLDERS,
    "cart_reminder": ITEM_PLACEHOLDERS,
    "watched_price_drop": ITEM_PLACEHOLDERS | {"was_price", "drop"},
    "back_in_stock": ITEM_PLACEHOLDERS,
    "review_request": ORDER_PLACEHOLDERS,
    "digest": ITEM_PLACEHOLDERS,
    **{status: ORDER_PLACEHOLDERS
       for status in ("shipped", "out_for_delivery", "delivered", "cancelled", "refunded", "price_drop")},
}
WORDS = {"an_item": frozenset(), "your_item": frozenset(), "our_courier": frozenset(), "price": frozenset({"price"})}


def read(path: str | Path) -> dict:
    """A templates file as plain data: {"words": ..., "templates": ...}."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def placeholders(text) -> set[str] | None:
    """The placeholder names of a format string; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:  # an unmatched brace
        return None
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name is not None}


def problems(copy: Mapping, locales: tuple[str, ...]) -> list[str]:
    """Everything wrong with the copy, in words that name the template, locale and part."""
    found = []
    for group, expected, parts in (("templates", PLACEHOLDERS, ("title", "body")), ("words", WORDS, None)):
        entries = copy.get(group) if isinstance(copy, Mapping) else None
        if not isinstance(entries, Mapping):
            found.append(f"content.templates has no '{group}' mapping")
            continue
        for name in sorted(set(entries) - set(expected)):
            found.append(f"content.templates: unknown {group[:-1]} '{name}' (known: {', '.join(sorted(expected))})")
        for name, allowed in expected.items():
            by_locale = entries.get(name)
            if not isinstance(by_locale, Mapping):
                found.append(f"content.templates: {group[:-1]} '{name}' is missing")
                continue
            for locale in locales:
                if locale not in by_locale:
                    found.append(f"content.templates: {group[:-1]} '{name}' has no locale '{locale}'")
            for locale, entry in by_locale.items():
                texts = {part: entry.get(part) for part in parts} if parts and isinstance(entry, Mapping) else \
                    {"text": entry} if not parts else {"entry": None}
                for part, text in texts.items():
                    used = placeholders(text)
                    where = f"content.templates: {name} [{locale}] {part}"
                    if used is None:
                        found.append(f"{where} must be a text with {{placeholders}} in matched braces")
                    elif used - allowed:
                        found.append(f"{where} has unknown placeholder(s) {', '.join(sorted(used - allowed))} "
                                     f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    return found
