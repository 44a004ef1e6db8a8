"""``python -m program.serving.llama_server``: llama-cpp-python's server, reporting where each request's time went.

llama.cpp's own server answers every completion with a ``timings`` object; llama-cpp-python's
does not, so a client cannot tell prompt evaluation from generation, nor see the prompt prefix it
reused from the previous request (llama-cpp-python keeps the KV cache of the last prompt and
evaluates only what differs). This entry point runs llama-cpp-python's server unchanged (same
flags) and adds, to every non-streaming completion and chat completion:

- ``timings``, as llama.cpp names them: ``prompt_n`` (prompt tokens evaluated), ``cache_n`` (prompt
  tokens reused from the cached prefix), ``prompt_ms``, ``predicted_n``, ``predicted_ms``;
- ``usage.prompt_tokens_details.cached_tokens`` (= ``cache_n``), the OpenAI/vLLM field.

``program.clients.transport`` reads either.

It also works around a crash: on CPUs with AMX (``amx_tile`` in /proc/cpuinfo) llama.cpp's AMX
matrix multiply segfaults on the first multi-token prompt in some VMs (seen in
``ggml_backend_amx_mul_mat`` with llama-cpp-python 0.3.36 built for the host CPU). There the
model is loaded without llama.cpp's extra weight buffer types (``use_extra_bufts=false``: no AMX,
no runtime repacking); elsewhere nothing changes. ``SCALE_EXTRA_BUFTS=1`` / ``0`` forces either.

Measured, not estimated: ``prompt_n`` is the number of tokens the first ``Llama.eval`` of the
request decoded, ``prompt_ms`` the time until that decode ended (after
tokenising and prefix matching), ``predicted_ms`` the rest. Not handled: streaming responses
(sent as they are, without timings).

Example:
    $ python -m program.serving.llama_server --model model.gguf --port 8765 --logits_all false
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = ["Meter", "extra_bufts_wanted", "install", "main"]

_KEEP = 64  # timings of the last N completions, looked up by response id (requests run one at a time)


class Meter:
    """Counts one completion's prompt and generation work; ``timings()`` is llama.cpp's object.

    Example:
        >>> m = Meter(started=0.0)
        >>> m.evaluated(30, ended=0.5); m.evaluated(1, ended=0.6)
        >>> m.timings(prompt_tokens=100, completion_tokens=1, ended=0.7)["cache_n"]
        70
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.prompt_n: int | None = None
        self.prompt_end: float | None = None

    def evaluated(self, n_tokens: int, *, ended: float) -> None:
        """Note one ``Llama.eval``: the first one of a request decodes the (unreused) prompt."""
        if self.prompt_n is None:
            self.prompt_n, self.prompt_end = n_tokens, ended

    def timings(self, *, prompt_tokens: int, completion_tokens: int, ended: float) -> dict[str, Any]:
        prompt_n = prompt_tokens if self.prompt_n is None else min(self.prompt_n, prompt_tokens)
        prompt_end = ended if self.prompt_end is None else self.prompt_end
        prompt_ms = 1000.0 * (prompt_end - self.started)
        predicted_ms = 1000.0 * (ended - prompt_end)
        return {"prompt_n": prompt_n, "cache_n": prompt_tokens - prompt_n, "prompt_ms": round(prompt_ms, 3),
                "predicted_n": completion_tokens, "predicted_ms": round(predicted_ms, 3),
                "prompt_per_second": round(1000.0 * prompt_n / prompt_ms, 2) if prompt_ms > 0 else None,
                "predicted_per_second": (round(1000.0 * completion_tokens / predicted_ms, 2)
                                         if predicted_ms > 0 else None)}


_LOCAL = threading.local()
_RECENT: OrderedDict[str, dict[str, Any]] = OrderedDict()
_RECENT_LOCK = threading.Lock()


