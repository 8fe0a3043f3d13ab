"""Profile selfies: age, age band and gender for each photo, as plain records for the CLI and the
recommender. Joins vision (age in years) with recsys's age bands; imports neither TensorFlow nor MLflow.

Example record:

    {"photo": "a.jpg", "faces": [{"age": 33.4, "age_uncertainty": 5.1, "age_band": "25-34",
      "gender": "F", "gender_confidence": 0.87, "gender_for_recommendation": "F",
      "box": [x, y, w, h], "detection_confidence": 0.999, "low_quality": false,
      "quality_issues": []}], "other_faces": 0, "error": null}
"""

from __future__ import annotations

import logging
import os
from typing import Iterable

from pipelines.errors import InputError
from pipelines.fileio import read_regular_file
from recsys.age_bands import age_band
from vision.profile import default_profiler
from vision.types import FaceProfile, VisionError

log = logging.getLogger(__name__)


# A photo is read here, not by the vision module, so that only regular files of a sane size are
# read and a stalled network drive cannot hang a command: vision gets the bytes.
MAX_PHOTO_BYTES = 50 * 2**20
PHOTO_READ_TIMEOUT_S = 10.0


def read_photo(path: str | os.PathLike | bytes) -> bytes:
    if isinstance(path, bytes):
        return path
    return read_regular_file(path, max_bytes=MAX_PHOTO_BYTES, timeout_s=PHOTO_READ_TIMEOUT_S, what="photo")


def face_record(face: FaceProfile) -> dict:
    return {
        "age": round(face.age.years, 1),
        "age_uncertainty": round(face.age.uncertainty, 1),
        "age_band": age_band(face.age.years),
        "gender": face.gender.label,
        "gender_confidence": round(face.gender.probability, 3),
        "gender_for_recommendation": face.gender_for_recommendation,
        "box": face.face.box.as_list(),
        "detection_confidence": round(face.face.confidence, 4),
        "low_quality": face.low_quality,
        "quality_issues": list(face.quality_issues),
    }


def profile_photos(paths: Iterable[str | os.PathLike], all_faces: bool = False,
                   show_progress: bool = False) -> list[dict]:
    """One record per photo, in order. A photo that cannot be profiled (unreadable, too large, no
    face, missing file) gets a record with `error` set and no faces; the others still run."""
    paths = list(paths)
    profiler = default_profiler()
    iterator = paths
    if show_progress:
        from tqdm import tqdm

        iterator = tqdm(paths, desc="profiling", unit="photo")
    records = []
    for path in iterator:
        record = {"photo": os.fspath(path), "faces": [], "other_faces": 0, "error": None}
        try:
            result = profiler.profile(read_photo(path), all_faces=all_faces)
        except (InputError, VisionError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
            # Narrow on purpose: these are about the photo; a bug or a broken model install still raises.
            record["error"] = f"{type(e).__name__}: {e}"
            log.info("photo %d of %d not profiled: %s", len(records) + 1, len(paths), type(e).__name__)
        else:
            record["faces"] = [face_record(face) for face in result.faces]
            record["other_faces"] = result.other_faces
        records.append(record)
    return records
