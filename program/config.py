"""Frozen, validated configuration: how to reach the models, and how each method spends tokens.

Every config is a frozen dataclass validated on construction, so a bad value fails where it is
written, with the field name, the value and what was expected. ``program.config_data.from_dict``
builds any of them from plain data (a YAML/JSON file) and rejects unknown keys by name.

Example:
    >>> lm = embedded_lm()
    >>> lm.system2.thinking
    'forced'
    >>> ScaleConfig(threshold=0.2).threshold
    0.2
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from program.config_methods import InftyThinkConfig, VoteConfig
from program.names import (
    ATTEMPT_CONFIDENCES,
    CONTEXTS,
    DIFFICULTY_MODES,
    DIFFICULTY_SOURCES,
    FORCING_TRANSPORTS,
    METHODS,
    STEP_LAYOUTS,
    SYSTEM2_KINDS,
    AttemptConfidence,
    ContextKind,
    DifficultyMode,
    DifficultySourceName,
    ForcingTransport,
    StepLayout,
    System2Kind,
)
from program.validation import ConfigError, check, check_known_keys, check_positive, check_probability

__all__ = [
    "ConfigError",
    "Endpoint",
    "SERVER_KINDS",
    "ServerKind",
    "ModeConfig",
    "ForcingConfig",
    "LMConfig",
    "embedded_lm",
    "ScaleConfig",
    "VoteConfig",
    "InftyThinkConfig",
    "ProgramConfig",
    "METHODS",
    "check_known_keys",
    "THINKING_SWITCHES",
    "LOCAL_MODEL_ALIAS",
    "LOCAL_PORT",
]

ThinkingSwitch = Literal["none", "qwen3", "always", "effort", "forced"]
THINKING_SWITCHES: tuple[str, ...] = get_args(ThinkingSwitch)
# Which server answers an endpoint; the rules that differ per server key on it (program.clients.servers).
ServerKind = Literal["vllm", "sglang", "llama.cpp", "provider", "other"]
SERVER_KINDS: tuple[str, ...] = get_args(ServerKind)
LOCAL_MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
LOCAL_PORT = 8765


@dataclass(frozen=True)
class Endpoint:
    """How to reach one model server.

    Args:
        model: litellm model name, e.g. ``"openai/Qwen/Qwen3-32B"`` for an OpenAI-compatible server.
        api_base: the server's base URL (``http://127.0.0.1:8000/v1``); None for a provider default.
        api_key_env: NAME of the environment variable holding the key. The key itself is never
            stored, logged or saved.
        timeout: seconds for one request.
        retries: retries on connection errors, timeouts, HTTP 429 and 5xx (exponential backoff).
        context_window: the model's context window in tokens; every request's ``max_tokens`` is
            clamped to it minus the prompt (``program.clients.context``). None: ask the server's model list
            (vLLM reports ``max_model_len``); no clamp when it does not say.
        server: which server this is (``vllm``, ``sglang``, ``llama.cpp``, ``provider``, ``other``).
            None: detected once per endpoint from the server's own answers (``program.clients.servers``).
        api_bases: several replicas of one model (e.g. four vLLM servers): requests are spread over
            them, a failing one is cooled down and its request retried on another
            (``program.clients.replicas``). ``api_base`` defaults to the first; give one or the other.
        max_concurrency: requests sent to each server (replica) at once by this process, all its
            worker threads together (``program.clients.limits``). None: the server's slot count where
            it reports one (llama.cpp ``/props``), else a default by server kind; a server of unknown
            kind gets no limit and one request at a time inside a problem, as before (docs/concurrency.md).
    """

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    timeout: float = 600.0
    retries: int = 3
    context_window: int | None = None
    api_bases: tuple[str, ...] = ()
    max_concurrency: int | None = None
    server: ServerKind | None = None

    def __post_init__(self) -> None:
        check(self.server is None or self.server in SERVER_KINDS,
              f"`server={self.server!r}` must be one of {', '.join(SERVER_KINDS)} (or left out to detect it).")
        bases = (self.api_bases,) if isinstance(self.api_bases, str) else tuple(self.api_bases or ())
        check(all(isinstance(b, str) and b.startswith(("http://", "https://")) for b in bases),
               f"`api_bases` must be a list of server URLs like http://gpu1:8000/v1; got {list(bases)!r}.")
        check(len(set(bases)) == len(bases), f"`api_bases` lists a server twice: {list(bases)!r}.")
        check(not bases or self.api_base in (None, bases[0]),
               "give `api_base` (one server) or `api_bases` (replicas), not both.")
        object.__setattr__(self, "api_bases", bases)  # a YAML list becomes a tuple: the config stays hashable
        if bases and self.api_base is None:
            object.__setattr__(self, "api_base", bases[0])
        check(isinstance(self.model, str) and "/" in self.model,
               f"`model={self.model!r}` must be a litellm model name with a provider prefix, "
               "e.g. 'openai/Qwen/Qwen3-32B' for an OpenAI-compatible server.")
        check_positive("timeout", self.timeout)
        check_positive("retries", self.retries, allow_zero=True)
        check_positive("context_window", self.context_window)
        check(self.max_concurrency is None or (isinstance(self.max_concurrency, int)
                                                and not isinstance(self.max_concurrency, bool)
                                                and self.max_concurrency >= 1),
              f"`max_concurrency={self.max_concurrency!r}` must be a whole number >= 1 (requests at once per "
              "server), or left out to take the server's slot count.")
        if self.api_key_env is not None:
            name = self.api_key_env
            # Not echoed whole: a value that is no variable name may well be the key itself.
            check(name.replace("_", "").isalnum(),
                   f"`api_key_env` must be the NAME of an environment variable (like OPENAI_API_KEY), not the "
                   f"key itself; got {name[:3]!r}... ({len(name)} characters, the rest not shown).")


@dataclass(frozen=True)
class ModeConfig:
    """Sampling and thinking settings of one system (stages, System 1 or System 2).

    Args:
        endpoint: a server of its own (a QwQ/R1 reasoning server for System 2); None = the default.
        max_tokens: cap on the visible answer (for forced thinking: the answer after thinking).
        thinking: how thinking is switched on: ``none`` (the model must not think: vLLM, SGLang and
            llama.cpp endpoints get ``enable_thinking: false``), ``qwen3`` (thinks on request:
            ``enable_thinking: true``), ``always`` (a reasoning-only model such as QwQ, an R1 distill or
            Qwen3-Thinking: ``true`` on those servers, nothing elsewhere), ``effort`` (provider
            reasoning effort / thinking budget; a cap only), ``forced`` (s1 budget forcing over text
            continuation). The switch follows the server kind (``program.clients.servers``), never
            the model's name.
        thinking_budget: cap on thinking tokens (``forced``, ``effort`` with a token budget).
    """

    endpoint: Endpoint | None = None
    temperature: float = 0.7
    top_p: float | None = 0.8
    top_k: int | None = 20
    max_tokens: int = 512
    thinking: ThinkingSwitch = "none"
    thinking_budget: int = 0
    reasoning_effort: str | None = None

    def __post_init__(self) -> None:
        check(isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 2.0,
               f"`temperature={self.temperature!r}` must be in [0, 2].")
        check_probability("top_p", self.top_p)
        check_positive("top_k", self.top_k)
        check_positive("max_tokens", self.max_tokens)
        check(self.thinking in THINKING_SWITCHES,
               f"`thinking={self.thinking!r}` must be one of {', '.join(THINKING_SWITCHES)}.")
        check_positive("thinking_budget", self.thinking_budget, allow_zero=True)
        check(self.thinking != "forced" or self.thinking_budget > 0,
               "`thinking='forced'` needs `thinking_budget` > 0 (the s1 cap on thinking tokens).")
        check(self.reasoning_effort in (None, "low", "medium", "high", "minimal"),
               f"`reasoning_effort={self.reasoning_effort!r}` must be low, medium, high or minimal.")


@dataclass(frozen=True)
class ForcingConfig:
    """s1 budget forcing (arXiv 2501.19393): how thinking is capped and extended.

    Args:
        num_waits: times the end of thinking is suppressed and ``wait`` appended (0 = cap only).
        wait: the string appended to continue thinking.
        final_answer: appended after the end-of-thinking marker when the cap is hit.
        transport: ``completions`` (/v1/completions with a client-side chat template) or
            ``prefill`` (chat with assistant prefill, vLLM/SGLang ``continue_final_message``).
        template: chat template for ``completions``: chatml, qwen3, llama3, deepseek-r1, or a path
            to a Jinja file.
        answer_max_tokens: cap on the answer after thinking; None = the mode's ``max_tokens`` (the
            request's, when DSPy sets one). s1's harness allows 32768; a boxed answer with a short
            justification needs a few hundred. The cap used is recorded with each answer call.
        min_tokens_after_wait: ``min_tokens`` sent with each thinking segment after a "Wait" (s1's
            README; vLLM and SGLang accept it, llama.cpp ignores it), so the model cannot end thinking
            at once again. 0 sends nothing, for a server that rejects unknown fields.
        force_empty_answer: after a natural end of thinking, an empty answer gets ``final_answer``
            appended and exactly one more continuation (False: keep the empty answer).
    """

    num_waits: int = 0
    wait: str = "Wait"
    final_answer: str = "Final Answer:"
    transport: ForcingTransport = "completions"
    template: str = "chatml"
    answer_max_tokens: int | None = None
    min_tokens_after_wait: int = 1
    force_empty_answer: bool = True

    def __post_init__(self) -> None:
        check_positive("num_waits", self.num_waits, allow_zero=True)
        check_positive("answer_max_tokens", self.answer_max_tokens)
        check_positive("min_tokens_after_wait", self.min_tokens_after_wait, allow_zero=True)
        check(bool(self.wait.strip()), "`wait` must be a non-empty string such as 'Wait'.")
        check(self.transport in FORCING_TRANSPORTS, _one_of("transport", self.transport, FORCING_TRANSPORTS))


@dataclass(frozen=True)
class LMConfig:
    """Everything needed to reach the models: one default endpoint and three modes.

    ``stages`` runs decomposition, selection and difficulty; ``system1`` is the fast non-thinking
    solver; ``system2`` the slow thinking solver. ``embedded`` = use (and start if needed) the
    local llama.cpp server.
    """

    endpoint: Endpoint
    stages: ModeConfig = field(default_factory=ModeConfig)
    system1: ModeConfig = field(default_factory=ModeConfig)
    system2: ModeConfig = field(default_factory=lambda: ModeConfig(thinking="qwen3", temperature=0.6, top_p=0.95))
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    embedded: bool = False

    def endpoint_for(self, mode: ModeConfig) -> Endpoint:
        return mode.endpoint or self.endpoint

    def with_overrides(self, *, model: str | None = None, api_base: str | None = None,
                       api_key_env: str | None = None) -> LMConfig:
        """Point the default endpoint elsewhere (the CLI's --model/--api-base/--api-key-env)."""
        if model is None and api_base is None and api_key_env is None:
            return self
        changes: dict[str, Any] = {k: v for k, v in (("model", model), ("api_base", api_base),
                                                     ("api_key_env", api_key_env)) if v is not None}
        if api_base is not None:  # --api-base URL, or URL1,URL2,... for replicas
            bases = tuple(b.strip() for b in api_base.split(",") if b.strip())
            changes["api_base"], changes["api_bases"] = bases[0] if bases else api_base, bases if len(bases) > 1 else ()
        # A user naming their own server no longer wants the embedded one started.
        return replace(self, endpoint=replace(self.endpoint, **changes), embedded=False)


def embedded_lm(**endpoint: Any) -> LMConfig:
    """The embedded default: the local llama.cpp server with Qwen2.5-Coder-1.5B-Instruct (no native thinking).

    Greedy decoding as in s1; System 2 is budget-forced thinking over /v1/completions with the
    ChatML template, since the model has no thinking mode of its own. Endpoint fields can be
    overridden by keyword (then the server is the user's, not started for them). It is the
    ``local`` preset (``program.presets``) and every ``ProgramConfig``'s default LM. Serve
    (docs/SERVERS.md): ``scale serve``, or nothing: every command starts the embedded server when none runs.

    Example:
        >>> embedded_lm().embedded, embedded_lm(api_base="http://gpu-box:8765/v1").embedded
        (True, False)
    """
    base = {"model": f"openai/{LOCAL_MODEL_ALIAS}", "api_base": f"http://127.0.0.1:{LOCAL_PORT}/v1",
            "timeout": 300.0, **endpoint}
    return LMConfig(
        endpoint=Endpoint(**base),
        stages=ModeConfig(temperature=0.0, top_p=None, top_k=None, max_tokens=256),
        system1=ModeConfig(temperature=0.0, top_p=None, top_k=None, max_tokens=320),
        system2=ModeConfig(temperature=0.0, top_p=None, top_k=None, max_tokens=160,
                           thinking="forced", thinking_budget=384),
        forcing=ForcingConfig(template="chatml"),
        embedded=not endpoint,
    )


@dataclass(frozen=True)
class ScaleConfig:
    """The SCALE knobs (arXiv 2512.00466). Defaults follow ../shared/METHODS.md, 'Our default'.

    Args:
        threshold: tau. A step goes to System 2 when its score > tau (strict). tau = 1 routes all to
            System 1, tau = -1 all to System 2. Reference code default 0.5; the paper's best 0.2.
        num_candidates: k decompositions sampled; k > 1 adds a selection call (reference: 8).
        candidate_temperature: sampling temperature of the k > 1 candidates (greedy decoding would
            make them identical whatever their seeds); k = 1 uses the stages' own temperature.
        rewrite: first rewrite the problem into conditions + question; the last step becomes the question.
        difficulty_mode: ``upfront`` (all steps scored from the plan) or ``solved_context``.
        difficulty_retries: extra attempts when a score is unparsable.
        fallback_difficulty: the score used when every attempt failed (1.0: route to System 2, the
            safe side: an unrated step gets the careful solver unless tau >= 1).
        last_step_score: the reference code forces the last step's score to 0.9, so the final step
            runs in System 2 unless tau >= 0.9. None turns the rule off.
        context: what a step sees of earlier steps: ``full`` visible answers or ``final_value`` only.
        step_layout: what a step sees of the problem when ``rewrite`` gave conditions:
            ``conditions`` (reference code: the rewritten conditions, the earlier steps, the current
            sub-problem as the question; the original question is not shown) or ``problem`` (the
            full original problem, question included). Without conditions every step sees the problem.
        max_steps: a plan longer than this is asked for once more with the limit stated; if the reply
            is still too long (or unreadable) every step of the first plan is kept, with a warning.
            Steps are never dropped. None: no limit (reference code).
        range_min_steps, range_max_steps: the range the decomposition instruction asks for ("Use 2
            to 5 sub-problems; a simple problem needs fewer."), capped at ``max_steps``; None for both: no
            range (reference).
        difficulty_source: where a step's score comes from (``program.scale.sources``): ``rating`` (the
            prompted score, reference), ``rating_logprobs`` (the expected digit of a one-token rating;
            needs logprobs), ``attempt`` (System 1 tries first; its attempt shows the difficulty, and a
            step above tau is re-solved by System 2), ``learned`` (a model fitted by ``scale calibrate``).
        attempt_confidence: what an attempt that gave a boxed answer within its cap scores: ``length``
            (tokens / cap), ``deepconf`` (lowest sliding-window confidence), ``mean_logprob``, or
            ``agreement`` (1 - largest agreeing share of ``attempt_samples`` samples).
        attempt_samples: System 1 samples per attempt for ``agreement`` (the first is the greedy one).
        attempt_temperature: the temperature of the extra ``agreement`` samples.
        confidence_window: DeepConf's sliding window, in tokens (small: steps are short).
        learned_path: the JSON file of a ``learned`` source (written by ``scale calibrate --fit learned``).
        system2_kind: what System 2 is: ``think`` (the System 2 LM, thinking as its mode says) or
            ``vote`` (up to ``vote.samples`` samples with adaptive stopping, ``program.voting``; for
            models without a thinking mode).
    """

    threshold: float = 0.5
    num_candidates: int = 1
    candidate_temperature: float = 0.7
    rewrite: bool = False
    difficulty_mode: DifficultyMode = "upfront"
    difficulty_retries: int = 2
    fallback_difficulty: float = 1.0
    last_step_score: float | None = 0.9
    context: ContextKind = "full"
    step_layout: StepLayout = "conditions"
    max_steps: int | None = 6
    range_min_steps: int | None = 2
    range_max_steps: int | None = 5
    difficulty_source: DifficultySourceName = "rating"
    attempt_confidence: AttemptConfidence = "length"
    attempt_samples: int = 3
    attempt_temperature: float = 0.7
    confidence_window: int = 16
    learned_path: str | None = None
    system2_kind: System2Kind = "think"

    def __post_init__(self) -> None:
        check(isinstance(self.threshold, (int, float)) and -1.0 <= self.threshold <= 1.0,
               f"`threshold={self.threshold!r}` must be in [-1, 1] (-1: all System 2, 1: all System 1).")
        check_positive("num_candidates", self.num_candidates)
        check(isinstance(self.candidate_temperature, (int, float)) and 0.0 <= self.candidate_temperature <= 2.0,
               f"`candidate_temperature={self.candidate_temperature!r}` must be in [0, 2].")
        check(self.difficulty_mode in DIFFICULTY_MODES,
              _one_of("difficulty_mode", self.difficulty_mode, DIFFICULTY_MODES))
        check_positive("difficulty_retries", self.difficulty_retries, allow_zero=True)
        check_probability("fallback_difficulty", self.fallback_difficulty)
        check_probability("last_step_score", self.last_step_score)
        check(self.context in CONTEXTS, _one_of("context", self.context, CONTEXTS))
        check(self.step_layout in STEP_LAYOUTS, _one_of("step_layout", self.step_layout, STEP_LAYOUTS))
        check_positive("max_steps", self.max_steps)
        check_positive("range_min_steps", self.range_min_steps)
        check_positive("range_max_steps", self.range_max_steps)
        lo, hi = self.range_min_steps, self.range_max_steps
        check((lo is None) == (hi is None) and (lo is None or hi is None or lo <= hi),
               f"`range_min_steps={lo!r}`, `range_max_steps={hi!r}`: set both (min <= max) or neither.")
        check(self.difficulty_source in DIFFICULTY_SOURCES,
              _one_of("difficulty_source", self.difficulty_source, DIFFICULTY_SOURCES))
        check(self.attempt_confidence in ATTEMPT_CONFIDENCES,
              _one_of("attempt_confidence", self.attempt_confidence, ATTEMPT_CONFIDENCES))
        check_positive("attempt_samples", self.attempt_samples)
        check(isinstance(self.attempt_temperature, (int, float)) and 0.0 < self.attempt_temperature <= 2.0,
               f"`attempt_temperature={self.attempt_temperature!r}` must be in (0, 2]: the extra samples must differ.")
        check_positive("confidence_window", self.confidence_window)
        check(self.system2_kind in SYSTEM2_KINDS, _one_of("system2_kind", self.system2_kind, SYSTEM2_KINDS))
        check(self.difficulty_source != "learned" or bool(self.learned_path),
               "`difficulty_source='learned'` needs `learned_path`: the JSON file written by "
               "`scale calibrate --fit learned`.")


def _one_of(name: str, value: object, names: tuple[str, ...]) -> str:
    """The error for a name outside its set (``program.names``)."""
    return f"`{name}={value!r}` must be one of {', '.join(names)}."


@dataclass(frozen=True)
class ProgramConfig:
    """One runnable method with everything it needs: the saved-beside-the-program config.

    ``method``: scale, cot, vote (majority), inftythink, bf (s1 budget forcing alone),
    system1 / system2 (uniform SCALE: tau = 1 / tau = -1).
    """

    method: str = "scale"
    lm: LMConfig = field(default_factory=embedded_lm)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    inftythink: InftyThinkConfig = field(default_factory=InftyThinkConfig)

    def __post_init__(self) -> None:
        check(self.method in METHODS, f"`method={self.method!r}` must be one of {', '.join(METHODS)}.")
