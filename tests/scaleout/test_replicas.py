"""Several servers behind one mode: requests spread, a dead replica costs no problem, tokens booked per replica."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optimize.cli import main
from program.config import ConfigError, Endpoint
from program.config_data import from_dict
from program.presets import preset
from program.testing.fakeserver import FakeServer
from reliability.toy import data_dir, kill_after, toy_reply


def test_endpoint_takes_a_list_of_replicas_and_old_configs_stay_valid() -> None:
    old = from_dict(Endpoint, {"model": "openai/m", "api_base": "http://a:8000/v1"})
    assert old.api_bases == () and old.api_base == "http://a:8000/v1"
    new = from_dict(Endpoint, {"model": "openai/m", "api_bases": ["http://a:8000/v1", "http://b:8000/v1"]})
    assert new.api_bases == ("http://a:8000/v1", "http://b:8000/v1") and new.api_base == "http://a:8000/v1"
    hash(new)  # still a frozen, hashable config
    with pytest.raises(ConfigError, match="api_bases"):
        Endpoint("openai/m", api_bases=("gpu1:8000",))
    with pytest.raises(ConfigError, match="not both"):
        Endpoint("openai/m", api_base="http://c/v1", api_bases=("http://a/v1", "http://b/v1"))
    lm = preset("qwen3").with_overrides(api_base="http://a/v1,http://b/v1")
    assert lm.endpoint.api_bases == ("http://a/v1", "http://b/v1")
    assert lm.with_overrides(api_base="http://c/v1").endpoint.api_bases == ()


def test_two_replicas_share_the_work_and_one_dying_loses_no_problem(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = data_dir(tmp_path, n_test=16)
    survivor = FakeServer(default=toy_reply, latency=0.05).start()
    doomed = FakeServer(latency=0.05).start()
    # stops listening once 3 requests reached it: few enough that a balancer under CI load, which may send
    # most of the 16 to the survivor, still reaches it (with 6 it once got fewer and never died)
    doomed.default = kill_after(doomed, 3)
    bases = {doomed.api_base, survivor.api_base}
    try:
        code = main(["eval", "--method", "cot", "--benchmark", "gsm8k", "--data-dir", str(data), "--limit", "16",
                     "--workers", "4", "--no-progress", "--output", str(tmp_path / "run"), "--model", "openai/fake",
                     "--api-base", ",".join(sorted(bases))])
    finally:
        survivor.stop()
        doomed.stop()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert doomed.default.state["killed"] is not None  # it did die mid-evaluation
    assert len(doomed.requests) >= 3 and len(survivor.requests) >= 1
    results = [json.loads(line) for path in (tmp_path / "run").rglob("results.jsonl")
               for line in path.read_text().splitlines()]
    assert len(results) == 16 and not [r for r in results if r.get("error")]
    assert all(r["correct"] for r in results)
    servers = {call["server"] for r in results for call in r["calls"]}
    assert servers == bases  # the ledger says which replica answered each call
