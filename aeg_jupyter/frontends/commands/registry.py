"""The registry of subcommands: the :class:`Command` record, :data:`COMMANDS`, and the router.

Each group module (``artifacts``, ``memory``, ``maintenance``, ``runs``, ``help``) registers its
subcommands with the :func:`subcommand` decorator when the package is imported. A front end may
register more with :func:`register`: the magics register ``panel`` (the command layer never imports
the panel; see docs/architecture.md). :data:`ORDER` fixes the order ``help`` lists them in, whoever
registers them and whenever.

Example:
    >>> @subcommand("hello", "say hello", "hello", _no_args)       # doctest: +SKIP
    ... def run_hello(s: Session, a: argparse.Namespace) -> str:
    ...     return "hello"
    >>> run_command(session, ["hello"])                             # doctest: +SKIP
    'hello'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .parsing import CommandError, CommandParser, HelpShown, did_you_mean
from .session import Session

Runner = Callable[[Session, argparse.Namespace], Any]
R = TypeVar("R", bound=Runner)


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, one-line summary, an example, its arguments and its function.

    Example:
        >>> Command("status", "store path and counts", "status", lambda p: None, lambda s, a: None).cli
        True
    """

    name: str
    summary: str
    example: str
    add_arguments: Callable[[CommandParser], None]
    run: Runner
    cli: bool = True
    aliases: tuple[str, ...] = ()
    takes_id: bool = False
    details: str = ""


# The order `help` lists the subcommands in (a name registered but not listed here comes last).
ORDER: tuple[str, ...] = (
    "save", "load", "path", "show", "recent", "log", "best", "search", "list", "pin", "unpin", "gc", "verify",
    "leaderboard", "panel", "plot", "compare", "lineage", "diff", "runs", "run", "status", "help", "track",
)  # fmt: skip
# Subcommands a kernel front end registers (the magics: `panel`); elsewhere they need a kernel.
KERNEL_REGISTERED: tuple[str, ...] = ("panel",)

COMMANDS: dict[str, Command] = {}
ALIASES: dict[str, str] = {}


def _rank(name: str) -> int:
    return ORDER.index(name) if name in ORDER else len(ORDER)


def register(command: Command) -> Command:
    """Add ``command`` to :data:`COMMANDS` (in :data:`ORDER`) and its aliases to :data:`ALIASES`.

    Registering a name again replaces that command (a reloaded module); a name or alias that
    another command already uses is refused with ``ValueError``.

    Example:
        >>> register(Command("hello", "say hello", "hello", _no_args, lambda s, a: "hello"))  # doctest: +SKIP
    """
    taken = {n: c.name for c in COMMANDS.values() if c.name != command.name for n in (c.name, *c.aliases)}
    clash = [n for n in (command.name, *command.aliases) if n in taken]
    if clash:
        raise ValueError(f"subcommand {command.name!r}: {clash[0]!r} is already taken by {taken[clash[0]]!r}")
    COMMANDS[command.name] = command
    ranked = sorted(COMMANDS.values(), key=lambda c: _rank(c.name))  # stable: unlisted ones keep their order
    COMMANDS.clear()  # in place: `from ... import COMMANDS` sees later registrations
    COMMANDS.update((c.name, c) for c in ranked)
    ALIASES.clear()
    ALIASES.update((alias, c.name) for c in ranked for alias in c.aliases)
    return command


def subcommand(
    name: str, summary: str, example: str, add_arguments: Callable[[CommandParser], None], **options: Any
) -> Callable[[R], R]:
    """Decorator: register the decorated function as the runner of subcommand ``name``.

    ``options`` are the other :class:`Command` fields (``cli``, ``aliases``, ``takes_id``, ``details``).

    Example:
        >>> @subcommand("verify", "re-hash every blob", "verify", _verify_args)      # doctest: +SKIP
        ... def run_verify(s: Session, a: argparse.Namespace) -> VerifyReport: ...
    """

    def wrap(run: R) -> R:
        register(Command(name, summary, example, add_arguments, run, **options))
        return run

    return wrap


def commands_for(s: Session) -> list[Command]:
    """The subcommands this front end offers (the CLI has no kernel: no load, run or track).

    Example:
        >>> [c.name for c in commands_for(Session(None, prefix="aeg"))][:3]
        ['save', 'path', 'show']
    """
    return [c for c in COMMANDS.values() if c.cli or s.in_kernel]


