"""The hand-made home of serving_fixtures with a retailer's string ids: SKUs for items, UUIDs
for users (as ingest stores a source whose ids are not integers: a BIGINT key per id and the
source's id in external_id). The keys stay those of serving_fixtures, so the right answers are
the same lists, spelled in the source's ids. The SKUs' order differs from the keys' on purpose:
nothing may depend on it."""

from __future__ import annotations

from pathlib import Path

from serving_fixtures import make_home
from warehouse.connection import connected

SKU = {10: "SKU-00042", 11: "SKU-00007", 12: "SKU-00100", 13: "SKU-00013", 14: "SKU-00001"}
KEY_OF_SKU = {sku: key for key, sku in SKU.items()}
USER = {1: "5f0c1a2e-action-fan", 2: "0b9d7c44-romance-fan", 3: "a17e33f0-joined-later"}


def make_string_home(home: Path) -> Path:
    make_home(home)
    with connected(home) as conn:
        for key, sku in SKU.items():
            conn.execute("UPDATE items SET external_id = ? WHERE item_id = ?", [sku, key])
        for key, uuid in USER.items():
            conn.execute("UPDATE users SET external_id = ? WHERE user_id = ?", [uuid, key])
    return home
