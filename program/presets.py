"""Ready LM configurations for the servers our users run.

Each preset is a function returning an ``LMConfig``; endpoint fields (model, api_base, api_key_env)
can be overridden by keyword. Sampling values follow ../shared/METHODS.md (SCALE reference code).

Example:
    >>> from program.config import LMConfig
    >>> LMConfig.preset("qwen3", api_base="http://gpu-box:8000/v1").endpoint.api_base
    'http://gpu-box:8000/v1'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from program.config import LOCAL_MODEL_ALIAS, LOCAL_PORT, Endpoint, ForcingConfig, LMConfig, ModeConfig

__all__ = ["PRESETS"]


def local(**endpoint: Any) -> LMConfig:
    """The embedded llama.cpp server with Qwen2.5-Coder-1.5B-Instruct (no native thinking).

    Greedy decoding as in s1; System 2 is budget-forced thinking over /v1/completions with the
    ChatML template, since the model has no thinking mode of its own.
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


def qwen3(**endpoint: Any) -> LMConfig:
    """One vLLM/SGLang server with a Qwen3 model; System 2 switches thinking on in the chat template.

    Server: ``vllm serve Qwen/Qwen3-32B --reasoning-parser qwen3 --max-model-len 40960``.
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

    Servers: ``vllm serve Qwen/Qwen3-32B --port 8000`` and
    ``vllm serve Qwen/QwQ-32B --port 8001 --reasoning-parser deepseek_r1``. The reasoning model
    always thinks, so its switch is ``none``; its thinking text is read from the server's
    reasoning field (or its ``<think>`` section).
    """
    base = {"model": "openai/Qwen/Qwen3-32B", "api_base": "http://127.0.0.1:8000/v1", **endpoint}
    thinker = Endpoint(model="openai/Qwen/QwQ-32B", api_base="http://127.0.0.1:8001/v1")
    return LMConfig(
        endpoint=Endpoint(**base),
        stages=ModeConfig(temperature=0.7, top_p=0.8, top_k=20, max_tokens=2048),
        system1=ModeConfig(temperature=0.7, top_p=0.8, top_k=20, max_tokens=4096),
        system2=ModeConfig(endpoint=thinker, temperature=0.6, top_p=0.95, top_k=20, max_tokens=32768),
        forcing=ForcingConfig(template="deepseek-r1"),
    )


def api(**endpoint: Any) -> LMConfig:
    """An API provider: a chat model for stages and System 1, a reasoning model for System 2.

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
    "local": local,
    "qwen3": qwen3,
    "reasoning-pair": reasoning_pair,
    "api": api,
}
