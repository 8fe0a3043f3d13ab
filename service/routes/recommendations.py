"""POST /v1/recommendations and /v1/recommendations/selfie."""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

from fastapi import APIRouter, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from pipelines.live import ListRequest
from pipelines.schemas import Basis, RecommendationList, RecommendedItem
from service.deps import LiveDep, SettingsDep
from service.errors import ERROR_RESPONSES
from service.schemas import FaceOut, RecommendationRequest, SessionId
from service.upload import UploadRejected, read_photo

router = APIRouter(prefix="/v1", tags=["recommendations"])


def list_request(body: RecommendationRequest) -> ListRequest:
    return ListRequest(
        user_id=body.user_id, session_id=body.session_id, age=body.age, gender=body.gender,
        occupation=body.occupation, liked_items=tuple(body.liked_items), disliked_items=tuple(body.disliked_items),
        k=body.k, exclude_items=tuple(body.exclude_items),
        only_items=tuple(body.items) if body.items is not None else None,
        genres=tuple(body.genres) if body.genres is not None else None,
    )


@router.post("/recommendations", response_model=RecommendationList, responses=ERROR_RESPONSES)
async def recommend(body: RecommendationRequest, live: LiveDep):
    """Top-k for a known user, a new person (demographics), or a session, with a reason per item."""
    # On the event loop: about a millisecond of numpy and one indexed SQLite read, cheaper than
    # a thread-pool hop (a catalog of a million items would want the pool instead).
    return live.recommend(list_request(body)).to_list()


class SelfieRecommendation(BaseModel):
    camera: FaceOut
    other_faces: int
    model_version: int
    basis: Basis
    items: list[RecommendedItem]


_SELFIE_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["photo"],
                    "properties": {
                        "photo": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP; never stored."},
                        "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                        "session_id": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]+$", "maxLength": 128},
                    },
                }
            }
        },
    }
}
_K = TypeAdapter(int)
_SESSION = TypeAdapter(Optional[SessionId])


@router.post("/recommendations/selfie", response_model=SelfieRecommendation, responses=ERROR_RESPONSES,
             openapi_extra=_SELFIE_FORM)
async def recommend_for_selfie(request: Request, live: LiveDep, settings: SettingsDep):
    """What the camera saw in the photo, and the list for that age band and gender.

    The photo is read into memory, used and dropped: never written to disk, a log or a cache.
    """
    # Imported here: the vision stack (OpenCV, onnxruntime) loads in the background at start and
    # must not delay the service's readiness.
    from pipelines.profile import face_record
    from pipelines.selfie import demographic_weights, profile_faces

    live.require_snapshot()  # no model: fail before the vision work
    data, fields = await read_photo(request, settings.max_upload_bytes)
    try:
        k = _K.validate_python(fields.get("k", "10"), strict=False)
        session_id = _SESSION.validate_python(fields.get("session_id"))
    except ValidationError as e:
        raise UploadRejected(422, "invalid_request", f"k or session_id: {e.errors()[0]['msg']}") from e
    if not 1 <= k <= 100:
        raise UploadRejected(422, "invalid_request", f"k: expected 1 to 100 (got {k})")
    async with request.app.state.vision_slots:  # as many photos at once as cores: more only adds memory
        profile = await run_in_threadpool(profile_faces, data)
    del data
    face = profile.primary
    ranked = live.recommend(ListRequest(age=face.age.years, gender=face.gender_for_recommendation,
                                        mixture=demographic_weights(face), session_id=session_id, k=k)).to_list()
    return SelfieRecommendation(camera=FaceOut(**face_record(face)), other_faces=profile.other_faces,
                                model_version=ranked.model_version, basis=ranked.basis, items=ranked.items)
