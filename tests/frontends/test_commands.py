"""The command registry: every registered subcommand is documented (help text, an example, README).

Walks :data:`~aeg_jupyter.frontends.commands.COMMANDS` the way sqlite-utils' ``test_docs`` walks its
commands. ``panel`` is registered by ``frontends.panel_command``, which the magics import, so they are imported first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

import aeg_jupyter.frontends.magics  # noqa: F401  (registers `panel` through frontends.panel_command)
from aeg_jupyter.frontends.commands import (
    COMMANDS,
    KERNEL_REGISTERED,
    ORDER,
    Command,
    CommandError,
    CommandParser,
    Session,
    find_command,
    parser_for,
    register,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _magics_table() -> list[str]:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## Magics\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `%")]


def _typed(name: str) -> str:
    return "%%aeg track" if name == "track" else f"%aeg {name}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_registered_command_is_documented(name: str) -> None:
    cmd = COMMANDS[name]
    assert cmd.summary.strip() and cmd.example.strip(), name
    assert cmd.example.split()[0] in (name, "%%aeg"), f"{name}: the example does not run {name}"
    doc = cmd.run.__doc__ or ""
    assert doc.strip() and "Example:" in doc, f"{name}: its function needs a docstring with an example"
    for prefix, user_ns in (("%aeg", {}), ("aeg", None)):
        text = parser_for(Session(None, prefix=prefix, user_ns=user_ns), cmd).format_help()  # type: ignore[arg-type]
        flat = " ".join(text.split())  # argparse wraps the description
        assert f"example: {cmd.example if cmd.example.startswith('%') else prefix + ' ' + cmd.example}" in flat, name
        assert " ".join(cmd.summary[1:].split()) in flat, name
    rows = [row for row in _magics_table() if row.startswith(f"| `{_typed(name)}")]
    assert rows, f"README.md's magics table has no row for `{_typed(name)}`"


def test_help_order_and_registry_agree() -> None:
    assert list(COMMANDS) == list(ORDER)  # with the magics imported, every listed name is registered
    assert set(KERNEL_REGISTERED) <= set(ORDER)
    assert not any(COMMANDS[name].cli for name in KERNEL_REGISTERED)


def test_the_command_layer_alone_has_no_panel_and_the_cli_says_it_needs_a_kernel() -> None:
    code = textwrap.dedent(
        """
        import sys
        from aeg_jupyter.frontends.commands import COMMANDS, CommandError, Session, find_command
        assert "panel" not in COMMANDS, list(COMMANDS)
        try:
            find_command(Session(None, prefix="aeg"), "panel")
        except CommandError as exc:
            print(exc)
        print(sorted(m for m in ("IPython", "ipywidgets", "aeg_jupyter.frontends.panel") if m in sys.modules))
        """
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "aeg: `panel` needs a notebook kernel; in a notebook type `%aeg panel`",
        "[]",
    ]


def test_registering_a_taken_name_or_alias_is_refused() -> None:
    def noop(p: CommandParser) -> None:
        return None

    with pytest.raises(ValueError, match="'ls' is already taken by 'list'"):
        register(Command("listing", "x", "listing", noop, lambda s, a: None, aliases=("ls",)))
    assert "listing" not in COMMANDS
    with pytest.raises(CommandError, match=re.escape("did you mean `aeg list`?")):
        find_command(Session(None, prefix="aeg"), "lst")  # type: ignore[arg-type]
