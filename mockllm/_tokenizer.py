"""A deterministic stand-in for a BPE tokenizer.

Real tokenizers cut text into word pieces that carry their leading space (`" Hello"`, `" world"`)
and split long words into several pieces. This one does the same with a fixed rule, so token
boundaries and usage counts are known in advance and identical on every machine:

1. Pre-tokenize as GPT-2 does (`PRETOKEN_PATTERN`): contractions, a letter run with its leading
   space, up to three digits with their leading space, a run of other symbols (`_` among them)
   with its leading space, white space.
2. Cut any piece longer than `MAX_PIECE_CHARS` characters (the leading space included) into
   pieces of that length. Cuts fall between code points, never inside a UTF-8 sequence, so every
   token is valid text on its own, as in a real provider's stream.

Joining the tokens gives back the text exactly.
"""

from __future__ import annotations

import re

MAX_PIECE_CHARS = 7

PRETOKEN_PATTERN = re.compile(
    r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""",
)

# Chat formats add a few tokens per message for the role and separators (OpenAI documents 3 per
# message plus 3 that prime the reply); the mock counts the same way.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


def tokenize(text: str) -> list[str]:
    """Split text into tokens whose concatenation is the text."""
    tokens: list[str] = []
    for piece in PRETOKEN_PATTERN.findall(text):
        if len(piece) <= MAX_PIECE_CHARS:
            tokens.append(piece)
        else:
            tokens.extend(piece[i : i + MAX_PIECE_CHARS] for i in range(0, len(piece), MAX_PIECE_CHARS))
    return tokens


def count_tokens(text: str) -> int:
    """Number of tokens in text, without building the token list's slices."""
    count = 0
    for piece in PRETOKEN_PATTERN.findall(text):
        count += -(-len(piece) // MAX_PIECE_CHARS)
    return count


def count_prompt_tokens(message_texts: list[str]) -> int:
    """Prompt tokens of a chat request: content tokens plus per-message framing."""
    return (
        sum(count_tokens(text) for text in message_texts)
        + TOKENS_PER_MESSAGE * len(message_texts)
        + TOKENS_REPLY_PRIMING
    )
