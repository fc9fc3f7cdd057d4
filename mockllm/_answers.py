"""Where answer text comes from: fixed, templated, echoed, generated prose or a replayed capture.

Rules in config pick a source by the last user message (substring or regex), the model and the
turn number; the first rule that matches wins, else the default (prose). Every source draws only
from the generator it is handed, so the plan's seed fixes the text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Protocol

import jinja2
import jinja2.sandbox

from ._agent_answers import (
    AGENT_MATCH_KEYS,
    AgentMatch,
    BlocksAnswer,
    Part,
    parse_agent_match,
    parse_blocks,
    parse_call,
)
from ._distributions import Distribution, parse_distribution
from ._errors import ConfigError
from ._faults import Match, parse_match
from ._replay import Transcript, load_transcript
from ._request import ChatRequest, Message
from ._tokenizer import count_tokens, tokenize

# Words whose UTF-8 form has 2, 3 and 4-byte sequences, and emoji built of several code points:
# the characters a naive stream parser splits in half.
MULTIBYTE_WORDS = (
    "café", "naïve", "façade", "Zürich", "São Paulo", "crème brûlée", "smörgåsbord", "jalapeño",
    "Ελλάδα", "Москва", "東京", "你好世界", "데이터", "ありがとう", "€42", "½", "→", "🙂", "🚀",
    "👍🏽", "👩‍💻", "🇫🇷", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
)  # fmt: skip


class AnswerSource(Protocol):
    # A source with a pace of its own (a replay) gives each piece's due time, in seconds after
    # arrival, and its pieces are the stream's chunks; None lets the timing config decide.
    recorded_offsets: tuple[float, ...] | None

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        """The answer as tokens (joined, the text): sources that build text from pre-tokenized
        pieces skip tokenizing it again."""
        ...

    def to_config(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class FixedAnswer:
    recorded_offsets: ClassVar[None] = None
    value: str
    _tokens: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tokens", tuple(tokenize(self.value)))

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        return list(self._tokens)

    def to_config(self) -> dict[str, Any]:
        return {"fixed": self.value}


@dataclass(frozen=True, slots=True)
class EchoAnswer:
    """The last user message, verbatim."""

    recorded_offsets: ClassVar[None] = None

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        return tokenize(request.last_user)

    def to_config(self) -> dict[str, Any]:
        return {"echo": True}


_TEMPLATES = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


@dataclass(frozen=True, slots=True)
class TemplateAnswer:
    """A jinja2 template over `last_user`, `model`, `turn`, `messages` and `seed`."""

    recorded_offsets: ClassVar[None] = None

    source: str
    template: jinja2.Template = field(compare=False)

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        return tokenize(self.text(request, seed))

    def text(self, request: ChatRequest, seed: int) -> str:
        return self.template.render(
            last_user=request.last_user,
            model=request.model,
            turn=request.turn,
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            seed=seed,
        )

    def to_config(self) -> dict[str, Any]:
        return {"template": self.source}


@dataclass(frozen=True, slots=True)
class ProseAnswer:
    """Faker-generated English prose of a drawn length in tokens, with optional multi-byte words."""

    recorded_offsets: ClassVar[None] = None

    length_tokens: Distribution = field(default_factory=lambda: Distribution("lognormal", 60.0, 0.5, 5.0, 400.0))
    multibyte: float = 0.0  # probability that a word is replaced by a multi-byte one
    paragraph_sentences: int = 4

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        target = request.overrides.answer_tokens
        if target is None:
            target = round(self.length_tokens.sample(rng))
        multibyte = self.multibyte if request.overrides.multibyte is None else request.overrides.multibyte
        return generate_prose(target, rng, multibyte, self.paragraph_sentences)

    def to_config(self) -> dict[str, Any]:
        return {
            "prose": {
                "length_tokens": self.length_tokens.to_config(),
                "multibyte": self.multibyte,
                "paragraph_sentences": self.paragraph_sentences,
            }
        }


POOL_SENTENCES = 4096
POOL_BITS = 12  # POOL_SENTENCES == 2**POOL_BITS: an index is one getrandbits call, no rejection loop


@cache
def _faker_words() -> tuple[str, ...]:
    """Faker's English word list, taken once."""
    from faker import Faker  # imported on first use: it takes a while and not every run needs it

    return tuple(Faker("en_US").get_words_list())


@dataclass(frozen=True, slots=True)
class SentencePool:
    """Pre-tokenized sentences: each as it opens a paragraph and as it follows a space.

    Built once per multi-byte share from a fixed seed, so a request's answer is only a seeded
    choice of sentences: no text generation or tokenizing per request. Sentence boundaries fall
    between tokens either way (a sentence ends in punctuation; the next starts with a space or a
    line break), so the joined tokens tokenize back to themselves. Equal tokens are one object: a
    few thousand distinct strings instead of a hundred thousand, so the tokens a burst of
    requests copies and encodes stay in the CPU's cache.
    """

    opening: tuple[tuple[str, ...], ...]
    following: tuple[tuple[str, ...], ...]


