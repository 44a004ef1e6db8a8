"""Integration fixtures: one real embedded llama-server (llama.cpp) for the whole test session.

Every test under tests/integration is marked ``integration`` here. They need the ``local`` extra
(the model part packages) and a llama-server (``make install`` builds it, or ``$SCALE_LLAMA_SERVER``),
and skip with the fix when either is absent; under ``CI=true`` they fail instead, naming what is
missing (``tests/prerequisites.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

# Before anything imports litellm: offline it would stall fetching a price list.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest  # noqa: E402

from prerequisites import require_local_model  # noqa: E402
from program.config import LMConfig  # noqa: E402
from program.presets import preset


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_lm_config() -> Iterator[LMConfig]:
    """``preset("local")`` with its server up for the whole session (started once, or reused)."""
    require_local_model()  # a skip, or a failure under CI=true
    from program.serving.local import ensure_server

    config = preset("local")
    with ensure_server(config):
        yield config
