"""Triton's model repository extension over HTTP: the index in every model control mode, load
and unload in explicit mode (service.model_control). Behind the API key, as the rest of /v2.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictBool, StrictStr, ValidationError

from skipfold.service.failures import ApiError, describe

router = APIRouter(prefix="/v2/repository")


class _IndexRequest(BaseModel):
    ready: StrictBool = False  # only the versions ready for inference
    repository_name: StrictStr | None = None


@router.post("/index")
async def repository_index(request: Request) -> JSONResponse:
    body = await request.body()
    try:
        query = _IndexRequest.model_validate_json(body) if body.strip() else _IndexRequest()
    except ValidationError as exc:
        raise ApiError(400, "invalid index request: " + describe(exc.errors())) from None
    return JSONResponse(request.app.state.model_control.index(query.ready))


@router.post("/models/{name}/load")
async def repository_load(request: Request, name: str) -> dict:
    await request.app.state.model_control.load(name)
    return {}


@router.post("/models/{name}/unload")
async def repository_unload(request: Request, name: str) -> dict:
    await request.app.state.model_control.unload(name)
    return {}
