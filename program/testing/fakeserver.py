"""A fake OpenAI-compatible server on 127.0.0.1 for tests: scripted replies and injected faults.

It speaks just enough of the API for litellm: ``GET /v1/models``, ``POST /v1/chat/completions``
and ``POST /v1/completions``, with usage counts (one token per word). Each request takes the next
scripted action: a reply text, or a fault (HTTP status, a stall past the client's timeout, a
dropped connection). When the script runs out, ``default`` answers.

For load tests it can act like a batching model server: every request takes ``latency`` seconds,
at most ``slots`` are served at once (the rest queue), and ``served`` keeps each request's
(start, end) times (``time.monotonic``) for throughput measurements. ``peak_in_flight`` is the most
requests it held at once (received and not yet answered, queued ones included): what a client-side
concurrency limit must keep at or under its limit.

With ``total_slots`` it answers ``GET /props`` as llama.cpp's server does (tools/server/README.md,
``GET /props``: ``total_slots`` is the slot count set by ``--parallel``, ``build_info`` the build);
without it ``/props`` is a 404, as on servers that have no such route (vLLM, llama-cpp-python).

Example:
    >>> import json, urllib.request
    >>> ask = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, never a proxy
    >>> with FakeServer(["hello there"], default="ok") as server:
    ...     body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}).encode()
    ...     replies = [json.load(ask.open(f"{server.api_base}/chat/completions", body, timeout=10))
    ...                for _ in range(2)]
    >>> [r["choices"][0]["message"]["content"] for r in replies], len(server.requests)
    (['hello there', 'ok'], 2)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from program.testing import servermodes

__all__ = ["Fault", "FakeServer"]


@dataclass(frozen=True)
class Fault:
    """An injected failure: ``status`` (e.g. 500, 429), ``stall`` seconds, or ``drop`` the connection."""

    status: int | None = None
    stall: float = 0.0
    drop: bool = False




def _token_logprobs(word: str, top: int) -> dict[str, Any]:
    alternatives = [word] + [d for d in "7315902468" if d != word][:max(0, top - 1)]
    return {"token": word, "logprob": -0.1, "bytes": None,
            "top_logprobs": [{"token": t, "logprob": -0.1 if i == 0 else -2.0 - i, "bytes": None}
                             for i, t in enumerate(alternatives[:top])]}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 would make a load test's connections wait for SYN retries


@dataclass
class FakeServer:
    """Serve scripted actions; ``requests`` keeps every request body it received."""

    script: Iterable[Any] = ()
    default: Any = "ok"
    finish_reason: str = "stop"
    requests: list[dict[str, Any]] = field(default_factory=list)
    latency: float = 0.0
    slots: int | None = None
    # Token logprobs as vLLM sends them when a chat request asks (each word -0.1, then "7", "3", ... as
    # alternatives), or llama.cpp's refusal without --logits_all ("refuse").
    logprobs: str = "send"
    served: list[tuple[float, float]] = field(default_factory=list)
    total_slots: int | None = None
    build_info: str = "b0-fake"
    peak_in_flight: int = 0
    # Which real server's /v1/models to imitate: "vllm", "sglang", "llama.cpp", or None (a bare list).
    # owned_by and the window field follow each server's source, named in program.clients.servers.
    server: str | None = None
    max_model_len: int | None = None
    # Server-mode behaviour, each rule from the server's source (program.testing.servermodes):
    parser: str = "qwen3"  # vLLM's qwen3 reasoning parser: "qwen3" (current) or "qwen3-old" (pre-#35230)
    cache_report: bool = False  # started with --enable-prompt-tokens-details / --enable-cache-report
    cached: int = 0  # prompt tokens each reply reports as reused (when reported at all)
    honours_thinking: bool = True  # False: a template that ignores enable_thinking
    chat_template: str | None = None  # Jinja text that continue_final_message is rendered through
    strict: bool = False  # reject request fields the server does not know (HTTP 400)
    think_tokens: int = 1  # tokens of "</think>" (1: Qwen3's special token)
    version: str = "0.11.0"
    legacy_field: bool = False  # vLLM also sends `reasoning_content: null` beside `reasoning`
    prompts: list[str] = field(default_factory=list)  # in a server mode: each prompt the server built

    def __post_init__(self) -> None:
        self._queue = list(self.script)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._slots = threading.BoundedSemaphore(self.slots) if self.slots else None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.rstrip("/")
                if path.endswith("/props") and owner.server is None:
                    if owner.total_slots is None:
                        owner._send(self, 404, {"error": {"message": "File Not Found", "type": "not_found_error"}})
                    else:
                        owner._send(self, 200, {"total_slots": owner.total_slots, "build_info": owner.build_info})
                elif owner.server is None or path == "/v1/models":
                    owner._send(self, 200, {"object": "list", "data": [owner._model_card()]})
                elif path == "/version" and owner.server == "vllm":  # vllm/entrypoints/openai/api_server.py
                    owner._send(self, 200, {"version": owner.version})
                elif path == "/get_server_info" and owner.server == "sglang":  # sglang/srt/entrypoints/http_server.py
                    owner._send(self, 200, {"version": owner.version})  # (beside its server args, left out here)
                elif path == "/props" and owner.server == "llama.cpp":  # tools/server/server-context.cpp
                    owner._send(self, 200, {"total_slots": owner.total_slots or 1, "build_info": owner.version,
                                            "chat_template": owner.chat_template or "",
                                            "default_generation_settings": {"n_ctx": owner.max_model_len}})
                else:
                    owner._send(self, 404, {"detail": "Not Found"})  # FastAPI's (vLLM, SGLang) answer

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if owner.server is not None and not owner._known_path(self, body):
                    return
                with owner._lock:
                    owner._in_flight += 1
                    owner.peak_in_flight = max(owner.peak_in_flight, owner._in_flight)
                try:
                    if owner._slots is None:
                        owner._handle(self, body)
                        return
                    with owner._slots:  # a busy server queues the request until a slot frees
                        owner._handle(self, body)
                finally:
                    with owner._lock:
                        owner._in_flight -= 1

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *actions: Any) -> None:
        """Append actions to the script."""
        with self._lock:
            self._queue.extend(actions)

    def _model_card(self) -> dict[str, Any]:
        card: dict[str, Any] = {"id": "fake", "object": "model"}
        if self.server in ("vllm", "sglang"):  # ModelCard in each server's openai/protocol.py
            card.update(owned_by=self.server, max_model_len=self.max_model_len)
        elif self.server == "llama.cpp":  # tools/server/server-context.cpp, handle_models
            card.update(owned_by="llamacpp", meta={"n_ctx_train": self.max_model_len})
        return card

    def _known_path(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> bool:
        """In a server mode: answer /tokenize and unknown paths here; False when answered."""
        path = handler.path.rstrip("/")
        if path == "/tokenize" and self.server in ("vllm", "llama.cpp"):
            with self._lock:
                self.requests.append({"path": path, **body})
            # vLLM reads `prompt` (serving_tokenization.py); llama.cpp `content` and answers no
            # tokens for a body without it (tools/server/server-context.cpp, handle_tokenize).
            text = body.get("prompt" if self.server == "vllm" else "content")
            tokens = [servermodes.token_id(p) for p in servermodes.pieces(str(text or ""), self.think_tokens)]
            reply: dict[str, Any] = {"tokens": tokens}
            if self.server == "vllm":
                reply.update(count=len(tokens), max_model_len=self.max_model_len)
            self._send(handler, 200, reply)
            return False
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(handler, 404, {"detail": "Not Found"})
            return False
        unknown = sorted(set(body) - servermodes.KNOWN_FIELDS.get(self.server, set()))
        if self.strict and unknown:
            with self._lock:
                self.requests.append(body)
            self._send(handler, 400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}",
                                                "type": "invalid_request_error"}})
            return False
        return True

    # -- request handling -------------------------------------------------------------------
    def _next(self) -> Any:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.default

    def _handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        started = time.monotonic()
        with self._lock:
            self.requests.append(body)
        if self.latency:
            time.sleep(self.latency)
        try:
            self._act(handler, body)
        finally:
            with self._lock:
                self.served.append((started, time.monotonic()))

    def _act(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        action = self._next()
        if callable(action):
            action = action(body)
        if isinstance(action, Fault):
            if action.stall:
                time.sleep(action.stall)
            if action.drop:
                handler.close_connection = True
                handler.connection.close()
                return
            if action.status:
                self._send(handler, action.status, {"error": {"message": f"injected {action.status}",
                                                              "type": "server_error"}})
                return
            action = self.default
        if body.get("logprobs") is True and self.logprobs == "refuse":
            self._send(handler, 500, {"error": {"message": "logprobs is not supported for models created with "
                                                           "logits_all=False", "type": "internal_server_error"}})
            return
        if self.server is not None:
            try:
                self._send(handler, 200, self._imitation(handler.path, body, str(action)))
            except servermodes.TemplateRefusal as exc:  # vLLM answers a template error with 400
                self._send(handler, 400, {"object": "error", "message": str(exc), "type": "BadRequestError",
                                          "code": 400})
            return
        self._send(handler, 200, self._completion(handler.path, body, str(action)))

    def _imitation(self, path: str, body: dict[str, Any], raw: str) -> dict[str, Any]:
        """A reply as the real server gives it for the model output ``raw`` (program.testing.servermodes)."""
        chat = "chat" in path
        kwargs = body.get("chat_template_kwargs") or {}
        thinking_on = kwargs.get("enable_thinking", True) is not False or not self.honours_thinking
        if chat and not thinking_on:
            raw = re.sub(r"<think>.*?</think>\s*", "", raw, flags=re.S)  # the model was told not to think
        if chat and body.get("continue_final_message") and self.chat_template is not None:
            prompt = servermodes.continue_prompt(self.server, self.chat_template, body)
        else:
            prompt = str(body.get("prompt") or " ".join(str(m.get("content", "")) for m in body.get("messages", [])))
        with self._lock:
            self.prompts.append(prompt)
        out = servermodes.generate(raw, body, think_tokens=self.think_tokens)
        n_prompt = len(servermodes.pieces(prompt))
        usage: dict[str, Any] = {"prompt_tokens": n_prompt, "completion_tokens": out.tokens,
                                 "total_tokens": n_prompt + out.tokens,
                                 **servermodes.usage_details(self.server, self.cached, self.cache_report)}
        reply: dict[str, Any] = {"id": "fake-1", "created": int(time.time()), "model": body.get("model", "fake"),
                                 "usage": usage}
        if self.server == "llama.cpp":
            reply["timings"] = {"cache_n": self.cached, "prompt_n": n_prompt - self.cached, "prompt_ms": 1.0,
                                "predicted_n": out.tokens, "predicted_ms": 1.0}
        if not chat:
            return {**reply, "object": "text_completion",
                    "choices": [{"index": 0, "text": out.text, "finish_reason": out.finish_reason, "logprobs": None}]}
        message: dict[str, Any] = {"role": "assistant", "content": out.text}
        if not body.get("continue_final_message"):
            reasoning, content = servermodes.parse_reasoning(out.text, thinking_on, self.parser)
            field = "reasoning" if self.server == "vllm" else "reasoning_content"
            message = {"role": "assistant", "content": content if self.server == "vllm" else content or "",
                       field: reasoning}
            if self.legacy_field and self.server == "vllm":
                message["reasoning_content"] = None
        return {**reply, "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": out.finish_reason}]}

    def _completion(self, path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt = body.get("prompt") or " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        words = text.split()
        cap = body.get("max_tokens")
        finish = self.finish_reason
        if cap is not None and len(words) > cap:
            words, finish = words[:cap], "length"
            text = " ".join(words)
        usage = {"prompt_tokens": len(str(prompt).split()), "completion_tokens": len(words),
                 "total_tokens": len(str(prompt).split()) + len(words)}
        if path.endswith("/completions") and "chat" not in path:
            choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            kind = "text_completion"
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            if body.get("logprobs") is True:
                choice["logprobs"] = {"content": [_token_logprobs(w, int(body.get("top_logprobs") or 0))
                                                  for w in words]}
            kind = "chat.completion"
        return {"id": "fake-1", "object": kind, "created": int(time.time()), "model": body.get("model", "fake"),
                "choices": [choice], "usage": usage}

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer
