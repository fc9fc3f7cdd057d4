"""Unit tests for the deterministic tokenizer (`mockllm._tokenizer`)."""

from __future__ import annotations

import pytest

from mockllm._tokenizer import (
    MAX_PIECE_CHARS,
    TOKENS_PER_MESSAGE,
    TOKENS_REPLY_PRIMING,
    count_prompt_tokens,
    count_tokens,
    tokenize,
)

# Texts a tokenizer can get wrong: every one must come back byte for byte from its tokens.
TRICKY_TEXTS = {
    "empty": "",
    "single space": " ",
    "plain": "Hello world",
    "double space": "Hello  world",
    "trailing spaces": "end   ",
    "leading spaces": "   start",
    "tab": "a\tb",
    "crlf": "line one\r\nline two\r\n",
    "blank lines": "para one.\n\n\npara two",
    "long white space": "           x",
    "contractions": "I'm sure they'll say we've done it, don't you? She'd, he's, you're.",
    "digit runs": "In 2024 there were 1234567 users and 0.000001 of them paid 99999",
    "punctuation runs": "Hi!!! ... ?!?! --- (ok)",
    "precomposed accents": "café naïve Zürich crème brûlée",
    "combining accents": "cafe\u0301 nai\u0308ve",
    "emoji zwj and skin tone": "👍🏽 and 👩\u200d💻 or 👨\u200d👩\u200d👧\u200d👦!",
    "flags": "🇫🇷🇫🇷🇫🇷🇫🇷",
    "cjk": "东京タワー 데이터 你好世界",
    "math letters": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "long word": "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "underscores": "call snake_case_name or __init__",
    "mixed": "Price: €42½ → 3×4=12 \t\r\n ok",
}


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
def test_no_token_is_empty_or_longer_than_max_piece(text: str) -> None:
    for token in tokenize(text):
        assert 1 <= len(token) <= MAX_PIECE_CHARS, token


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
def test_count_tokens_equals_len_tokenize(text: str) -> None:
    assert count_tokens(text) == len(tokenize(text))


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
def test_a_space_never_trails_a_word(text: str) -> None:
    """A space before a word belongs to the word's token, so no word token ends with one."""
    for token in tokenize(text):
        assert token.isspace() or not token.endswith(" "), token


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", []),
        ("Hello world", ["Hello", " world"]),
        ("Hello big wide world", ["Hello", " big", " wide", " world"]),
        # Of two spaces, the last stays with the word and the first stands alone.
        ("Hello  world", ["Hello", " ", " world"]),
        ("a\tb", ["a", "\t", "b"]),
        ("x\r\ny", ["x", "\r", "\n", "y"]),
        ("end   ", ["end", "   "]),
        ("don't", ["don", "'t"]),
        ("they'll we've I'm", ["they", "'ll", " we", "'ve", " I", "'m"]),
        # Digits go in runs of at most three, the first run with its leading space.
        (" 1234567", [" 123", "456", "7"]),
        ("2024", ["202", "4"]),
        ("Hi!!! ...", ["Hi", "!!!", " ..."]),
        ("café naïve", ["café", " naïve"]),
        ("东京タワー 데이터", ["东京タワー", " 데이터"]),
        ("👍🏽 and 👩\u200d💻", ["👍🏽", " and", " 👩\u200d💻"]),
        # Long pieces are cut every MAX_PIECE_CHARS code points, the leading space counted.
        ("extraordinary", ["extraor", "dinary"]),
        (" extraordinary", [" extrao", "rdinary"]),
        ("           x", ["       ", "   ", " x"]),
        ("🇫🇷🇫🇷🇫🇷🇫🇷", ["🇫🇷🇫🇷🇫🇷🇫", "🇷"]),
    ],
)
def test_exact_token_boundaries(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens
    assert count_tokens(text) == len(tokens)


def test_max_piece_chars_is_seven() -> None:
    # The exact boundaries above and the usage counts users rely on are built on this value.
    assert MAX_PIECE_CHARS == 7


def test_cut_pieces_are_valid_utf8_on_their_own() -> None:
    text = " 𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ありがとうございます"
    tokens = tokenize(text)
    assert tokens == [" 𝔘𝔫𝔦𝔠𝔬𝔡", "𝔢𝔘𝔫𝔦𝔠𝔬𝔡", "𝔢", " ありがとうご", "ざいます"]
    assert b"".join(token.encode() for token in tokens) == text.encode()
    for token in tokens:
        assert not 0x80 <= token.encode()[0] <= 0xBF  # no piece starts inside a UTF-8 sequence


def test_count_prompt_tokens_adds_framing_per_message_and_reply_priming() -> None:
    assert TOKENS_PER_MESSAGE == 3
    assert TOKENS_REPLY_PRIMING == 3
    assert count_prompt_tokens([]) == 3
    assert count_prompt_tokens([""]) == 6
    assert count_prompt_tokens(["", ""]) == 9
    # "Hello world" is 2 tokens, "You are terse." is 4.
    assert count_prompt_tokens(["Hello world"]) == 2 + 3 + 3
    assert count_prompt_tokens(["You are terse.", "Hello world"]) == 4 + 2 + 3 * 2 + 3


def test_count_prompt_tokens_is_content_tokens_plus_framing() -> None:
    texts = list(TRICKY_TEXTS.values())
    expected = sum(len(tokenize(text)) for text in texts) + 3 * len(texts) + 3
    assert count_prompt_tokens(texts) == expected
