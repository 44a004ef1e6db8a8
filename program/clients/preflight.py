"""The preflight of ``scale check``: a few short requests that say whether a server does what a config needs.

Per endpoint of the config (a reasoning pair has two), one ``Check`` each for:

- ``server``: its kind and version, declared or detected, and from what;
- ``thinking <mode>``: for each chat mode on it, whether the thinking switch took effect (``none``: no
  reasoning came back; ``qwen3``/``always``: reasoning came back). The switch sent is the one a run
  sends (``program.clients.servers.thinking_switch``);
- ``reasoning``: where the thinking arrives (a ``reasoning`` or ``reasoning_content`` field, ``<think>``
  tags in the content, or nowhere);
- ``cached tokens``: whether a repeated prompt's reused tokens are reported, and the flag that turns it on;
- ``context``: the window and where it came from (``program.clients.context.window_source``);
- ``completions`` / ``prefill``: whether the transport budget forcing and cut-off answers use works
  with our client-side template.

A status is ``ok``, ``FAIL`` (with the fix), ``warn`` (works, at a cost the line names), ``unknown`` (it
could not be decided, and the line says why: never "ok") or ``skip`` (not used by this config).

Example:
    >>> print(Check("context", "unknown", "no window reported", "set lm.endpoint.context_window").line())
    unknown  context          no window reported; fix: set lm.endpoint.context_window
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from program.clients import probe, servers
from program.clients.context import window_source
from program.config import ConfigError, Endpoint, LMConfig, ModeConfig

__all__ = ["Check", "failed", "run_checks"]

Status = Literal["ok", "FAIL", "warn", "unknown", "skip"]
ROLES = ("stages", "system1", "system2")
QUESTION = [{"role": "user", "content": "What is 2 + 3? Reply with the number only."}]
# A prompt long enough to fill whole prefix-cache blocks (vLLM caches 16-token blocks): its second
# sending reuses most of it wherever prefix caching is on.
_LONG = " ".join(f"Step {i}: add {i} apples to the basket and write down the new total." for i in range(1, 25))
CACHE_PROMPT = [{"role": "user", "content": _LONG + " How many apples are in the basket? Reply with the number only."}]
# Flags that make each kind report reused prompt tokens (docs/SERVERS.md, program.testing.servermodes).
CACHE_FLAGS = {"vllm": "start vLLM with --enable-prompt-tokens-details (prefix caching on, vLLM's default)",
               "sglang": "start SGLang with --enable-cache-report",
               "llama.cpp": "llama-server sends timings.cache_n with every reply; this one did not: use a current "
                            "llama.cpp build"}


@dataclass(frozen=True)
class Check:
    """One line of ``scale check``: what was checked, its status, what was seen and the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<8} {self.name:<16} {self.detail}" + (f"; fix: {self.fix}" if self.fix else "")


def failed(checks: list[Check]) -> list[Check]:
    """The checks that failed (what ``--strict`` refuses to start on)."""
    return [c for c in checks if c.status == "FAIL"]


def run_checks(config: LMConfig) -> list[Check]:
    """Every check of ``config``'s endpoints, in order: each endpoint's server line, then its other checks."""
    groups: dict[Endpoint, list[tuple[str, ModeConfig]]] = {}
    for role in ROLES:
        mode = getattr(config, role)
        groups.setdefault(config.endpoint_for(mode), []).append((role, mode))
    checks: list[Check] = []
    for endpoint, modes in groups.items():
        checks.extend(_endpoint_checks(config, endpoint, modes))
    return checks


def _endpoint_checks(config: LMConfig, endpoint: Endpoint, modes: list[tuple[str, ModeConfig]]) -> list[Check]:
    if not endpoint.api_base:
        reason = "a provider API (no api_base): these checks read self-hosted servers' replies"
        return [Check("server", "ok", f"{endpoint.model}: provider (litellm's default URL)"),
                *(Check(name, "skip", reason) for name in ("thinking", "cached tokens", "context", "completions"))]
    server, reached = _server(endpoint)
    if not reached:
        return [server, Check("other checks", "unknown", f"not run: {endpoint.api_base} did not answer")]
    kind = servers.server_kind(endpoint)
    checks = [server]
    arrivals: list[str] = []
    for role, mode in modes:
        check, where = _thinking(endpoint, kind, role, mode)
        checks.append(check)
        if where is not None:
            arrivals.append(where)
    checks.append(_reasoning(modes, arrivals))
    checks.append(_cached(endpoint, kind))
    checks.append(_context(endpoint))
    checks.append(_forcing(config, endpoint, kind, modes))
    return checks


