"""Which failed requests are worth sending again, shared by the transport's retries and the replicas.

A transient failure (connection refused or reset, timeout, HTTP 429 or 5xx) may succeed on a retry
or on another replica; anything else (a bad request, a refused setting) will fail the same way again.

Example:
    >>> class Busy(Exception):
    ...     status_code = 503
    >>> is_transient(Busy()), is_transient(ValueError("bad request"))
    (True, False)
    >>> refuses_logprobs(RuntimeError("logprobs is not supported: start the server with --logits_all true"))
    True
"""

from __future__ import annotations

from program.clients.litellm_import import import_litellm

__all__ = ["is_transient", "refuses_logprobs"]


def is_transient(exc: BaseException) -> bool:
    """A litellm connection error, timeout, rate limit or server error, or any exception with status 429 / 5xx."""
    litellm = import_litellm()

    if refuses_logprobs(exc):
        return False  # a server setting: retrying cannot help
    transient = (litellm.exceptions.APIConnectionError, litellm.exceptions.Timeout,
                 litellm.exceptions.RateLimitError, litellm.exceptions.InternalServerError,
                 litellm.exceptions.ServiceUnavailableError, litellm.exceptions.BadGatewayError)
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def refuses_logprobs(exc: BaseException) -> bool:
    """llama.cpp's answer to a logprobs request on a server started without ``--logits_all true``."""
    text = str(exc).lower()
    return "logprobs" in text and ("not supported" in text or "logits_all" in text)
