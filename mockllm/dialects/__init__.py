"""Provider wire formats. A new dialect is one module here and one line in `DIALECTS`."""

from ._base import Call, Dialect, Encoding
from .anthropic_messages import AnthropicMessages
from .gemini import Gemini
from .openai_chat import OpenAIChat
from .openai_completions import OpenAICompletions
from .openai_responses import OpenAIResponses

DIALECTS: tuple[Dialect, ...] = (
    OpenAIChat(),
    OpenAIResponses(),
    OpenAICompletions(),
    AnthropicMessages(),  # type: ignore[list-item]
    Gemini(),  # type: ignore[list-item]
)

__all__ = ["DIALECTS", "Call", "Dialect", "Encoding"]
