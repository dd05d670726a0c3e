"""`python -m tutorial_lib COMMAND` (tutorial_lib/__main__.py) and `python -m tutorial_lib.build`
(tutorial_lib/build.py): dispatch to each command's main, with a usage and exit codes."""

from __future__ import annotations

import runpy
import sys

import pytest

import tutorial_lib
from tutorial_lib import __main__ as cli
from tutorial_lib import notebooks


def test_usage_lists_every_command(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tutorial_lib COMMAND")
    assert all(f"  {name}" in out for name in cli.COMMANDS)
    assert cli.main(["--help"]) == 0


def test_version_and_unknown_command(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == tutorial_lib.__version__
    assert cli.main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_a_missing_module_is_reported_not_raised(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "fly", ("tutorial_lib.not_there", "main", "fly", ()))
    assert cli.main(["fly"]) == 2
    assert "not available in this version" in capsys.readouterr().err


def test_build_command_reaches_notebooks_build(monkeypatch, capsys, tmp_path):
    calls = []

    def fake_build(check=False):
        calls.append(check)
        return [tmp_path / "01_x.ipynb"] if check else []

    monkeypatch.setattr(notebooks, "build", fake_build)
    assert cli.main(["build", "--check"]) == 1
    assert "out of date (01_x.ipynb)" in capsys.readouterr().out
    assert cli.main(["build"]) == 0
    assert calls == [True, False]


def test_build_module_runs_the_build(monkeypatch, capsys):
    monkeypatch.setattr(notebooks, "build", lambda **_kwargs: [])
    monkeypatch.setattr(sys, "argv", ["tutorial_lib.build", "--check"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("tutorial_lib.build", run_name="__main__")
    assert stop.value.code == 0
    assert "chapters/ is up to date." in capsys.readouterr().out
