"""A deterministic mock LLM: the ground truth the harness checks implementations against.

One seed fixes every byte, delay and fault of every response, whatever the concurrency.
Pure cores (`plan_response`, the dialect encoders, `stream_schedule`) decide a response; the
server (`MockServer`) only plays it on its deadlines and records it in the journal.
"""

from ._config import MockConfig, parse_config
from ._errors import ConfigError, RequestError
from ._faults import Fault, parse_fault
from ._plan import Plan, plan_response
from ._request import ChatRequest, Message, request_seed
from ._server import MockServer
from ._tokenizer import count_tokens, tokenize
from .client import MockLLMClient

__all__ = [
    "ChatRequest",
    "ConfigError",
    "Fault",
    "Message",
    "MockConfig",
    "MockLLMClient",
    "MockServer",
    "Plan",
    "RequestError",
    "count_tokens",
    "parse_config",
    "parse_fault",
    "plan_response",
    "request_seed",
    "tokenize",
]
