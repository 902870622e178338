from __future__ import annotations

from sanic import Blueprint, Request, json
from sanic.exceptions import Forbidden
from sanic.response import JSONResponse
from sanic_ext import openapi, validate

from ..clients import AuthenticatedUser, InferenceClient
from ..schemas import SwapModel
from ..settings import Settings
from ._docs import BEARER, json_body, responses

UPSTREAM_JSON = {"application/json": {"schema": {"description": "The inference service's JSON, unchanged"}}}

bp = Blueprint("llm_models", url_prefix="/models")


@bp.get("")
@openapi.definition(
    summary="The inference service's models (its GET /models, unchanged)",
    response=responses({200: UPSTREAM_JSON}),
    secured=BEARER,
)
async def list_models(request: Request, inference: InferenceClient) -> JSONResponse:
    status, models = await inference.models()
    return json(models, status=status)


@bp.post("/swap")
@openapi.definition(
    summary="Swap the loaded model (administrators only); the inference service's answer and status",
    body=json_body(SwapModel),
    response=responses({200: UPSTREAM_JSON}, 400, 403),
    secured=BEARER,
)
@validate(json=SwapModel, strict=True)
async def swap_model(
    request: Request, body: SwapModel, user: AuthenticatedUser, inference: InferenceClient, settings: Settings
) -> JSONResponse:
    if not (user.is_admin or user.email.lower() in settings.admin_emails):
        raise Forbidden("Only administrators can swap the model")
    status, answer = await inference.swap_model(body.model_tag)
    return json(answer, status=status)