@cache
def sentence_pool(multibyte: float) -> SentencePool:
    rng = random.Random(f"mockllm-sentences:{multibyte}")
    vocabulary = _faker_words()
    distinct: dict[str, str] = {}
    opening, following = [], []
    for _ in range(POOL_SENTENCES):
        words = rng.choices(vocabulary, k=rng.randint(4, 14))
        if multibyte:
            words = [rng.choice(MULTIBYTE_WORDS) if rng.random() < multibyte else w for w in words]
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice(".....?!")
        opening.append(tuple(distinct.setdefault(token, token) for token in tokenize(sentence)))
        following.append(tuple(distinct.setdefault(token, token) for token in tokenize(" " + sentence)))
    return SentencePool(tuple(opening), tuple(following))


def warm_up(multibyte: float = 0.0) -> None:
    """Build the sentence pool ahead of the first request."""
    sentence_pool(multibyte)


_PARAGRAPH_BREAK = ("\n", "\n")


def generate_prose(target_tokens: int, rng: random.Random, multibyte: float, paragraph: int) -> list[str]:
    """Exactly `target_tokens` tokens of sentences, a paragraph break every `paragraph` sentences."""
    if target_tokens <= 0:
        return []
    pool = sentence_pool(multibyte)
    opening, following = pool.opening, pool.following
    draw = rng.getrandbits
    tokens = list(opening[draw(POOL_BITS)])
    sentences = 1
    while len(tokens) < target_tokens:
        index = draw(POOL_BITS)
        if sentences % paragraph:
            tokens += following[index]
        else:
            tokens += _PARAGRAPH_BREAK
            tokens += opening[index]
        sentences += 1
    kept = tokens[:target_tokens]
    if not kept[-1].isspace():
        return kept
    # A cut inside a paragraph break leaves trailing white space, which merges into one token when
    # the text is tokenized again. End on a later token instead, one that does not merge with the
    # punctuation before it either (a symbol such as an emoji would).
    prefix = "".join(kept[:-1])
    for candidate in (*(t for t in tokens[target_tokens:] if not t.isspace()), "."):
        if count_tokens(prefix + candidate) == target_tokens:
            return [*kept[:-1], candidate]
    return [*kept[:-1], "."]  # unreachable in practice: "." after a line break is its own token


