"""What a notification says: its template in the shopper's locale, filled in, cut to the channel's limits.

Templates were checked when the config loaded (`config/templates.py`), so filling one in cannot
fail here. A locale the copy does not have falls back to one of the same language, then to the
platform's default. Copy over a channel's limit is cut at a character boundary and ends with
'…'; a boundary is never inside a combining sequence or an emoji joined with ZWJ.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from config import JobConfig

ELLIPSIS = "…"
_JOINERS = {"\u200d", "\u034f"}  # ZWJ, combining grapheme joiner


@dataclass(frozen=True, slots=True)
class Copy:
    template: str
    locale: str
    title: str
    body: str


def locale_for(wanted: str, config: JobConfig) -> str:
    """The copy's locale for a shopper: theirs, else one of their language, else the platform's."""
    locales = config.content.locales
    if wanted in locales:
        return wanted
    language = wanted.split("-")[0]
    return next((locale for locale in locales if locale.split("-")[0] == language), config.directory.default_locale)


def _extends_cluster(char: str) -> bool:
    """Whether `char` belongs to the character before it (a mark, a joiner, a variation selector or skin tone)."""
    code = ord(char)
    return (unicodedata.combining(char) != 0 or char in _JOINERS or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF or 0xE0100 <= code <= 0xE01EF
            or unicodedata.category(char) in ("Mn", "Me", "Mc"))


def fit(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut at a character boundary, with '…' when cut."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    cut = limit - 1
    # Back off to the start of the character the cut would split; ZWJ joins what follows it too.
    while cut > 0 and (_extends_cluster(text[cut]) or text[cut - 1] in _JOINERS):
        cut -= 1
    while cut > 0 and (text[cut - 1].isspace() or text[cut - 1] in _JOINERS):  # nothing dangling before '…'
        cut -= 1
    return text[:cut] + ELLIPSIS


def word(name: str, locale: str, config: JobConfig, **values) -> str:
    return config.content.templates["words"][name][locale].format(**values)


def price(value: float | None, locale: str, config: JobConfig) -> str:
    return "" if value is None else word("price", locale, config, price=value)


def render(template: str, locale: str, channel: str, config: JobConfig, **values) -> Copy:
    """The template in `locale` (one of `content.locales`), filled with `values`, cut to the channel."""
    entry = config.content.templates["templates"][template][locale]
    title_limit, body_limit = config.content.limits[channel]
    title = fit(entry["title"].format(**values), title_limit) if title_limit else ""
    body = fit(" ".join(entry["body"].format(**values).split()), body_limit)  # an empty price leaves no gap
    return Copy(template=template, locale=locale, title=title, body=body)
