"""The inference service's models: listed for everyone, swapped by administrators."""

from __future__ import annotations

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from ..clients import InferenceClient
from ..web.auth import Administrator
from ..web.routes import api_route, responses
from .schemas import SwapModel

UPSTREAM_JSON = {"application/json": {"schema": {"description": "The inference service's JSON, unchanged"}}}

bp = Blueprint("llm_models", url_prefix="/models")


@bp.get("")
@api_route("The inference service's models (its GET /models, unchanged)", responses({200: UPSTREAM_JSON}))
async def list_models(request: Request, inference: InferenceClient) -> JSONResponse:
    status, models = await inference.models()
    return json(models, status=status)


@bp.post("/swap")
@api_route(
    "Swap the loaded model (administrators only); the inference service's answer and status",
    responses({200: UPSTREAM_JSON}, 400, 403),
    body=SwapModel,
)
async def swap_model(request: Request, body: SwapModel, admin: Administrator, inference: InferenceClient) -> JSONResponse:
    status, answer = await inference.swap_model(body.model_tag)
    return json(answer, status=status)
