"""Small synthetic datasets in the original MovieLens 100K and 1M file formats.

They follow the real files byte for byte in shape (separators, field counts, latin-1 titles,
1M age and occupation codes), so the readers meet what they will meet in the real data.
"""

from __future__ import annotations

import random
from pathlib import Path

GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]
OCCUPATIONS_100K = ["writer", "technician", "student", "other", "programmer"]
ML1M_AGE_CODES = [1, 18, 25, 35, 45, 50, 56]


def write_ml100k(directory: Path, *, n_users: int = 12, n_items: int = 15, n_ratings: int = 80, seed: int = 0) -> Path:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    users = [
        f"{u}|{rng.randint(7, 73)}|{rng.choice('MF')}|{rng.choice(OCCUPATIONS_100K)}|{rng.randint(10000, 99999)}"
        for u in range(1, n_users + 1)
    ]
    (directory / "u.user").write_text("\n".join(users) + "\n")
    items = []
    for i in range(1, n_items + 1):
        year = 1950 + i
        flags = ["1" if g == i % len(GENRES_100K) or g == (3 * i) % len(GENRES_100K) else "0" for g in range(19)]
        title = f"Caf\xe9 Film {i} ({year})"  # latin-1, like the real u.item
        items.append(f"{i}|{title}|01-Jan-{year}||http://us.imdb.com/M/title-exact?film{i}|" + "|".join(flags))
    (directory / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (directory / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n")
    pairs = rng.sample([(u, i) for u in range(1, n_users + 1) for i in range(1, n_items + 1)], n_ratings)
    ratings = [f"{u}\t{i}\t{rng.randint(1, 5)}\t{880000000 + k * 1000}" for k, (u, i) in enumerate(pairs)]
    (directory / "u.data").write_text("\n".join(ratings) + "\n")
    return directory


def write_ml1m(directory: Path, *, n_users: int = 10, n_items: int = 12, n_ratings: int = 60, seed: int = 1) -> Path:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    users = [
        f"{u}::{rng.choice('MF')}::{rng.choice(ML1M_AGE_CODES)}::{rng.randint(0, 20)}::{rng.randint(10000, 99999)}"
        for u in range(1, n_users + 1)
    ]
    (directory / "users.dat").write_text("\n".join(users) + "\n")
    genres = ["Action", "Comedy", "Drama", "Sci-Fi", "Children's"]
    movies = [f"{i}::Pel\xedcula {i} ({1960 + i})::{genres[i % 5]}|{genres[(i + 2) % 5]}" for i in range(1, n_items + 1)]
    (directory / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    pairs = rng.sample([(u, i) for u in range(1, n_users + 1) for i in range(1, n_items + 1)], n_ratings)
    ratings = [f"{u}::{i}::{rng.randint(1, 5)}::{970000000 + k}" for k, (u, i) in enumerate(pairs)]
    (directory / "ratings.dat").write_text("\n".join(ratings) + "\n")
    return directory


def write_generic_csv(directory: Path) -> dict[str, Path]:
    """A tiny retail-like catalog: string timestamps, no ratings, extra item columns."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.csv" for name in ("users", "items", "interactions")}
    paths["users"].write_text("user_id,age,gender\n1,34,F\n2,51,m\n3,,\n")
    paths["items"].write_text(
        "item_id,title,genres,price,brand\n10,Kettle,kitchen|electric,29.9,Acme\n11,Mug,kitchen,4.5,Acme\n12,Lamp,,15,Lux\n"
    )
    paths["interactions"].write_text(
        "user_id,item_id,timestamp\n1,10,2024-03-01T10:00:00\n1,11,2024-03-02T11:00:00\n2,12,1709290000\n3,10,1709290001\n"
    )
    return paths
