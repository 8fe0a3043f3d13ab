"""From a selfie to recommendations: vision gives age and gender, the bundle gives the list.

The photo is decoded in memory and never written anywhere, nor any crop or embedding of it;
only the inferred age band and gender leave this module.

Uncertainty is carried into the list: a face's age spread and gender probability become weights
over the model's age bands and genders (pipelines.demographic_mixture), and the list is scored with
the mixture of their cold-start vectors. A confident face gets the one-band, one-gender list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.demographic_mixture import MixturePolicy, mixture_weights
from pipelines.errors import InputError, PhotoError
from pipelines.profile import face_record, read_photo
from pipelines.recommend import Recommendations, _version, listed_titles, load_bundle, rank, require_model
from recsys.personalize import History
from vision.profile import default_profiler
from vision.types import FaceProfile, VisionError
from warehouse.connection import connected

_PHOTO_ERRORS = (VisionError, FileNotFoundError, IsADirectoryError, PermissionError)
WEIGHT_DECIMALS = 4  # weights are rounded so equal faces share one list (and batch rows one cache entry)


@dataclass(frozen=True)
class SelfieRecommendations:
    photo: str
    faces: list[dict]  # what vision saw in each face used (see pipelines.profile.face_record), plus the weights
    other_faces: int  # faces seen but not used
    lists: list[Recommendations]  # one per face, in the order of ``faces``


def profile_faces(photo: Path | bytes, *, all_faces: bool = False):
    """What the camera sees in a photo (a path, or the bytes of an upload, kept in memory)."""
    try:
        return default_profiler().profile(read_photo(photo), all_faces=all_faces)
    except InputError as e:  # not a regular file, too large, too slow to read
        raise PhotoError(str(e)) from e
    except _PHOTO_ERRORS as e:
        raise PhotoError(f"{'the photo' if isinstance(photo, bytes) else photo}: {_explain(e)}") from e


def warm_up() -> None:
    """Loads the vision models now, so the first selfie is as fast as the rest."""
    default_profiler().warm_up()


def _explain(error: Exception) -> str:
    from vision.types import NoFaceFound

    if isinstance(error, NoFaceFound):
        return f"{error}. Take the photo facing the camera, in good light, with your face filling a good part of the frame"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    return str(error)


def demographic_weights(face: FaceProfile, policy: MixturePolicy = MixturePolicy()) -> tuple[dict[str, float], dict[str, float]]:
    """(age band weights, gender weights) for one face, for ServingBundle.vector_for_demographic_mixture.

    Age bands are recsys's labels ("25-34"); genders "F", "M", or "" for the unknown slot. A confident
    face gets one band and its gender (weight 1.0), which is today's hard choice; an unsure one
    spreads its weight. Example: age 24.5 +- 4 and 70% female gives
    ({"18-24": 0.55, "25-34": 0.45}, {"F": 0.7, "M": 0.3}).
    """
    female = face.gender.probability if face.gender.label == "F" else 1.0 - face.gender.probability
    bands, genders = mixture_weights(face.age.years, face.age.uncertainty, female, policy)
    return _rounded(bands), _rounded(genders)


def _rounded(weights: dict[str, float]) -> dict[str, float]:
    return {key: round(value, WEIGHT_DECIMALS) for key, value in weights.items()}


def recommend_for_face(home: Path, face: FaceProfile, *, k: int = 10, version: int | None = None,
                       lock_timeout_s: float = 30.0) -> Recommendations:
    """Top-k for one profiled face, scored with the mixture of cold-start vectors its weights give."""
    bands, genders = demographic_weights(face)
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
    bundle = load_bundle(chosen)
    vector = bundle.vector_for_demographic_mixture(bands, genders)
    basis = {
        "kind": "demographics",
        "age_band": max(bands, key=bands.get),
        "gender": face.gender_for_recommendation or "unknown",
        "occupation": "unknown",
        "age_band_weights": bands,
        "gender_weights": {g or "unknown": w for g, w in genders.items()},
    }
    return rank(bundle, listed_titles(home, bundle, lock_timeout_s), chosen.version, basis, vector, History(),
                k=k, known_user=False)


def recommend_for_selfie(
    home: Path, photo: Path, *, k: int = 10, version: int | None = None, all_faces: bool = False, lock_timeout_s: float = 30.0
) -> SelfieRecommendations:
    require_model(home, version, lock_timeout_s=lock_timeout_s)  # fail before the vision work
    profile = profile_faces(photo, all_faces=all_faces)
    lists = [recommend_for_face(home, face, k=k, version=version, lock_timeout_s=lock_timeout_s)
             for face in profile.faces]
    faces = [{**face_record(face), "age_band_weights": rec.basis["age_band_weights"],
              "gender_weights": rec.basis["gender_weights"]} for face, rec in zip(profile.faces, lists)]
    return SelfieRecommendations(str(photo), faces, profile.other_faces, lists)


def selfie_demographics(photo: Path) -> tuple[float, str | None]:
    """Age in years and the gender the recommender may use (None: treat as unknown)."""
    face: FaceProfile = profile_faces(photo).primary
    return face.age.years, face.gender_for_recommendation


def selfie_mixture(photo: Path) -> tuple[float, str | None, str]:
    """Age, the gender the recommender may use, and the face's (band, gender) weights as a JSON string
    [[[band, weight], ...], [[gender, weight], ...]] (batch scoring caches one list per distinct string)."""
    face: FaceProfile = profile_faces(photo).primary
    bands, genders = demographic_weights(face)
    return face.age.years, face.gender_for_recommendation, json.dumps([sorted(bands.items()), sorted(genders.items())])
