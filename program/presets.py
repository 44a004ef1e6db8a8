"""Ready LM configurations for the servers our users run.

Each preset is a function returning an ``LMConfig``; endpoint fields (model, api_base, api_key_env)
can be overridden by keyword. Sampling values follow ../shared/METHODS.md (SCALE reference code).

Example:
    >>> preset("qwen3", api_base="http://gpu-box:8000/v1").endpoint.api_base
    'http://gpu-box:8000/v1'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from program.config import ConfigError, Endpoint, ForcingConfig, LMConfig, ModeConfig, embedded_lm

__all__ = ["PRESETS", "preset"]


def qwen3(**endpoint: Any) -> LMConfig:
    """One vLLM/SGLang server with a Qwen3 model; System 2 switches thinking on in the chat template.

    Serve (docs/SERVERS.md): ``vllm serve Qwen/Qwen3-32B --port 8000 --reasoning-parser qwen3
    --max-model-len 40960 --enable-prompt-tokens-details`` or ``python -m sglang.launch_server --model-path
    Qwen/Qwen3-32B --port 8000 --reasoning-parser qwen3 --enable-cache-report``. Stages and System 1
    get ``enable_thinking: false`` on these servers whatever the served model is named.
    For Qwen3, ``max_tokens`` of System 2 caps thinking and answer together (reference: 32768).
    """
    base = {"model": "openai/Qwen/Qwen3-32B", "api_base": "http://127.0.0.1:8000/v1", **endpoint}
    return LMConfig(
        endpoint=Endpoint(**base),
        stages=ModeConfig(temperature=0.7, top_p=0.8, top_k=20, max_tokens=2048),
        system1=ModeConfig(temperature=0.7, top_p=0.8, top_k=20, max_tokens=4096),
        system2=ModeConfig(temperature=0.6, top_p=0.95, top_k=20, max_tokens=32768, thinking="qwen3"),
        forcing=ForcingConfig(template="qwen3"),
    )


def reasoning_pair(**endpoint: Any) -> LMConfig:
    """A reasoning-only model (QwQ-32B, R1 distills) for System 2, Qwen3 non-thinking for the rest.

    Serve (docs/SERVERS.md): ``vllm serve Qwen/Qwen3-32B --port 8000 --reasoning-parser qwen3
    --max-model-len 40960 --enable-prompt-tokens-details`` and ``vllm serve Qwen/QwQ-32B --port 8001
    --reasoning-parser deepseek_r1 --max-model-len 40960 --enable-prompt-tokens-details``. The reasoning
    model always thinks (``thinking: always``: ``enable_thinking: true``, which QwQ's template reads);
    its thinking text is read from the server's reasoning field (or its ``<think>`` section). QwQ is
    ChatML, so budget forcing uses the ``qwen3`` template.
    """
    base = {"model": "openai/Qwen/Qwen3-32B", "api_base": "http://127.0.0.1:8000/v1", **endpoint}
    thinker = Endpoint(model="openai/Qwen/QwQ-32B", api_base="http://127.0.0.1:8001/v1")
    return LMConfig(
        endpoint=Endpoint(**base),
        stages=ModeConfig(temperature=0.7, top_p=0.8, top_k=20, max_tokens=2048),
        system1=ModeConfig(temperature=0.7, top_p=0.8, top_k=20, max_tokens=4096),
        system2=ModeConfig(endpoint=thinker, temperature=0.6, top_p=0.95, top_k=20, max_tokens=32768,
                           thinking="always"),
        forcing=ForcingConfig(template="qwen3"),
    )


def api(**endpoint: Any) -> LMConfig:
    """An API provider: a chat model for stages and System 1, a reasoning model for System 2.

    Serve: nothing (the provider's API; the key in the variable ``api_key_env`` names).

    Provider reasoning models only allow a cap (reasoning effort), not "Wait" extension.
    """
    base = {"model": "openai/gpt-4.1-mini", "api_key_env": "OPENAI_API_KEY", **endpoint}
    default = Endpoint(**base)
    thinker = Endpoint(model="openai/o4-mini", api_base=default.api_base, api_key_env=default.api_key_env)
    return LMConfig(
        endpoint=default,
        stages=ModeConfig(temperature=0.7, top_p=None, top_k=None, max_tokens=2048),
        system1=ModeConfig(temperature=0.7, top_p=None, top_k=None, max_tokens=4096),
        system2=ModeConfig(endpoint=thinker, temperature=1.0, top_p=None, top_k=None, max_tokens=16384,
                           thinking="effort", reasoning_effort="medium"),
    )


PRESETS: dict[str, Callable[..., LMConfig]] = {
    "local": embedded_lm,
    "qwen3": qwen3,
    "reasoning-pair": reasoning_pair,
    "api": api,
}


def preset(name: str, **endpoint: Any) -> LMConfig:
    """The ready config ``name`` (``local``, ``qwen3``, ``reasoning-pair``, ``api``), endpoint fields overridden.

    Example:
        >>> preset("local").system2.thinking
        'forced'
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown LM preset {name!r}; choose one of {', '.join(sorted(PRESETS))}.")
    return PRESETS[name](**endpoint)