def extra_bufts_wanted(cpuinfo: str | None = None) -> bool:
    """False where llama.cpp's AMX path would crash (see the module docstring); ``SCALE_EXTRA_BUFTS`` overrides.

    Example:
        >>> extra_bufts_wanted("flags : fpu avx2 avx512f"), extra_bufts_wanted("flags : avx512f amx_tile amx_int8")
        (True, False)
    """
    forced = os.environ.get("SCALE_EXTRA_BUFTS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    return "amx_tile" not in cpuinfo


def _without_extra_bufts() -> None:
    import llama_cpp.llama_cpp as bindings

    defaults = bindings.llama_model_default_params

    def params() -> Any:
        value = defaults()
        value.use_extra_bufts = False
        return value

    bindings.llama_model_default_params = params  # read by Llama.__init__ at model load


def install() -> None:
    """Patch ``llama_cpp.Llama`` in this process so that completions carry ``timings`` (see above)."""
    from llama_cpp import Llama

    if getattr(Llama, "_scale_metered", False):
        return
    if not extra_bufts_wanted():
        _without_extra_bufts()
    original_eval, original_completion = Llama.eval, Llama.create_completion

    def eval(self: Any, tokens: Any) -> None:  # noqa: A001 (the method's own name)
        original_eval(self, tokens)
        meter = getattr(_LOCAL, "meter", None)
        if meter is not None:
            meter.evaluated(len(tokens), ended=time.perf_counter())

    def create_completion(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return original_completion(self, *args, **kwargs)
        _LOCAL.meter = meter = Meter(time.perf_counter())
        try:
            # Any: a dict when not streaming, whose usage and keys we extend beyond llama_cpp's TypedDicts.
            result: Any = original_completion(self, *args, **kwargs)
        finally:
            _LOCAL.meter = None
        usage = result.get("usage") or {}
        timings = meter.timings(prompt_tokens=int(usage.get("prompt_tokens", 0)),
                                completion_tokens=int(usage.get("completion_tokens", 0)), ended=time.perf_counter())
        usage["prompt_tokens_details"] = {"cached_tokens": timings["cache_n"]}
        result["timings"] = timings
        with _RECENT_LOCK:
            _RECENT[str(result.get("id", ""))] = timings
            while len(_RECENT) > _KEEP:
                _RECENT.popitem(last=False)
        return result

    patched: Any = Llama  # patched at run time: its declared methods and attributes do not describe it
    patched.eval, patched.create_completion = eval, create_completion
    patched._scale_metered = True


def _timings_for(response_id: str) -> dict[str, Any] | None:
    """A chat completion's id is "chat" + its completion's id (llama-cpp-python's convention)."""
    with _RECENT_LOCK:
        return _RECENT.get(response_id) or _RECENT.get(response_id.removeprefix("chat"))


async def _attach_timings(request: Any, call_next: Any) -> Any:
    """HTTP middleware: the server's response models drop unknown keys, so add them to the JSON body here."""
    from starlette.responses import Response

    response = await call_next(request)
    if request.method != "POST" or not request.url.path.endswith("completions") \
            or not response.headers.get("content-type", "").startswith("application/json"):
        return response
    body = b"".join([chunk async for chunk in response.body_iterator])
    try:
        data = json.loads(body)
        timings = _timings_for(str(data.get("id", ""))) if isinstance(data, dict) else None
    except ValueError:
        timings = None
    if timings is not None:
        data["timings"] = timings
        data.setdefault("usage", {})["prompt_tokens_details"] = {"cached_tokens": timings["cache_n"]}
        body = json.dumps(data).encode()
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body, status_code=response.status_code, headers=headers, media_type="application/json")


def main() -> None:
    """Run ``llama_cpp.server`` (same command-line flags) with timings on every completion."""
    import llama_cpp.server.__main__ as server_main

    install()
    create_app = server_main.create_app

    def create_metered_app(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        app.middleware("http")(_attach_timings)
        return app

    server_main.create_app = create_metered_app
    server_main.main()


if __name__ == "__main__":
    main()
