"""Client-side chat templates: golden strings, think tags, stops, Jinja files and their sidecars."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from program.clients.templates import TEMPLATES, THINK_INSTRUCTION, ChatTemplate, get_template
from program.config import ConfigError

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Times 2?"},
]

GOLDEN = {
    "chatml": ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+3?<|im_end|>\n"
               "<|im_start|>assistant\n5<|im_end|>\n<|im_start|>user\nTimes 2?<|im_end|>\n<|im_start|>assistant\n"),
    "qwen3": ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+3?<|im_end|>\n"
              "<|im_start|>assistant\n5<|im_end|>\n<|im_start|>user\nTimes 2?<|im_end|>\n<|im_start|>assistant\n"),
    "llama3": ("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\n2+3?<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n5<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nTimes 2?<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "deepseek-r1": ("Be brief.<｜User｜>2+3?<｜Assistant｜>5<｜end▁of▁sentence｜>"
                    "<｜User｜>Times 2?<｜Assistant｜>"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_builtin_templates_render_golden_strings(name: str) -> None:
    assert get_template(name).render(CHAT) == GOLDEN[name]


def test_every_builtin_has_a_golden_string() -> None:
    assert set(TEMPLATES) == set(GOLDEN)


@pytest.mark.parametrize(("name", "stop", "native"), [
    ("chatml", ("<|im_end|>", "<|endoftext|>"), False),
    ("qwen3", ("<|im_end|>", "<|endoftext|>"), True),
    ("llama3", ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"), False),
    ("deepseek-r1", ("<｜end▁of▁sentence｜>",), True),
])
def test_builtin_think_tags_stops_and_instruction(name: str, stop: tuple[str, ...], native: bool) -> None:
    template = get_template(name)
    assert (template.think_open, template.think_close, template.stop) == ("<think>", "</think>", stop)
    # Models without native thinking are told to think inside the tags and close them.
    assert template.instruction == ("" if native else THINK_INSTRUCTION.format(open="<think>", close="</think>"))


def test_deepseek_r1_plus_opened_section_matches_the_official_generation_prompt() -> None:
    template = get_template("deepseek-r1")
    prompt = template.render([{"role": "user", "content": "Hi"}]) + template.think_open + "\n"
    assert prompt == "<｜User｜>Hi<｜Assistant｜><think>\n"


def test_llama3_trims_content_like_the_official_template() -> None:
    prompt = get_template("llama3").render([{"role": "user", "content": "  Hi \n"}])
    assert "\n\nHi<|eot_id|>" in prompt


def test_with_instruction_appends_to_the_system_prompt_or_adds_one() -> None:
    template = get_template("chatml")
    added = template.with_instruction([{"role": "user", "content": "Hi"}])
    assert added == [{"role": "system", "content": template.instruction}, {"role": "user", "content": "Hi"}]
    merged = template.with_instruction([{"role": "system", "content": "Be brief.\n"},
                                        {"role": "user", "content": "Hi"}])
    assert merged[0] == {"role": "system", "content": "Be brief.\n\n" + template.instruction}
    assert get_template("qwen3").with_instruction(CHAT) == CHAT  # native thinkers need no instruction


def test_with_instruction_does_not_mutate_the_input() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    get_template("chatml").with_instruction(messages)
    assert messages[0]["content"] == "Be brief."


def test_unknown_template_error_lists_the_known_names() -> None:
    with pytest.raises(ConfigError, match=r"Unknown chat template 'gpt2': use one of chatml, deepseek-r1, "
                                          r"llama3, qwen3, or the path to a Jinja file\."):
        get_template("gpt2")


@pytest.mark.parametrize(("messages", "message"), [
    ([], r"needs at least one message; got none"),
    ([{"role": "tool", "content": "x"}], r"`messages\[0\]=\{'role': 'tool', 'content': 'x'\}` must have a role in "),
    ([{"role": "user", "content": None}], r"`messages\[0\]=.*'content': None\}` must have .* a string content"),
])
def test_bad_messages_are_refused_by_name(messages: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_template("chatml").render(messages)


def test_template_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_template("chatml").name = "x"  # type: ignore[misc]


# --- Jinja files -----------------------------------------------------------------------------

# Written like Hugging Face templates: whitespace control keeps the file's newlines out.
CHATML_JINJA = """{%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""


def test_jinja_file_renders_like_the_builtin(tmp_path: Path) -> None:
    path = tmp_path / "chatml.jinja"
    path.write_text(CHATML_JINJA)
    template = get_template(str(path))
    assert isinstance(template, ChatTemplate)
    assert template.render(CHAT) == GOLDEN["chatml"]
    # No sidecar: default think tags, no stops, no instruction.
    assert (template.name, template.think_open, template.think_close, template.stop, template.instruction) == (
        str(path), "<think>", "</think>", (), "")


def test_jinja_sidecar_sets_tags_stops_instruction_and_variables(tmp_path: Path) -> None:
    path = tmp_path / "thought.jinja"
    path.write_text("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
                    "{% if add_generation_prompt %}[assistant]<|begin_of_thought|>\n{% endif %}")
    path.with_suffix(".json").write_text(json.dumps({
        "think_open": "<|begin_of_thought|>", "think_close": "<|end_of_thought|>", "stop": ["[end]"],
        "instruction": "Think between {open} and {close}.", "variables": {"bos_token": "<s>"}}))
    template = get_template(str(path))
    # The template opened the thinking section itself; render stops before it (we open it).
    assert template.render([{"role": "user", "content": "Hi"}]) == "<s>[user]Hi[assistant]"
    assert (template.think_open, template.think_close, template.stop) == (
        "<|begin_of_thought|>", "<|end_of_thought|>", ("[end]",))
    assert template.instruction == "Think between <|begin_of_thought|> and <|end_of_thought|>."


def test_jinja_raise_exception_and_undefined_variables_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "strict.jinja"
    path.write_text("{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}{{ eos }}")
    template = get_template(str(path))
    with pytest.raises(ConfigError, match="user first"):
        template.render([{"role": "system", "content": "x"}])
    with pytest.raises(ConfigError, match="variables"):
        template.render([{"role": "user", "content": "x"}])


def test_invalid_jinja_and_bad_sidecars_are_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}")
    with pytest.raises(ConfigError, match="not valid Jinja"):
        get_template(str(broken))
    path = tmp_path / "ok.jinja"
    path.write_text(CHATML_JINJA)
    path.with_suffix(".json").write_text(json.dumps({"think_start": "<t>"}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'think_start'"):
        get_template(str(path))
    path.with_suffix(".json").write_text(json.dumps({"stop": [""]}))
    with pytest.raises(ConfigError, match="stop"):
        get_template(str(path))
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        get_template(str(path))
