"""Every command has help that ends with a runnable example (sqlite-utils' habit)."""

import pytest
from click.testing import CliRunner

from cli import cli

COMMANDS = sorted(name for name, command in cli.commands.items() if not command.hidden)


def test_the_design_commands_exist():
    assert set(COMMANDS) >= {"setup", "setup-account", "submit", "start-cluster", "monitor", "plan", "status",
                             "teardown", "local"}


@pytest.mark.parametrize("name", [*COMMANDS, None])
def test_every_command_has_help_with_an_example(name):
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "python cli.py" in result.output.split("Example", 1)[1]


@pytest.mark.parametrize("alias,command", [("submitJob", "submit"), ("startCluster", "start-cluster")])
def test_ds_aliases_run_the_same_command(alias, command):
    assert cli.commands[alias].callback is cli.commands[command].callback
    assert cli.commands[alias].hidden


def test_every_command_takes_config():
    for name in COMMANDS:
        assert "--config" in CliRunner().invoke(cli, [name, "--help"]).output, name
