"""The routes: public ones (health, metrics) and the API group, where every route is authenticated.

A route added to a blueprint of the group needs a bearer token without saying so; a public route
belongs outside it. (A version would go on the group: `version=1, version_prefix="/api/v"`.)
"""

from sanic import Blueprint

from ..auth import authenticate
from .admin import bp as admin
from .conversations import bp as conversations
from .health import bp as health
from .llm_models import bp as llm_models
from .messages import bp as messages
from .metrics import bp as metrics

api = Blueprint.group(conversations, messages, llm_models, admin, url_prefix="/api")
api.middleware(authenticate, "request")

__all__ = ["api", "health", "metrics"]
