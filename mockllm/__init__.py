"""A deterministic mock LLM: the ground truth the harness checks implementations against.

One seed fixes every byte, delay and fault of every response, whatever the concurrency. Agent
requests (tools, tool choice, reasoning, response schemas, tool calls and results in the history)
are read into an `Agent` and answered with a plan of `Block`s: reasoning, tool calls whose
arguments are seeded instances of the tool's schema (`schema_instance`), and text.
Pure cores (`plan_response`, the dialect encoders, `stream_schedule`) decide a response; the
server (`MockServer`) only plays it on its deadlines and records it in the journal. The dialects
it speaks are registered in `mockllm.dialects`; `mockllm.launcher` (its names re-exported here)
starts the mock, or any server that says where it listens, as a child process.

These names, `mockllm.dialects`, `mockllm.launcher`, `mockllm.client` and `mockllm.pytest_plugin`
are the package's public face; its `_modules` are its own.
"""

from ._agent import Agent, Block, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult
from ._config import MockConfig, parse_config
from ._errors import ConfigError, RequestError
from ._faults import Fault, parse_fault
from ._plan import Plan, plan_response
from ._request import ChatRequest, Message, Overrides, request_seed
from ._schema_instance import SchemaError, schema_instance
from ._server import MockServer
from ._tokenizer import MAX_PIECE_CHARS, PRETOKEN_PATTERN, count_tokens, tokenize
from ._wire import stream_schedule
from .client import MockLLMClient
from .dialects import Call, Encoding
from .launcher import ServerProcess, StartError, mock_command, start_listening, start_mock, stop_process

__all__ = [
    "MAX_PIECE_CHARS",
    "PRETOKEN_PATTERN",
    "Agent",
    "Block",
    "Call",
    "ChatRequest",
    "ConfigError",
    "Encoding",
    "Fault",
    "Message",
    "MockConfig",
    "MockLLMClient",
    "MockServer",
    "OutputFormat",
    "Overrides",
    "Plan",
    "Reasoning",
    "RequestError",
    "SchemaError",
    "ServerProcess",
    "StartError",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolResult",
    "count_tokens",
    "mock_command",
    "parse_config",
    "parse_fault",
    "plan_response",
    "request_seed",
    "schema_instance",
    "start_listening",
    "start_mock",
    "stop_process",
    "stream_schedule",
    "tokenize",
]
