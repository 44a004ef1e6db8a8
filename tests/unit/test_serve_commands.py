"""Every preset and every ``experiments/`` config names the serve command it needs, as docs/SERVERS.md lists it.

A config's leading comment block has a ``# Server:`` (or ``# Servers:``) line; the commands are on it
and on the comment lines right after it that start with a serve command (a remark may follow after two
spaces and a parenthesis). A preset's docstring says ``Serve`` and gives its commands as ``code`` spans.
Each command must appear verbatim in docs/SERVERS.md, so a flag added in one place and not the other
(``--enable-prompt-tokens-details``, say) fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from program.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
SERVERS = (ROOT / "docs" / "SERVERS.md").read_text(encoding="utf-8")
STARTS = ("vllm serve ", "python -m sglang.launch_server ", "llama-server ", "scale serve")
CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if "results" not in p.relative_to(ROOT).parts)


def config_commands(path: Path) -> list[str]:
    """The serve commands of a config's leading comment block (empty when it names none)."""
    commands: list[str] = []
    labelled = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        label = re.match(r"Servers?:\s*", text)
        if label:
            labelled, text = True, text[label.end():]
        elif not (labelled and text.startswith(STARTS)):
            labelled = False if commands else labelled
            continue
        commands.append(re.split(r"\s{2,}\(", text)[0].strip())
    return commands


def test_there_are_configs_to_check() -> None:
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_config_names_its_serve_command_as_docs_servers_lists_it(path: Path) -> None:
    commands = config_commands(path)
    assert commands, f"{path}: no '# Server:' line with a serve command in the leading comment block"
    for command in commands:
        assert command.startswith(STARTS), f"{path}: {command!r} is no serve command"
        assert f"`{command}`" in SERVERS, f"{path}: {command!r} is not in docs/SERVERS.md's serve commands"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_names_its_serve_command_as_docs_servers_lists_it(name: str) -> None:
    doc = " ".join((inspect.getdoc(PRESETS[name]) or "").split())  # docstring lines joined
    assert "Serve" in doc, f"preset {name!r}: its docstring names no serve command"
    commands = [span for span in re.findall(r"``(.+?)``", doc) if span.startswith(STARTS)]
    if name == "api":
        assert not commands and "Serve: nothing" in doc  # a provider API
        return
    assert commands, f"preset {name!r}: no serve command in its docstring"
    for command in commands:
        assert f"`{command}`" in SERVERS, f"preset {name!r}: {command!r} is not in docs/SERVERS.md"


def test_a_config_without_a_server_line_is_caught(tmp_path: Path) -> None:
    bare = tmp_path / "x.yaml"
    bare.write_text("# A comment that names no server.\n#   scale eval --config x.yaml\nname: x\n")
    assert config_commands(bare) == []
    two = tmp_path / "y.yaml"
    two.write_text("# Servers: vllm serve A --port 8000\n#          vllm serve B --port 8001  (the thinker)\n"
                   "# Run:     scale eval --config y.yaml\nname: y\n")
    assert config_commands(two) == ["vllm serve A --port 8000", "vllm serve B --port 8001"]
