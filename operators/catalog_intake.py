"""Checks a raw catalogue record must pass before it is joined into item state; a failure carries the reason."""
from __future__ import annotations

from config import CatalogConfig, IntakeConfig
from state_schemas.events import CatalogItem, decode_catalog_item

from .intake import Rejected, admitted


def admit_catalog(raw: bytes, now_ms: int, catalog: CatalogConfig, limits: IntakeConfig) -> CatalogItem:
    item = admitted(raw, now_ms, limits, decode_catalog_item)  # a negative price is a schema error too
    if item.price > catalog.max_price:
        raise Rejected(f"absurd price: field 'price' is {item.price}, above catalog.max_price {catalog.max_price}")
    # YAML reads bare numeric ids as ints; the schema turns numeric ids into strings.
    if catalog.known_categories and item.category_id not in {str(c) for c in catalog.known_categories}:
        raise Rejected(f"unknown category: field 'category_id' is {item.category_id!r}, "
                       f"not in catalog.known_categories")
    return item
