"""The labelled development faces (UTKFace subset, non-commercial licence: read in place, never
copied into the repo). Used by the offline fitting, the benchmark and the data tests."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FACES_DIR = Path("/work/shared/data/faces")


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    age: int
    gender: str  # "F" or "M"
    race: str
    kind: str  # "wild" (uncropped photo) or "aligned_chip" (200x200 face crop)


def load_devset(folder: Path = DEFAULT_FACES_DIR) -> list[LabelledPhoto]:
    labels = Path(folder) / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"expected the dev faces' labels at {labels}")
    with open(labels, newline="", encoding="utf-8") as f:
        return [
            LabelledPhoto(Path(folder) / row["file"], int(row["age"]), row["gender"], row["race"], row["kind"])
            for row in csv.DictReader(f)
        ]
