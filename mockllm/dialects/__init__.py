"""Provider wire formats. A new dialect is one module here and one line in `DIALECTS`."""

from ._base import Call, Dialect, Encoding
from .openai_chat import OpenAIChat

DIALECTS: tuple[Dialect, ...] = (OpenAIChat(),)

__all__ = ["DIALECTS", "Call", "Dialect", "Encoding"]