@dataclass(frozen=True, slots=True)
class ReplayAnswer:
    """A captured stream's chunks, each due at its recorded time divided by `speed`."""

    transcript: Transcript
    source: str  # as written in config: a path or the name of a shipped transcript
    speed: float = 1.0
    recorded_offsets: tuple[float, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        scale = 1.0 / (1000.0 * self.speed)
        object.__setattr__(self, "recorded_offsets", tuple(at * scale for at in self.transcript.at_ms))

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        return list(self.transcript.chunks)

    def to_config(self) -> dict[str, Any]:
        return {"replay": {"transcript": self.source, "speed": self.speed}}


_SAMPLE_REQUEST = ChatRequest(model="sample", messages=(Message("user", "sample"),))


@dataclass(frozen=True, slots=True)
class AnswerRule:
    match: Match
    source: AnswerSource
    agent: AgentMatch | None = None  # conditions on the tools offered and the tool results sent back

    def to_config(self) -> dict[str, Any]:
        match = self.match.to_config()
        if self.agent is not None:
            match.update(self.agent.to_config())
        return {"match": match, "answer": self.source.to_config()}

    def applies(self, request: ChatRequest, last_user: str, model: str, turn: int) -> bool:
        if not self.match.matches(last_user, model, turn):
            return False
        if self.agent is not None and not self.agent.matches(request.agent):
            return False
        # A rule that calls tools answers the user, not the tools' results, unless it says so: the
        # turn after the results is answered in text, so an agent loop ends.
        if self.calls_tools and (self.agent is None or self.agent.tool_result is None):
            return request.agent is None or not request.agent.answered
        return True

    @property
    def calls_tools(self) -> bool:
        return isinstance(self.source, BlocksAnswer) and self.source.calls_tools


def choose(rules: tuple[AnswerRule, ...], default: AnswerSource, request: ChatRequest) -> tuple[AnswerSource, bool]:
    """The first rule's source whose match holds for the last user message, model and turn (and the
    request's tools and tool results, where the rule names them), and whether a rule chose it
    (False: the default)."""
    if rules:
        last_user, model, turn = request.last_user, request.model, request.turn
        for rule in rules:
            if rule.applies(request, last_user, model, turn):
                return rule.source, True
    return default, False


def parse_source(value: Any, key: str) -> AnswerSource:
    """Read one of `{fixed: TEXT}`, `{template: JINJA}`, `{echo: true}`, `{prose: {...}}`,
    `{replay: {transcript: PATH_OR_NAME, speed: X}}`, `{blocks: [...]}`, `{tool_call: {...}}`."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(key, "expected exactly one of fixed, template, echo, prose, replay, blocks, tool_call")
    ((kind, spec),) = value.items()
    if kind == "blocks":
        return parse_blocks(spec, f"{key}.blocks", parse_source)
    if kind == "tool_call":
        return BlocksAnswer((Part("tool_call", call=parse_call(spec, f"{key}.tool_call", parse_source)),))
    if kind == "fixed":
        if not isinstance(spec, str):
            raise ConfigError(f"{key}.fixed", f"expected a string, got {spec!r}")
        return FixedAnswer(spec)
    if kind == "template":
        if not isinstance(spec, str):
            raise ConfigError(f"{key}.template", f"expected a string, got {spec!r}")
        try:
            answer = TemplateAnswer(spec, _TEMPLATES.from_string(spec))
            answer.text(_SAMPLE_REQUEST, 0)  # names it cannot resolve fail now
        except jinja2.TemplateSyntaxError as err:
            raise ConfigError(f"{key}.template", f"template syntax error: {err}") from None
        except jinja2.UndefinedError as err:
            raise ConfigError(f"{key}.template", f"{err}; available: last_user, model, turn, messages, seed") from None
        return answer
    if kind == "echo":
        if spec is not True:
            raise ConfigError(f"{key}.echo", "expected true")
        return EchoAnswer()
    if kind == "prose":
        return _parse_prose(spec or {}, f"{key}.prose")
    if kind == "replay":
        return _parse_replay(spec, f"{key}.replay")
    raise ConfigError(
        f"{key}.{kind}", "unknown answer source; use fixed, template, echo, prose, replay, blocks or tool_call"
    )


def _parse_replay(spec: Any, key: str) -> ReplayAnswer:
    if isinstance(spec, str):
        spec = {"transcript": spec}
    if not isinstance(spec, dict):
        raise ConfigError(key, f"expected a mapping with 'transcript' (and 'speed'), got {spec!r}")
    unknown = sorted(set(spec) - {"transcript", "speed"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown field; use transcript, speed")
    name = spec.get("transcript")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.transcript", f"expected a file path or a shipped transcript's name, got {name!r}")
    speed = spec.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0 < speed <= 1000:
        raise ConfigError(f"{key}.speed", f"expected a number in (0, 1000], got {speed!r}")
    return ReplayAnswer(load_transcript(name, f"{key}.transcript"), name, float(speed))


def _parse_prose(spec: Any, key: str) -> ProseAnswer:
    if not isinstance(spec, dict):
        raise ConfigError(key, f"expected a mapping, got {spec!r}")
    unknown = sorted(set(spec) - {"length_tokens", "multibyte", "paragraph_sentences"})
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}",
            "unknown field; use length_tokens, multibyte, paragraph_sentences",
        )
    default = ProseAnswer()
    multibyte = spec.get("multibyte", default.multibyte)
    if isinstance(multibyte, bool) or not isinstance(multibyte, int | float) or not 0 <= multibyte <= 1:
        raise ConfigError(f"{key}.multibyte", f"expected a probability in [0, 1], got {multibyte!r}")
    paragraph = spec.get("paragraph_sentences", default.paragraph_sentences)
    if isinstance(paragraph, bool) or not isinstance(paragraph, int) or paragraph < 1:
        raise ConfigError(f"{key}.paragraph_sentences", f"expected a whole number >= 1, got {paragraph!r}")
    length = default.length_tokens
    if "length_tokens" in spec:
        length = parse_distribution(spec["length_tokens"], f"{key}.length_tokens")
    return ProseAnswer(length, float(multibyte), paragraph)


def parse_answer_rule(value: Any, key: str) -> AnswerRule:
    if not isinstance(value, dict) or "answer" not in value:
        raise ConfigError(key, "expected a mapping with 'match' and 'answer'")
    unknown = sorted(set(value) - {"match", "answer"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown field; use 'match' and 'answer'")
    match = value.get("match")
    agent = None
    if isinstance(match, dict):
        agent = parse_agent_match(match, f"{key}.match")
        match = {name: field for name, field in match.items() if name not in AGENT_MATCH_KEYS}
    return AnswerRule(
        parse_match(match, f"{key}.match"),
        parse_source(value["answer"], f"{key}.answer"),
        agent,
    )