def _server(endpoint: Endpoint) -> tuple[Check, bool]:
    """The server line, and whether the server answered at all."""
    listing = probe.get(endpoint, str(endpoint.api_base).rstrip("/") + "/models")
    if listing.status == 0:
        return Check("server", "FAIL", f"{endpoint.api_base}: {listing.error}",
                     "start the server (docs/SERVERS.md lists the serve commands) or correct --api-base"), False
    owned = servers.kind_from_models(listing.body) if listing.ok else None
    said = f'GET /v1/models owned_by "{_owner(listing.body)}"' if listing.ok else f"GET /v1/models {listing.why()}"
    found = servers.identity(endpoint)  # vLLM /version, SGLang /get_server_info, llama.cpp /props
    kind, version = found.kind, found.version
    named = f"{endpoint.api_base}: {kind}" + (f" {version}" if version else " (version not reported)")
    if endpoint.server is not None:
        if owned is not None and owned != endpoint.server:
            return Check("server", "FAIL", f"{named}, declared, but {said}",
                         f"set lm.endpoint.server: {owned} (or leave it out to detect it)"), True
        return Check("server", "ok", f"{named}, declared (lm.endpoint.server); {said}"), True
    if kind == "other":
        return Check("server", "unknown", f"{endpoint.api_base}: not vLLM, SGLang or llama.cpp by {said}, so no "
                     "thinking switch or per-server rule applies",
                     "if it is one of them, declare lm.endpoint.server (vllm, sglang, llama.cpp)"), True
    return Check("server", "ok", f"{named}, detected from {said}"), True


def _owner(listing: object) -> str:
    models = listing.get("data") if isinstance(listing, dict) else None
    owners = [m.get("owned_by") for m in models or [] if isinstance(m, dict)]
    return str(owners[0]) if owners else ""


def _chat_body(endpoint: Endpoint, kind: str, mode: ModeConfig, messages: list[dict[str, str]],
               max_tokens: int) -> dict[str, object]:
    body: dict[str, object] = {"model": probe.served_name(endpoint), "messages": messages, "max_tokens": max_tokens,
                               "temperature": 0.0}
    switch = servers.thinking_switch(kind, mode.thinking)
    if switch is not None:
        body["chat_template_kwargs"] = {"enable_thinking": switch}
    return body


def _thinking(endpoint: Endpoint, kind: str, role: str, mode: ModeConfig) -> tuple[Check, str | None]:
    """Whether ``mode``'s switch took effect; and where the reasoning came (for a thinking mode)."""
    name = f"thinking {role}"
    if mode.thinking == "forced":
        return Check(name, "skip", "budget-forced: thinking is opened in our own prompt (see completions)"), None
    if mode.thinking == "effort":
        return Check(name, "skip", "reasoning effort: the provider decides how it thinks"), None
    thinks = mode.thinking in ("qwen3", "always")
    switch = servers.thinking_switch(kind, mode.thinking)
    sent = "no switch sent" if switch is None else f"enable_thinking: {str(switch).lower()} sent"
    reply = probe.post(endpoint, "/chat/completions", _chat_body(endpoint, kind, mode, QUESTION,
                                                                 1024 if thinks else 256))
    if not reply.ok:
        return Check(name, "FAIL", f"{mode.thinking}: {sent}; the request failed: {reply.why()}",
                     "serve the model with its own chat template (llama.cpp: --jinja)"), None
    where = probe.where_reasoning(reply.body)
    finish = ((reply.body.get("choices") or [{}])[0] or {}).get("finish_reason")
    if thinks:
        content = (((reply.body.get("choices") or [{}])[0] or {}).get("message") or {}).get("content")
        if where in ("reasoning", "reasoning_content") and finish == "stop" and not (content or "").strip():
            # vLLM's qwen3 parser (since PR #35230) makes a reply with no </think> all reasoning: a
            # model that stopped without ending its thinking gave no answer, or never thought at all.
            return Check(name, "FAIL", f"{mode.thinking}: {sent}; the whole reply came as reasoning and no answer "
                         "(the model stopped without </think>)",
                         "if this model does not think, set this mode's thinking to none or forced"), None
        if where is not None:
            return Check(name, "ok", f"{mode.thinking}: {sent}, reasoning came back"), where
        if finish == "length":
            return Check(name, "unknown", f"{mode.thinking}: {sent}; cut off at 1024 tokens with no reasoning field "
                         "or think tags, so it cannot be told whether it thought"), None
        return Check(name, "FAIL", f"{mode.thinking}: {sent}, but no reasoning came back",
                     "serve a thinking model with its reasoning parser (vLLM/SGLang --reasoning-parser qwen3, "
                     "llama.cpp --jinja), or set this mode's thinking to none or forced"), None
    if where is not None:
        fix = ("the server ignores enable_thinking: serve the model with a chat template that reads it "
               "(the model's own; llama.cpp: --jinja)") if switch is not None else (
               "declare lm.endpoint.server (vllm, sglang, llama.cpp) so enable_thinking: false is sent")
        return Check(name, "FAIL", f"none: {sent}, but reasoning came back ({where})", fix), None
    if finish == "length":
        return Check(name, "unknown", f"none: {sent}; no reasoning field or tags, but a one-number answer ran to "
                     "its 256-token cap: the model may be thinking in its content"), None
    return Check(name, "ok", f"none: {sent}, no reasoning came back"), None


