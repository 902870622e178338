from __future__ import annotations

from sanic import Blueprint, Request, json
from sanic.exceptions import Forbidden
from sanic.response import JSONResponse
from sanic_ext import validate

from ..clients import AuthenticatedUser, InferenceClient
from ..schemas import SwapModel
from ..settings import Settings

bp = Blueprint("llm_models", url_prefix="/api/models")


@bp.get("")
async def list_models(request: Request, user: AuthenticatedUser, inference: InferenceClient) -> JSONResponse:
    status, models = await inference.models()
    return json(models, status=status)


@bp.post("/swap")
@validate(json=SwapModel, strict=True)
async def swap_model(
    request: Request, body: SwapModel, user: AuthenticatedUser, inference: InferenceClient, settings: Settings
) -> JSONResponse:
    if not (user.is_admin or user.email.lower() in settings.admin_emails):
        raise Forbidden("Only administrators can swap the model")
    status, answer = await inference.swap_model(body.model_tag)
    return json(answer, status=status)
