"""Every config under experiments/ loads: an experiment file, or a compare file with its entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from optimize.compare import load_compare
from optimize.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if "results" not in p.parts)


def test_there_are_configs_to_check() -> None:
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_shipped_config_loads(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and "compare" in data:
        assert load_compare(path).entries
    else:
        load_experiment(path)
