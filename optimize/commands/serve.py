"""``scale serve``: run the embedded local model server in the foreground until Ctrl-C.

Other commands started while it runs (in another terminal) find it and reuse it instead of
starting their own, which saves the ~3 s start and lets several commands share one model.

Example:
    $ scale serve --port 8765
    Serving qwen2.5-coder-1.5b-instruct at http://127.0.0.1:8765/v1 (Ctrl-C to stop)
"""

from __future__ import annotations

import argparse
import time

from program.config import LOCAL_MODEL_ALIAS, LOCAL_PORT


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the embedded local model (llama.cpp) server in the foreground",
        description="Serve Qwen2.5-Coder-1.5B-Instruct on 127.0.0.1 (OpenAI-compatible /v1) until Ctrl-C.")
    parser.add_argument("--port", type=int, default=LOCAL_PORT, help=f"port to listen on (default {LOCAL_PORT})")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens (default 4096)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: min(2, cores))")
    parser.add_argument("--logprobs", action="store_true",
                        help="compute token logprobs (llama.cpp --logits_all true), for the difficulty sources "
                             "rating_logprobs and attempt with deepconf/mean_logprob; about 10%% slower generation")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for start-up")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the server, print where it listens, block until Ctrl-C, then stop it."""
    from program.errors import ProgramError
    from program.serving.local import LocalServer, is_serving, model_path

    if is_serving("127.0.0.1", args.port):
        raise ProgramError(f"Something already serves on port {args.port} (another `scale serve`?). "
                           "Commands reuse it as it is; or pick another port with --port.")
    server = LocalServer(model_path(), port=args.port, n_ctx=args.n_ctx, n_threads=args.threads,
                         logprobs=args.logprobs)
    started = time.monotonic()
    try:
        server.start()
        server.wait_ready(args.ready_timeout)
        print(f"Serving {LOCAL_MODEL_ALIAS} at {server.url} (ready in {time.monotonic() - started:.1f} s; "
              f"{server.n_threads} threads, n_ctx {server.n_ctx}). Ctrl-C to stop.", flush=True)
        if args.port != LOCAL_PORT:
            print(f"Other commands: --api-base {server.url} --model openai/{LOCAL_MODEL_ALIAS}", flush=True)
        print(f"Log: {server.log_path}", flush=True)
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        raise ProgramError(f"The local model server stopped by itself. Last lines of {server.log_path}:\n"
                           f"{server.log_tail()}")
    except KeyboardInterrupt:
        print("Stopping the local model server.", flush=True)
        return 0
    finally:
        server.stop()
