"""What flows through the ECO server: per-request limits, generation requests, and the events a backend emits.

A backend gets a batch of :class:`GenRequest` (tokenized and limit-checked by the HTTP layer), and reports
through each request's ``emit``: :class:`Flagged` once per request first, then :class:`Delta` pieces of text
and one :class:`Done` per choice (or :class:`Failed`). A choice that asked for log-probabilities carries them
on its ``Done`` (:class:`Logprobs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...errors import BadInput, check_choice, check_range
from ...options import setting

CLASSIFY_AHEAD = ("auto", "on", "off")
"""Values of ``ServeLimits.classify_ahead`` (:func:`forgetlab.eco.serve.engine.classifies_ahead` resolves auto)."""


@dataclass(frozen=True)
class ServeLimits:
    """Per-request and server-wide limits; every one is a CLI option of ``forgetlab eco serve``.

    ``max_concurrent`` counts HTTP generation requests admitted and not yet answered (queued or running);
    one more is refused with 429. ``max_batch_size`` counts rows (choices) per ``generate`` call.
    """

    max_prompt_tokens: int = setting(2048, "Longest prompt accepted, in tokens.")
    max_tokens: int = setting(512, "Largest max_tokens a request may ask for.")
    max_body_bytes: int = setting(1_000_000, "Largest request body, in bytes.")
    max_concurrent: int = setting(64, "Requests in flight before answering 429.")
    max_batch_size: int = setting(16, "Rows per batched generate call.")
    batch_window_ms: float = setting(5.0, "How long the batcher waits to fill a batch, in milliseconds.")
    max_n: int = setting(8, "Largest n (choices per prompt) a request may ask for.")
    max_logprobs: int = setting(20, "Largest logprobs (completions) or top_logprobs (chat) a request may ask "
                                "for.")
    classify_ahead: str = setting("auto", "When to run the flag rule on queued requests in a thread of its own "
                                  "while the current batch generates: on; off (the batch worker classifies each "
                                  "batch first); auto: on unless the model generates in this process on the "
                                  "CPU, where the two threads compete for the same cores (measured: "
                                  "docs/benchmarks/serve.md).", choices=CLASSIFY_AHEAD)

    def __post_init__(self) -> None:
        for name in ("max_prompt_tokens", "max_tokens", "max_body_bytes", "max_concurrent",
                     "max_batch_size", "max_n", "max_logprobs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(name, value, "an integer >= 1")
        check_range("batch_window_ms", self.batch_window_ms, 0.0, 10_000.0, hi_open=False)
        check_choice("classify_ahead", self.classify_ahead, CLASSIFY_AHEAD)


@dataclass(frozen=True)
class Flagged:
    """The classifier's verdict for one request (sent before any text)."""

    flagged: bool


@dataclass(frozen=True)
class Delta:
    """New text of choice ``index``."""

    index: int
    text: str


@dataclass(frozen=True)
class Logprobs:
    """Log-probabilities of one choice's tokens ``[T]``: the echoed prompt's first (``n_prompt`` of them; the
    first has no log-prob: nothing predicts it), then the generated tokens; ``top`` holds the most likely
    ``(token id, log-prob)`` pairs at each position (None for the first prompt token). ``context``: the prompt
    tokens before ``token_ids`` (the prompt's tail when it is not echoed), to read the first tokens' text."""

    token_ids: list[int]
    logprobs: list[float | None]
    top: list[list[tuple[int, float]] | None]
    n_prompt: int = 0
    context: tuple[int, ...] = ()


@dataclass(frozen=True)
class Done:
    """Choice ``index`` finished: ``finish_reason`` is ``stop`` or ``length``; ``logprobs`` when asked for."""

    index: int
    finish_reason: str
    completion_tokens: int
    logprobs: Logprobs | None = None


@dataclass(frozen=True)
class Failed:
    """The backend failed on this request; ``message`` is safe to show (no prompt content)."""

    message: str


Event = Flagged | Delta | Done | Failed


@dataclass
class GenRequest:
    """One prompt with its sampling settings; ``n`` choices numbered ``index_base .. index_base + n - 1``.

    ``classify_text`` is what the classifier sees (the raw prompt, or a chat's message contents).
    ``logprobs``: None (not asked), else how many alternatives per position (0 = only the chosen token);
    ``echo``: score the prompt's own tokens too (``max_tokens`` may then be 0: score only).
    """

    prompt_ids: list[int]
    classify_text: str
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    logprobs: int | None = None
    echo: bool = False
    index_base: int = 0
    emit: Callable[[Event], None] = field(default=lambda event: None, repr=False)
    cancelled: bool = False
    flagged: bool | None = None

    def rows(self) -> int:
        return self.n


class Backend(Protocol):
    """Runs one batch of requests in the worker thread, reporting through each request's ``emit``.

    ``supports_logprobs``: whether it honours ``logprobs`` and ``echo`` (the HTTP layer refuses them
    otherwise, naming the field)."""

    name: str
    supports_logprobs: bool

    def run_batch(self, requests: list[GenRequest]) -> None: ...
