"""What routes need, as named dependencies: the live recommender, the settings, an admin check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipelines.live import LiveRecommender
from service.settings import Settings


# async: FastAPI would run a plain function dependency in its thread pool, a hop per request.
async def get_live(request: Request) -> LiveRecommender:
    return request.app.state.live


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


LiveDep = Annotated[LiveRecommender, Depends(get_live)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
_bearer = HTTPBearer(auto_error=False)


async def require_admin(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    if settings.admin_token is None:
        raise HTTPException(404, "admin routes are off: set RECSYS_ADMIN_TOKEN to turn them on")
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), settings.admin_token.encode()):
        raise HTTPException(401, "a valid admin bearer token is required (Authorization: Bearer ...)")


AdminDep = Annotated[None, Depends(require_admin)]
