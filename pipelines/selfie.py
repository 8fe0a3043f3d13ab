"""From a selfie to recommendations: vision gives age and gender, the bundle gives the list.

The photo is decoded in memory and never written anywhere, nor any crop or embedding of it;
only the inferred age band and gender leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InputError, PhotoError
from pipelines.profile import face_record, read_photo
from pipelines.recommend import Recommendations, recommend_for_demographics, require_model
from vision.profile import default_profiler
from vision.types import FaceProfile, VisionError

_PHOTO_ERRORS = (VisionError, FileNotFoundError, IsADirectoryError, PermissionError)


@dataclass(frozen=True)
class SelfieRecommendations:
    photo: str
    faces: list[dict]  # what vision saw in each face used (see pipelines.profile.face_record)
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


def _explain(error: Exception) -> str:
    from vision.types import NoFaceFound

    if isinstance(error, NoFaceFound):
        return f"{error}. Take the photo facing the camera, in good light, with your face filling a good part of the frame"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    return str(error)


def recommend_for_selfie(
    home: Path, photo: Path, *, k: int = 10, version: int | None = None, all_faces: bool = False, lock_timeout_s: float = 30.0
) -> SelfieRecommendations:
    require_model(home, version, lock_timeout_s=lock_timeout_s)  # fail before the vision work
    profile = profile_faces(photo, all_faces=all_faces)
    lists = [
        recommend_for_demographics(home, age=face.age.years, gender=face.gender_for_recommendation, k=k,
                                   version=version, lock_timeout_s=lock_timeout_s)
        for face in profile.faces
    ]
    return SelfieRecommendations(str(photo), [face_record(f) for f in profile.faces], profile.other_faces, lists)


def selfie_demographics(photo: Path) -> tuple[float, str | None]:
    """Age in years and the gender the recommender may use (None: treat as unknown)."""
    face: FaceProfile = profile_faces(photo).primary
    return face.age.years, face.gender_for_recommendation
