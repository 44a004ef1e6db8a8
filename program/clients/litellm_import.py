"""litellm, imported in one place: without its network fetch of the model cost map, and quiet.

litellm downloads its model cost map from GitHub when it is first imported (litellm 1.110,
``litellm/litellm_core_utils/get_model_cost_map.py``, ``get_model_cost_map``), unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is "True" at that moment; on a machine without network that
costs a timeout per process. DSPy 3.4 imports litellm lazily (``dspy/clients/_litellm.py``), so
the first import is ours: every module of ``program.clients`` that needs litellm asks this
function for it, and the variable is set just before the import instead of when any module
loads. A value the user set is kept.

Example:
    >>> import_litellm().suppress_debug_info
    True
"""

from __future__ import annotations

import os
import types

__all__ = ["import_litellm"]


def import_litellm() -> types.ModuleType:
    """The litellm module, first imported with the bundled cost map and no feedback banner."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    # litellm prints a "Give Feedback / Get Help" banner on every failed call; with a server down
    # that floods an evaluation's output. Our own error says what failed and how to check.
    litellm.suppress_debug_info = True
    return litellm
