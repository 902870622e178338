"""The two upstream services, spoken to over httpx; nothing here knows about the database."""

from ._http import new_http_client
from .auth import AuthClient, AuthenticatedUser
from .inference import InferenceClient

__all__ = ["AuthClient", "AuthenticatedUser", "InferenceClient", "new_http_client"]
