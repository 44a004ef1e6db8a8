"""``scale serve``: run the embedded model on llama.cpp's ``llama-server`` in the foreground until Ctrl-C.

Other commands started while it runs (in another terminal) find it and reuse it instead of
starting their own, which saves the start and lets several commands share one model. The first
run builds llama-server into the user cache (``program.serving.build``) unless
``--server-binary`` or ``$SCALE_LLAMA_SERVER`` names one.

Example:
    $ scale serve --port 8765 --slots 4
    Serving qwen2.5-coder-1.5b-instruct at http://127.0.0.1:8765/v1 (... 4 slots x 4096 tokens ...)
"""

from __future__ import annotations

import argparse
import time

from program.config import LOCAL_MODEL_ALIAS, LOCAL_PORT
from program.serving.local import DEFAULT_SLOTS, SLOT_CONTEXT


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the embedded local model (llama.cpp's llama-server) in the foreground",
        description="Serve Qwen2.5-Coder-1.5B-Instruct on 127.0.0.1 (OpenAI-compatible /v1) until Ctrl-C.")
    parser.add_argument("--port", type=int, default=LOCAL_PORT, help=f"port to listen on (default {LOCAL_PORT})")
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS,
                        help=f"requests decoded at once (llama-server --parallel; default {DEFAULT_SLOTS})")
    parser.add_argument("--n-ctx", type=int, default=SLOT_CONTEXT,
                        help=f"context window of each slot in tokens (default {SLOT_CONTEXT}; "
                             "the server's --ctx-size is slots x this)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: min(2, cores))")
    parser.add_argument("--no-repack", action="store_true",
                        help="turn llama.cpp's weight repacking off: faster prompts, slower batched generation")
    parser.add_argument("--server-binary", default=None, metavar="PATH",
                        help="run this llama-server (a GPU build, a package manager's; a name is looked up on "
                             "PATH) instead of the project's own build; also $SCALE_LLAMA_SERVER")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for start-up")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the server, print where it listens, block until Ctrl-C, then stop it."""
    from program.errors import ProgramError
    from program.serving.build import server_binary
    from program.serving.local import LocalServer, is_serving, model_path

    if is_serving("127.0.0.1", args.port):
        raise ProgramError(f"Something already serves on port {args.port} (another `scale serve`?). "
                           "Commands reuse it as it is; or pick another port with --port.")
    server = LocalServer(model_path(), port=args.port, n_ctx=args.n_ctx, slots=args.slots, n_threads=args.threads,
                         repack=not args.no_repack, binary=server_binary(args.server_binary))
    started = time.monotonic()
    try:
        server.start()
        server.wait_ready(args.ready_timeout)
        props = server.props()
        slots = props.get("total_slots", server.slots)
        window = (props.get("default_generation_settings") or {}).get("n_ctx", server.n_ctx)
        print(f"Serving {LOCAL_MODEL_ALIAS} at {server.url} (ready in {time.monotonic() - started:.1f} s; "
              f"{slots} slots x {window} tokens, {server.n_threads} threads, "
              f"repack {'on' if server.repack else 'off'}). Ctrl-C to stop.", flush=True)
        print(f"Engine: {server.binary} ({props.get('build_info', 'build unknown')})", flush=True)
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
