from .conversations import bp as conversations
from .health import bp as health
from .llm_models import bp as llm_models
from .messages import bp as messages
from .metrics import bp as metrics

__all__ = ["conversations", "health", "llm_models", "messages", "metrics"]
