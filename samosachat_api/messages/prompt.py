"""What the model is sent: the newest messages within a budget, the system prompt folded in."""

from __future__ import annotations

from ..models import Message, Role


def history_for_model(messages: list[Message], max_characters: int) -> list[dict[str, str]]:
    """The newest messages, oldest first, dropping older ones once their characters exceed
    `max_characters`; the newest is always kept, however long it is."""
    kept: list[Message] = []
    characters = 0
    for message in reversed(messages):
        characters += len(message.content)
        if kept and characters > max_characters:
            break
        kept.append(message)
    return [{"role": m.role.value, "content": m.content} for m in reversed(kept)]


def with_system_prompt(history: list[dict[str, str]], prompt: str) -> list[dict[str, str]]:
    """The history with `prompt` at the start of its first user message: the inference service
    ignores `role: "system"`. Nothing is stored."""
    if not prompt:
        return history
    for index, message in enumerate(history):
        if message["role"] == Role.USER.value:
            prompted = {**message, "content": f"{prompt}\n\n{message['content']}"}
            return [*history[:index], prompted, *history[index + 1 :]]
    return history
