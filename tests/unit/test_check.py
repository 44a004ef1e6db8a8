"""``scale check`` against the fake server's vLLM, SGLang and llama.cpp modes (issue 23), through the CLI.

Each mode follows its server's source (``program.testing.servermodes`` names the files). A check line
is asserted on whole words of its status and detail, and the exit status on 0 / 4; the bodies the
fake received show that the thinking switch a run would send is the one checked.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from optimize.cli import main
from optimize.errors import EXIT_CHECK_FAILED, EXIT_OK
from program.clients.preflight import run_checks
from program.clients.servers import forget_kinds
from program.presets import preset
from program.testing.fakeserver import FakeServer

pytestmark = pytest.mark.fake_server

THINKS = "<think>2 and 3 make 5</think>5"


def check(server: FakeServer, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, str]]:
    """(exit status, {check name: its line}) of ``scale check --preset qwen3`` against ``server``."""
    status = main(["check", "--preset", "qwen3", "--model", "openai/served-32b", "--api-base", server.api_base,
                   *flags])
    lines = capsys.readouterr().out.splitlines()
    return status, {line[9:25].strip(): line for line in lines}  # the name column of Check.line


def status_of(line: str) -> str:
    return line.split()[0]


@pytest.mark.parametrize(("mode", "owner", "field", "cache_field", "extra"), [
    ("vllm", '"vllm"', "`reasoning` field", "usage.prompt_tokens_details.cached_tokens",
     {"cached": 12, "max_model_len": 40960}),
    ("sglang", '"sglang"', "`reasoning_content` field", "usage.prompt_tokens_details.cached_tokens",
     {"cached": 12, "max_model_len": 32768}),
    ("llama.cpp", '"llamacpp"', "`reasoning_content` field", "timings.cache_n", {"cached": 12, "max_model_len": 4096}),
])
def test_each_check_is_reported_on_a_well_served_endpoint(mode: str, owner: str, field: str, cache_field: str,
                                                         extra: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS, server=mode, cache_report=True, version="9.9.1", **extra) as server:
        status, lines = check(server, capsys)
    assert status == EXIT_OK
    assert status_of(lines["server"]) == "ok"
    assert f"{mode} 9.9.1, detected from GET /v1/models owned_by {owner}" in lines["server"]
    for role in ("stages", "system1"):
        assert status_of(lines[f"thinking {role}"]) == "ok"
        assert "enable_thinking: false sent, no reasoning came back" in lines[f"thinking {role}"]
    assert "enable_thinking: true sent, reasoning came back" in lines["thinking system2"]
    assert field in lines["reasoning"]
    assert "reported: 12 of" in lines["cached tokens"] and cache_field in lines["cached tokens"]
    window = extra["max_model_len"]
    source = "GET /props default_generation_settings.n_ctx" if mode == "llama.cpp" else "GET /v1/models max_model_len"
    assert f"{window} tokens ({source}" in lines["context"]
    assert status_of(lines["completions"]) == "ok" and "/v1/completions answered" in lines["completions"]
    chats = [b for b in server.requests if "messages" in b]
    assert [b["chat_template_kwargs"]["enable_thinking"] for b in chats[:3]] == [False, False, True]
    assert all(b["model"] == "served-32b" for b in server.requests)


def test_vllm_without_the_cached_token_flag_fails_with_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS, server="vllm", cached=12, max_model_len=40960) as server:  # flag missing
        status, lines = check(server, capsys)
    assert status == EXIT_CHECK_FAILED
    assert status_of(lines["cached tokens"]) == "FAIL"
    assert "fix: start vLLM with --enable-prompt-tokens-details" in lines["cached tokens"]
    assert [status_of(line) for name, line in lines.items() if name != "cached tokens"] == ["ok"] * 7


def test_sglang_without_the_cache_report_flag_names_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS, server="sglang", max_model_len=32768) as server:
        status, lines = check(server, capsys)
    assert status == EXIT_CHECK_FAILED
    assert "fix: start SGLang with --enable-cache-report" in lines["cached tokens"]


def test_a_server_that_ignores_the_thinking_switch_fails_the_non_thinking_modes(
        capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS, server="vllm", honours_thinking=False, cache_report=True, cached=12,
                    max_model_len=40960) as server:
        status, lines = check(server, capsys)
    assert status == EXIT_CHECK_FAILED
    for role in ("stages", "system1"):
        assert status_of(lines[f"thinking {role}"]) == "FAIL"
        assert "false sent, but reasoning came back" in lines[f"thinking {role}"]
        assert "fix: the server ignores enable_thinking" in lines[f"thinking {role}"]
    assert status_of(lines["thinking system2"]) == "ok"


@pytest.mark.parametrize(("parser", "said"), [("qwen3-old", "but no reasoning came back"),
                                               ("qwen3", "the whole reply came as reasoning and no answer")])
def test_a_model_that_does_not_think_fails_system2(parser: str, said: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default="5", server="vllm", parser=parser, cache_report=True, cached=12,
                    max_model_len=40960) as server:
        status, lines = check(server, capsys)
    assert status == EXIT_CHECK_FAILED
    assert status_of(lines["thinking system2"]) == "FAIL" and said in lines["thinking system2"]
    assert status_of(lines["reasoning"]) == "unknown"  # nothing to read it from: not "ok"


def test_the_old_qwen3_parser_sends_think_tags_in_the_content(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default="<think>2 and 3 make 5</think>5", server="vllm", parser="qwen3-old", cache_report=True,
                    cached=12, max_model_len=40960) as server:
        _, lines = check(server, capsys)
    assert "arrives in the `reasoning` field" in lines["reasoning"]  # both tags: even the old parser splits


def test_a_server_of_unknown_kind_gets_no_switch_and_is_told_to_declare_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS) as server:  # a bare OpenAI-compatible server: no owned_by, raw content
        status, lines = check(server, capsys)
    assert status == EXIT_CHECK_FAILED
    assert status_of(lines["server"]) == "unknown" and "declare lm.endpoint.server" in lines["server"]
    assert "no switch sent, but reasoning came back (tags)" in lines["thinking stages"]
    assert "fix: declare lm.endpoint.server" in lines["thinking stages"]
    chats = [b for b in server.requests if "messages" in b]
    assert ["chat_template_kwargs" in b for b in chats[:3]] == [False, False, True]  # qwen3 asks anywhere
    assert status_of(lines["cached tokens"]) == "warn"
    assert status_of(lines["completions"]) == "skip"  # no forced answers off a self-hosted kind


def test_a_declared_kind_the_server_contradicts_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS, server="sglang", cache_report=True, max_model_len=32768) as server:
        config = preset("qwen3", model="openai/served-32b", api_base=server.api_base, server="vllm")
        checks = {c.name: c for c in run_checks(config)}
    assert checks["server"].status == "FAIL"
    assert 'declared, but GET /v1/models owned_by "sglang"' in checks["server"].detail
    assert checks["server"].fix.startswith("set lm.endpoint.server: sglang")


def test_an_unreachable_server_fails_and_decides_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--preset", "qwen3", "--api-base", "http://127.0.0.1:9/v1"])
    lines = capsys.readouterr().out.splitlines()
    assert status == EXIT_CHECK_FAILED
    assert lines[0].startswith("FAIL") and "http://127.0.0.1:9/v1: no answer" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["unknown"]


def test_a_provider_endpoint_is_not_probed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--preset", "api"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    servers = [line for line in lines if line[9:25].strip() == "server"]
    assert len(servers) == 2 and all(line.startswith("ok") and "provider" in line for line in servers)  # two models
    assert {line.split()[0] for line in lines if line not in servers} == {"skip"}


def test_prefill_is_refused_on_vllm_and_continued_on_sglang() -> None:
    for mode, expected in (("vllm", "FAIL"), ("sglang", "ok")):
        forget_kinds()
        with FakeServer(default="so 5.", server=mode, cache_report=True) as server:
            config = preset("local", api_base=server.api_base, model="openai/fake")
            config = replace(config, forcing=replace(config.forcing, transport="prefill"))
            checks = {c.name: c for c in run_checks(config)}
        assert checks["prefill"].status == expected, checks["prefill"]
        if mode == "vllm":
            assert checks["prefill"].fix == "set forcing.transport: completions"
            assert not any(b.get("continue_final_message") for b in server.requests)  # refused before asking
        else:
            assert server.requests[-1]["continue_final_message"] is True


def test_budget_forcing_over_completions_is_checked_with_the_configs_template() -> None:
    with FakeServer(default="so 5.", server="llama.cpp", max_model_len=4096) as server:
        config = preset("local", api_base=server.api_base, model="openai/fake")
        checks = {c.name: c for c in run_checks(config)}
    assert checks["completions"].status == "ok"
    assert "budget forcing" in checks["completions"].detail and config.forcing.template in checks["completions"].detail
    prompt = [b for b in server.requests if "prompt" in b][-1]["prompt"]
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    assert checks["thinking system2"].status == "skip"


def test_strict_eval_refuses_to_start_on_a_failed_check(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(default=THINKS, server="vllm", max_model_len=40960) as server:  # no cached-token flag
        status = main(["eval", "--preset", "qwen3", "--model", "openai/served-32b", "--api-base", server.api_base,
                       "--method", "scale", "--benchmark", "gsm8k", "--limit", "1", "--strict",
                       "--output", str(tmp_path), "--no-progress"])
        asked = len(server.requests)
    err = capsys.readouterr().err
    assert status == EXIT_CHECK_FAILED
    assert "FAIL     cached tokens" in err and "--strict: 1 server check(s) failed" in err
    assert not list(tmp_path.rglob("results.jsonl"))
    assert asked == 6  # the checks' own: 3 thinking, 2 cached-token, 1 completions; nothing of the run


def test_the_context_line_names_a_configured_window() -> None:
    with FakeServer(default=THINKS, server="vllm", cache_report=True, cached=3) as server:
        config = preset("qwen3", model="openai/served-32b", api_base=server.api_base, context_window=8192)
        checks = {c.name: c for c in run_checks(config)}
    assert checks["context"].detail == "8192 tokens (lm.endpoint.context_window)"


@pytest.mark.parametrize("argv", [["eval"], ["compare", "--config", "x.yaml"], ["search"]])
def test_the_long_runs_take_strict(argv: list[str]) -> None:
    from optimize.cli import build_parser

    assert build_parser().parse_args([*argv, "--strict"]).strict is True
    assert build_parser().parse_args(argv).strict is False
