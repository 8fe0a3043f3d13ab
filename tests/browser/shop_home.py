"""A home with a hand-made 24-film bundle, big enough for a list of ten, whose answers can be
worked out on paper (tests/serving_fixtures.py has only five items).

Vectors are 3-D: axis 0 means "action", axis 1 "romance", axis 2 "classic" (old films).
Cold start: men lean action, women romance, unknown gender both; the classic axis grows with
the age band, so moving someone from 25-34 to 56+ brings the old films to the top.
Known users: 1 likes action and has seen 101 and 102; 2 likes romance and has seen nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS
from warehouse.catalog import Dataset, replace_dataset
from warehouse.connection import connected
from warehouse.model_versions import record_version

# item_id, title, year, genres, (action, romance, classic)
FILMS = [
    (101, "Steel Horizon", 2019, ["Action", "Thriller"], (1.00, 0.00, 0.00)),
    (102, "Night Runner", 2021, ["Action"], (0.97, 0.02, 0.00)),
    (103, "Red Canyon", 2016, ["Action", "Western"], (0.94, 0.00, 0.10)),
    (104, "The Last Convoy", 2018, ["Action", "War"], (0.91, 0.05, 0.00)),
    (105, "Iron Tide", 2022, ["Action", "Sci-Fi"], (0.88, 0.00, 0.00)),
    (106, "Crossfire Street", 2015, ["Action", "Crime"], (0.85, 0.03, 0.00)),
    (107, "Zero Hour Express", 2020, ["Action", "Thriller"], (0.82, 0.00, 0.00)),
    (201, "Harbor Lights", 2017, ["Romance", "Drama"], (0.00, 1.00, 0.00)),
    (202, "Letters to Lisbon", 2019, ["Romance"], (0.02, 0.97, 0.00)),
    (203, "A Summer in Kyoto", 2021, ["Romance", "Drama"], (0.00, 0.94, 0.05)),
    (204, "The Orchard Wedding", 2016, ["Romance", "Comedy"], (0.05, 0.91, 0.00)),
    (205, "Moonlit Promenade", 2020, ["Romance"], (0.00, 0.88, 0.00)),
    (206, "Between Two Seasons", 2018, ["Romance", "Drama"], (0.00, 0.85, 0.05)),
    (207, "Second Chances on Main Street", 2022, ["Romance", "Comedy"], (0.03, 0.82, 0.00)),
    (301, "The Lighthouse Keeper", 1962, ["Drama"], (0.10, 0.20, 1.00)),
    (302, "Dust and Glory", 1958, ["Western"], (0.30, 0.00, 0.95)),
    (303, "Midnight at the Savoy", 1949, ["Film-Noir", "Mystery"], (0.15, 0.15, 0.92)),
    (304, "The Long Road West", 1967, ["Western", "Adventure"], (0.25, 0.05, 0.90)),
    (305, "Carnival of Shadows", 1955, ["Mystery", "Thriller"], (0.10, 0.10, 0.88)),
    (306, "Waltz for Vienna", 1953, ["Romance", "Musical"], (0.00, 0.30, 0.86)),
    (307, "Quiet Harbour, The (1961)", 1964, ["Drama"], (0.10, 0.10, 0.80)),  # as MovieLens writes titles (1964: a re-release)
    (401, "Love on the Run", 2014, ["Action", "Romance", "Comedy"], (0.55, 0.55, 0.00)),
    (402, "The Getaway Waltz", 2012, ["Crime", "Romance"], (0.50, 0.50, 0.05)),
    (403, "Comet Summer", 2010, ["Sci-Fi", "Romance"], (0.40, 0.45, 0.00)),
    (404, "Heist at the Opera", 2008, ["Action", "Comedy"], (0.45, 0.35, 0.10)),
]
ITEM_IDS = np.array([f[0] for f in FILMS])
ITEM_VECTORS = np.array([f[4] for f in FILMS], dtype=np.float32)
GENDERS = ["F", "M"]
OCCUPATIONS = ["writer"]
# How strongly each age band (AGE_BANDS order) leans to classic films; slot 0 is "unknown".
CLASSIC_LEAN = [0.2, 0.0, 0.0, 0.0, 0.2, 0.5, 0.9, 1.6]


def write_bundle(directory: Path, version: int) -> Path:
    directory.mkdir(parents=True)
    assert len(CLASSIC_LEAN) == len(AGE_BANDS) + 1
    cold = np.zeros((len(AGE_BANDS) + 1, len(GENDERS) + 1, len(OCCUPATIONS) + 1, 3), dtype=np.float32)
    for band, lean in enumerate(CLASSIC_LEAN):
        cold[band, 0] = [0.5, 0.5, lean]  # gender unknown
        cold[band, 1] = [0.1, 1.0, lean]  # F
        cold[band, 2] = [1.0, 0.1, lean]  # M
    manifest = {
        "format_version": 1,
        "version": str(version),
        "dim": 3,
        "vocabularies": {"age_bands": list(AGE_BANDS), "genders": GENDERS, "occupations": OCCUPATIONS},
        "age_band_lower_bounds": list(AGE_BAND_LOWER_BOUNDS),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    np.save(directory / "item_ids.npy", ITEM_IDS)
    np.save(directory / "item_vectors.npy", ITEM_VECTORS)
    np.save(directory / "user_ids.npy", np.array([1, 2]))
    np.save(directory / "user_vectors.npy", np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32))
    np.save(directory / "cold_start_vectors.npy", cold)
    return directory


def make_shop_home(home: Path) -> Path:
    users = pl.DataFrame({"user_id": [1, 2], "age": [40, 25], "gender": ["M", "F"]})
    items = pl.DataFrame({"item_id": ITEM_IDS.tolist(), "title": [f[1] for f in FILMS],
                          "year": [f[2] for f in FILMS], "genres": [f[3] for f in FILMS]})
    interactions = pl.DataFrame({"user_id": [1, 1], "item_id": [101, 102], "rating": [5.0, 4.0], "timestamp": [1, 2]})
    bundle = write_bundle(home / "bundles" / "v1", 1)
    with connected(home) as conn:
        replace_dataset(conn, Dataset(users, items, interactions), source="fixture", fmt="test")
        record_version(conn, version=1, mlflow_run_id="run-1", metrics={"model": {"cold.ndcg_at_10": 0.5}, "baselines": {}},
                       data_snapshot="s", bundle_path=str(bundle), champion=True, note="fixture")
    return home
