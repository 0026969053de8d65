"""The README's local-stack recipes (`make invoke`, `sam local invoke`) name only what exists.

Each command of those code blocks is checked as written, to be copied and pasted from the
repository root: make targets in the Makefile, modules and their options, the programs in .venv/bin
and where they come from, event files, function logical ids, and the endpoint the containers use.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from local.cfn import load_deployed_template
from local.lambda_runtime import functions_from_template
from local.provision import STACK_NAME
from local.stack import parse_args as stack_args

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
FUNCTIONS = set(functions_from_template(load_deployed_template(), STACK_NAME))
# What make installs into .venv/bin, and from which requirements file.
VENV_PROGRAMS = {"python": None, "sam": ("requirements-dev.txt", "aws-sam-cli==")}


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def commands_in_blocks_with(text: str) -> list[list[str]]:
    """Each shell command of the local-stack section's code blocks that mention `text`."""
    blocks = re.findall(r"```sh\n(.*?)```", section("The local stack"), re.DOTALL)
    chosen = [block for block in blocks if text in block]
    assert chosen, f"no code block in The local stack mentions {text}"
    commands = []
    for block in chosen:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def makefile_targets() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def check_make(words: list[str]) -> None:
    target, *variables = words[1:]
    assert target in makefile_targets(), f"make {target}"
    for variable in variables:
        name, _, value = variable.partition("=")
        if name == "EVENT":
            assert (REPO_ROOT / value).is_file(), variable
        elif name == "FUNCTION":
            assert value in FUNCTIONS, variable
        else:
            pytest.fail(f"make {target} {variable}: a variable the test does not know")


def check_venv_program(words: list[str]) -> str:
    program = words[0].removeprefix(".venv/bin/")
    assert words[0].startswith(".venv/bin/"), f"{words[0]}: not the project's .venv"
    assert program in VENV_PROGRAMS, program
    source = VENV_PROGRAMS[program]
    if source is not None:
        requirements = (REPO_ROOT / source[0]).read_text(encoding="utf-8")
        assert source[1] in requirements, f"{program} is not pinned in {source[0]}"
    return program


def test_the_make_invoke_recipe_names_targets_events_and_functions_that_exist() -> None:
    commands = commands_in_blocks_with("make invoke")

    assert any(words[:2] == ["make", "invoke"] for words in commands)
    for words in commands:
        assert words[0] == "make", words
        check_make(words)


def test_the_sam_local_invoke_recipe_is_copy_pasteable_from_the_repository_root() -> None:
    commands = commands_in_blocks_with("sam local invoke")
    env_vars = json.loads((REPO_ROOT / "events" / "env.json").read_text(encoding="utf-8"))

    invokes = 0
    for words in commands:
        if words[0] == "make":
            check_make(words)
            continue
        program = check_venv_program(words)
        if program == "python":
            assert words[1:3] == ["-m", "local.stack"], words
            assert (REPO_ROOT / "local" / "stack.py").is_file()
            assert stack_args(words[3:]).moto_host == "0.0.0.0"  # noqa: S104 - no bind
            continue
        assert words[1:3] == ["local", "invoke"], words
        invokes += 1
        function = words[3]
        assert function in FUNCTIONS
        assert (REPO_ROOT / option(words, "-e")).is_file()
        assert option(words, "--env-vars") == "events/env.json"
        endpoint = env_vars[function]["AWS_ENDPOINT_URL"]
        assert option(words, "--parameter-overrides") == f"LocalEndpointUrl={endpoint}"
        host, _, address = option(words, "--add-host").partition(":")
        assert host in endpoint
        assert address == "host-gateway"
    assert invokes == 1
    # the stack runs with the emulator on the port env.json points the containers at
    assert all(
        variables["AWS_ENDPOINT_URL"].endswith(f":{stack_args([]).moto_port}")
        for variables in env_vars.values()
    )


def test_the_recipe_is_in_the_local_stack_section_only() -> None:
    assert README.count("sam local invoke ProcessPaymentFunction") == 1
    assert "sam local invoke ProcessPaymentFunction" in section("The local stack")
    # never the system's python or a sam on the PATH: both live in .venv
    for words in commands_in_blocks_with("sam local invoke"):
        assert words[0] not in ("python", "python3", "sam"), words