def find_command(s: Session, name: str) -> Command:
    """The subcommand called ``name`` (or an alias); a mistake suggests the nearest name.

    Example:
        >>> find_command(Session(None, prefix="aeg"), "ls").name
        'list'
    """
    cmd = COMMANDS.get(ALIASES.get(name, name))
    if cmd is not None and (cmd.cli or s.in_kernel):
        return cmd
    if cmd is not None or (name in KERNEL_REGISTERED and not s.in_kernel):
        canonical = name if cmd is None else cmd.name
        where = "%%aeg track KIND" if canonical == "track" else f"%aeg {canonical}"
        raise CommandError(f"{s.prefix}: `{name}` needs a notebook kernel; in a notebook type `{where}`")
    if name in KERNEL_REGISTERED:
        raise CommandError(f"{s.prefix}: `{name}` comes with the magics; type `%load_ext aeg_jupyter` first")
    names = [c.name for c in commands_for(s)] + [a for a, n in ALIASES.items() if COMMANDS[n] in commands_for(s)]
    guess = did_you_mean(name, names, quote="`").replace("`", f"`{s.prefix} ", 1)
    raise CommandError(f"{s.prefix}: unknown subcommand {name!r}; {guess}`{s.prefix} help` lists them")


def parser_for(s: Session, cmd: Command) -> CommandParser:
    """The (cached) parser of one subcommand for this front end.

    Example:
        >>> parser_for(Session(None, prefix="aeg"), COMMANDS["gc"]).prog
        'aeg gc'
    """
    parser = s._parsers.get(cmd.name)
    if parser is None:
        prog = s.typed(cmd.name)
        example = cmd.example if cmd.example.startswith("%") else f"{s.prefix} {cmd.example}"
        description = cmd.summary[0].upper() + cmd.summary[1:] + "." + (f" {cmd.details}" if cmd.details else "")
        parser = s.parser_class(prog=prog, description=description, epilog=f"example: {example}", example=example)
        cmd.add_arguments(parser)
        s._parsers[cmd.name] = parser
    return parser


def overview(prefix: str = "%aeg", *, in_kernel: bool = True) -> str:
    """The text of ``help`` with no argument: every subcommand with its one-line summary.

    Example:
        >>> print(overview("aeg", in_kernel=False).splitlines()[0])
        aeg SUBCOMMAND [options]: durable artifacts and event memory (aeg_jupyter)
    """
    lines = [f"{prefix} SUBCOMMAND [options]: durable artifacts and event memory (aeg_jupyter)", ""]
    for c in COMMANDS.values():
        if c.cli or in_kernel:
            name = c.name + (f" ({', '.join(c.aliases)})" if c.aliases else "")
            lines.append(f"  {name:<10} {c.summary}")
    lines += ["", f"`{prefix} help SUB` or `{prefix} SUB -h` shows a subcommand's options."]
    if in_kernel:
        lines.append(
            "Lines expand $var and {expr} as f-strings do ({loss:.4f}, {name!r}); {{ and }} are literal braces."
        )
    return "\n".join(lines)


def run_command(s: Session, argv: list[str]) -> Any:
    """Parse ``argv`` (``[SUBCOMMAND, args...]``) and run it; an empty line prints the overview.

    Raises:
        CommandError: (or the parser class's error) for a mistyped command.
        AegError: from the core, for a request it refuses (the message says why).

    Example:
        >>> run_command(session, ["recent", "train_log", "-n", "3"])      # doctest: +SKIP
    """
    if not argv:
        print(overview(s.prefix, in_kernel=s.in_kernel))
        return None
    cmd = find_command(s, argv[0])
    parser = parser_for(s, cmd)
    try:
        args = parser.parse_args(argv[1:])
    except HelpShown:
        return None
    return cmd.run(s, args)


__all__ = [
    "ALIASES",
    "COMMANDS",
    "KERNEL_REGISTERED",
    "ORDER",
    "Command",
    "commands_for",
    "find_command",
    "overview",
    "parser_for",
    "register",
    "run_command",
    "subcommand",
]
