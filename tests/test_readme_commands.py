"""Every command the README shows (`python -m replicate ...`, `./run_all.sh ...`, `torchrun ... -m replicate ...`)
parses, and its experiments, scale, `--set` and `--where` resolve to valid configurations: a reader who copies one
never meets an error the README did not warn about. Nothing is run."""

import re
import shlex
from pathlib import Path

import pytest

from replicate.cli import build_parser, select
from replicate.errors import ConfigError
from replicate.registry import EXPERIMENTS
from replicate.results import ROOT
from replicate.runner import apply_overrides, parse_overrides, resolve_configs
from replicate.train.configs import train_config

README = ROOT / "README.md"
ENTRY = re.compile(r"(?:python -m replicate|torchrun [^`#]*?-m replicate|\./run_all\.sh)\b[^`#\n]*")
RUN_ALL_OWN = {"test", "lint", "--list", "--help", "-h"}  # run_all.sh's own commands (not `replicate run`)


def readme_commands(text: str) -> list[str]:
    """The commands in the README's code blocks and inline code, without comments; `[--x]` marks an option shown
    as optional, kept; a synopsis with alternatives (`{run,report}`, `smoke|cpu`) is not a command."""
    spans = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
    found = []
    for span in spans:
        for line in span.splitlines():
            for match in ENTRY.finditer(line.split(" #")[0]):
                if not re.search(r"[{|]", match.group(0)):
                    found.append(match.group(0).replace("[", "").replace("]", "").strip())
    return list(dict.fromkeys(found))


def replicate_arguments(command: str) -> list[str] | None:
    """The `python -m replicate` arguments a command amounts to (run_all.sh's default is `run`); None for
    run_all.sh's own commands."""
    words = shlex.split(command)
    if words[0] == "./run_all.sh":
        rest = words[1:]
        if rest and rest[0] == "--plan":  # run_all.sh --plan ARGS is `replicate plan ARGS`
            return ["plan", *rest[1:]]
        return None if rest and rest[0] in RUN_ALL_OWN else ["run", *rest]
    return words[words.index("replicate") + 1 :]


def validate(arguments: list[str]) -> None:
    """Parse like the command line and resolve what the command would run, without running it."""
    args = build_parser().parse_args(arguments)
    scale = getattr(args, "scale", None) or "cpu"
    if args.command == "run":
        overrides, where = parse_overrides(args.set), parse_overrides(args.where, "--where")
        for name in select(args.experiments, args.only):
            resolve_configs(EXPERIMENTS[name], scale, overrides, where)
    elif args.command == "train":
        apply_overrides(train_config(args.config, scale), parse_overrides(args.set))
    elif args.command in ("report", "figures"):
        select(args.experiments, None)


COMMANDS = readme_commands(README.read_text())


def test_the_readme_shows_the_commands_a_user_copies():
    assert len(COMMANDS) >= 8, COMMANDS
    assert "./run_all.sh" in COMMANDS and "./run_all.sh test" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses_and_resolves_its_configurations(command):
    arguments = replicate_arguments(command)
    if arguments is None:
        assert shlex.split(command)[1] in RUN_ALL_OWN
        return
    validate(arguments)


def test_a_wrong_command_is_caught_by_the_same_check():
    with pytest.raises(ConfigError, match="colour"):
        validate(["run", "dq_generation", "--scale", "paper", "--set", "tokenizer.colour=red"])
    with pytest.raises(SystemExit):
        validate(["run", "--scales", "cpu"])


def test_set_reaches_a_nested_configurations_field_as_where_does():
    """Deferred Quantization's paper-scale data named on the command line, not through environment variables."""
    configs = resolve_configs(
        EXPERIMENTS["dq_generation"], "paper", parse_overrides(["tokenizer.data_root=/data/imagenet100"])
    )
    assert configs and {c.tokenizer.data_root for c in configs} == {"/data/imagenet100"}


def test_readme_commands_are_found_in_code_blocks_and_inline_code():
    text = "```bash\n./run_all.sh --only a   # note\npython -m replicate bench [--json]\n```\nsee `./run_all.sh test`"
    text += ", `python -m replicate {list,run}`"
    assert readme_commands(text) == ["./run_all.sh --only a", "python -m replicate bench --json", "./run_all.sh test"]
    assert Path(README).exists()