def _reasoning(modes: list[tuple[str, ModeConfig]], arrivals: list[str]) -> Check:
    if not any(m.thinking in ("qwen3", "always") for _, m in modes):
        return Check("reasoning", "skip", "no mode on this server thinks over chat")
    if not arrivals:
        return Check("reasoning", "unknown", "no thinking reply came back to read it from (see the thinking lines)")
    described = {"reasoning": "the `reasoning` field (vLLM)", "reasoning_content": "the `reasoning_content` field",
                 "tags": "<think> tags in the content (no reasoning parser: split by us)"}
    return Check("reasoning", "ok", "arrives in " + ", ".join(sorted({described[a] for a in arrivals})))


def _cached(endpoint: Endpoint, kind: str) -> Check:
    """Send one prompt twice; the second reply should say how many prompt tokens it reused."""
    body = _chat_body(endpoint, kind, ModeConfig(), CACHE_PROMPT, 1)
    first = probe.post(endpoint, "/chat/completions", body)
    second = probe.post(endpoint, "/chat/completions", body) if first.ok else first
    if not second.ok:
        return Check("cached tokens", "unknown", f"the request failed: {second.why()}")
    found = probe.cached_tokens(second.body)
    if found is not None:
        prompt = (second.body.get("usage") or {}).get("prompt_tokens")
        return Check("cached tokens", "ok", f"reported: {found[0]} of {prompt} prompt tokens reused on the "
                     f"second identical prompt ({found[1]})")
    if kind in CACHE_FLAGS:
        return Check("cached tokens", "FAIL", "not reported on a repeated prompt (summaries show n/a)",
                     CACHE_FLAGS[kind])
    return Check("cached tokens", "warn", f"not reported, and no flag is known for a server of kind {kind} "
                 "(summaries show n/a)")


def _context(endpoint: Endpoint) -> Check:
    window, source = window_source(endpoint)
    if window is None:
        return Check("context", "unknown", f"window not known ({source}): max_tokens are not clamped",
                     "set lm.endpoint.context_window to the server's window (vLLM --max-model-len)")
    return Check("context", "ok", f"{window} tokens ({source})")


def _forcing(config: LMConfig, endpoint: Endpoint, kind: str, modes: list[tuple[str, ModeConfig]]) -> Check:
    """The transport of budget forcing (``forced`` modes) and of cut-off answers (thinking modes on a
    self-hosted server: always /v1/completions, ``program.clients.cutoff``)."""
    forced = any(m.thinking == "forced" for _, m in modes)
    cut_off = kind in servers.SELF_HOSTED and any(m.thinking in ("qwen3", "always") for _, m in modes)
    if not forced and not cut_off:
        return Check("completions", "skip", "no mode on this server forces thinking or answers cut-off thinking")
    if forced and config.forcing.transport == "prefill":
        return _prefill(config, endpoint)
    return _completions(config, endpoint, "budget forcing" if forced else "answers to cut-off thinking")


def _completions(config: LMConfig, endpoint: Endpoint, use: str) -> Check:
    from program.clients.templates import get_template

    if endpoint.model.partition("/")[0] not in ("openai", "text-completion-openai", "hosted_vllm"):
        return Check("completions", "FAIL", f"{use} need /v1/completions, and {endpoint.model} is not an "
                     "OpenAI-compatible server's model", "name the model openai/<served name>")
    template = get_template(config.forcing.template)
    prompt = template.render(template.with_instruction(QUESTION)) + template.think_open + "\n"
    reply = probe.post(endpoint, "/completions", {"model": probe.served_name(endpoint), "prompt": prompt,
                                                  "max_tokens": 16, "temperature": 0.0, "stop": list(template.stop)})
    choices = reply.body.get("choices") if reply.ok else None
    if not (isinstance(choices, list) and choices and isinstance(choices[0].get("text"), str)):
        return Check("completions", "FAIL", f"{use}: /v1/completions with the {template.name} template failed: "
                     f"{reply.why() if not reply.ok else 'no text in the reply'}",
                     "serve /v1/completions (vLLM, SGLang and llama-server do), or for budget forcing on SGLang "
                     "set forcing.transport: prefill")
    prompt_tokens = (reply.body.get("usage") or {}).get("prompt_tokens")
    return Check("completions", "ok", f"{use}: /v1/completions answered our {template.name} template's prompt "
                 f"({prompt_tokens} prompt tokens); that the template is this model's is not checked here")


def _prefill(config: LMConfig, endpoint: Endpoint) -> Check:
    from program.clients.budget_forcing import check_transport

    try:
        check_transport(endpoint, config.forcing)
    except ConfigError as exc:
        return Check("prefill", "FAIL", str(exc).split(";")[0], "set forcing.transport: completions")
    messages = [*QUESTION, {"role": "assistant", "content": "<think>\nI add 2 and 3"}]
    reply = probe.post(endpoint, "/chat/completions", {
        "model": probe.served_name(endpoint), "messages": messages, "max_tokens": 16, "temperature": 0.0,
        "continue_final_message": True, "add_generation_prompt": False})
    if not reply.ok:
        return Check("prefill", "FAIL", f"budget forcing: continuing a partial reply failed: {reply.why()}",
                     "set forcing.transport: completions")
    return Check("prefill", "ok", "budget forcing: the server continued a partial assistant reply")
