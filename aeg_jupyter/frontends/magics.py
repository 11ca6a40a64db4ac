"""``%aeg`` and ``%%aeg track``: the IPython front end (the only module that imports IPython).

``%load_ext aeg_jupyter`` opens the store (``$AEG_STORE``, else ``%config AegMagics.store``, else
``./.aeg``), starts a run, binds ``context`` and prints one line. Every cell then updates the
context's node (the cell id, or ``In[n]``); the graph is the notebook's path when the kernel knows
it. The subcommands themselves live in :mod:`aeg_jupyter.frontends.commands`, shared with the ``aeg``
console script; here they get IPython's ``UsageError`` for mistakes, the notebook namespace for
``save VARIABLE``, tab completion and a cell runner for ``%%aeg track``. The one kernel-only
subcommand the command layer cannot hold, ``panel``, is registered by
:mod:`aeg_jupyter.frontends.panel_command`, imported here (it imports the panel only when run).

The magics call the synchronous core directly: nothing here runs a coroutine on the kernel's
loop (``%%aeg track`` hands a cell with top-level ``await`` to :func:`aeg_jupyter.run_sync`).

Example (in a notebook)::

    %load_ext aeg_jupyter
    df = %aeg recent train_log -n 5
    best = %aeg best checkpoint --metric val_acc
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import weakref
from typing import Any, NoReturn, cast

import IPython
from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope, no_var_expand
from traitlets import Enum, Int, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from ..api.context import DEFAULT_ROOT, KernelContext, connect, headless_notebook
from ..api.run_sync import run_sync
from ..base.errors import AegError
from ..base.models import SCOPES
from ..core.artifacts import GcReport, VerifyReport
from ..core.environment import BackgroundCapture
from ..storage.objectstore import is_url
from . import panel_command  # noqa: F401  (registers `%aeg panel`)
from .commands import (
    ALIASES,
    COMMANDS,
    CommandError,
    CommandParser,
    Session,
    expand_line,
    overview,
    parser_for,
    run_command,
    split_line,
    store_status,
)

BOUND_NAMES = ("context", "aeg_context")
_OURS: weakref.WeakSet[KernelContext] = weakref.WeakSet()
_MISSING = object()
_ID_COMMANDS = {name for name, c in COMMANDS.items() if c.takes_id}
_ARTIFACT_KIND_COMMANDS = {"search", "list", "best"}
_EVENT_KIND_COMMANDS = {"recent", "log", "track"}
_MAX_COMPLETIONS = 50
_MAGIC_LINE = re.compile(r"^\s*(?:[\w.\[\], ]+=\s*)?(%%?aeg(?:\s.*)?)$")  # `%aeg ...` or `x = %aeg ...`


class MagicParser(CommandParser):
    """The subcommand parser inside IPython: a mistake raises a one-line ``UsageError``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.explain(message))


@magics_class
class AegMagics(Magics, Configurable):
    """The ``%aeg`` magics and their settings (``%config AegMagics`` lists them).

    Example:
        >>> %config AegMagics.display_limit = 50          # doctest: +SKIP
    """

    store = Unicode(
        "",
        config=True,
        help="Store root used when $AEG_STORE is not set (default: ./.aeg beside the notebook). "
        "Setting it after %load_ext switches the kernel to that store.",
    )
    graph = Unicode(
        "",
        config=True,
        help="The notebook (graph) id of this kernel's writes, what --scope graph means. Default: $AEG_GRAPH, "
        "else the notebook's path when the kernel knows it (JupyterLab, VS Code, nbconvert --execute, papermill), "
        "else 'default'. Setting it after %load_ext applies to the next writes.",
    )
    display_limit = Int(20, config=True, help="Rows returned by %aeg recent/list/search/runs when -n is not given.")
    default_scope = Enum(
        list(SCOPES),
        default_value="all",
        config=True,
        help="Scope of %aeg queries without --scope: run (this kernel session), graph (this notebook), "
        "node (this cell), or all (the whole store, so a restarted kernel recalls earlier ones).",
    )
    hot_limit = Int(
        1000, config=True, help="Newest events kept in memory for instant recall (applies when the store is opened)."
    )

    def __init__(self, shell: InteractiveShell) -> None:
        self.context: KernelContext | None = None  # set first: loading config fires the observers
        self.bound_name: str | None = None
        self._parsers: dict[str, CommandParser] = {}
        self._count_seen: int | None = None
        self._headless: object = _MISSING
        self._count_offset = -1 if IPython.version_info >= (9,) else 0  # corrected after each cell
        # Magics.__init__ appends us to shell.configurables and takes config from the shell.
        super().__init__(shell=shell)

    # -- settings ----------------------------------------------------------------------------
    @validate("display_limit", "hot_limit")
    def _positive(self, proposal: Any) -> int:
        value = proposal["value"]
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, got {value}")
        return int(value)

    @observe("graph")
    def _graph_changed(self, change: Any) -> None:
        if self.context is not None:
            self.context.graph_id = change["new"] or self.graph_id()

    @observe("store")
    def _store_changed(self, change: Any) -> None:
        old = self.context
        if old is None or not change["new"]:
            return
        new = change["new"]
        root = new if is_url(new) else os.path.abspath(os.path.expanduser(new))  # a URL is not a path
        if root == old.store.root:
            return
        try:
            ctx = connect(root, run_id=old.run_id, graph_id=old.graph_id, hot_limit=self.hot_limit)
        except AegError as exc:
            raise UsageError(f"%config AegMagics.store: {exc}") from None
        ctx.node_id = old.node_id
        ctx.script, ctx.environment = old.script, old.environment
        _OURS.add(ctx)
        self.context = ctx
        ns = self.shell.user_ns
        if self.bound_name and ns.get(self.bound_name) is old:
            ns[self.bound_name] = ctx
        old.close()
        print(store_status(ctx).line())

    # -- opening and closing -----------------------------------------------------------------
    def open(self) -> str:
        """Open the store, start a run, bind ``context``; return the one line ``%load_ext`` prints."""
        root = os.environ.get("AEG_STORE") or self.store or os.path.abspath(DEFAULT_ROOT)
        try:
            ctx = connect(root, hot_limit=self.hot_limit, graph_id=self.graph_id())
        except AegError as exc:
            raise UsageError(f"aeg_jupyter: {exc}") from None
        ctx.node_id = self.node_id(None)
        ctx.script = False
        ctx.environment = BackgroundCapture(git_dir=os.getcwd()).result  # saved at each run's first write
        _OURS.add(ctx)
        self.context = ctx
        bound = self._bind(ctx)
        self.shell.events.register("pre_run_cell", self._pre_run_cell)
        self.shell.events.register("post_run_cell", self._post_run_cell)
        if self.matcher not in self.shell.Completer.custom_matchers:
            self.shell.Completer.custom_matchers.append(self.matcher)
        plain = self.shell.display_formatter.formatters["text/plain"]
        for report in (GcReport, VerifyReport):
            plain.for_type(report, _pretty_str)
        return f"{store_status(ctx).line()} | {bound}"

    def _bind(self, ctx: KernelContext) -> str:
        ns = self.shell.user_ns
        for name in BOUND_NAMES:
            cur = ns.get(name, _MISSING)
            if cur is _MISSING or (isinstance(cur, KernelContext) and any(cur is c for c in _OURS)):
                ns[name] = ctx
                self.bound_name = name
                return "`context` is ready" if name == "context" else "`context` was taken: use `aeg_context`"
        self.bound_name = None
        return "`context` and `aeg_context` are taken: get it with `aeg_jupyter.frontends.magics.current_context()`"

    def close(self) -> str:
        """Flush and close the store, stop following cells, unbind ``context``; return a one-line note."""
        ctx = self.context
        try:
            self.shell.events.unregister("pre_run_cell", self._pre_run_cell)
            self.shell.events.unregister("post_run_cell", self._post_run_cell)
        except ValueError:
            pass
        if ctx is None:
            return "aeg_jupyter: nothing to close"
        ns = self.shell.user_ns
        if self.bound_name and ns.get(self.bound_name) is ctx:
            del ns[self.bound_name]
        self.bound_name = None
        self.context = None
        ctx.close()
        return f"aeg_jupyter: store {ctx.store.root} closed (spools flushed to Parquet)"

    # -- scopes from the kernel --------------------------------------------------------------
    def graph_id(self) -> str:
        """``%config AegMagics.graph``, ``$AEG_GRAPH``, else the notebook's path when the kernel knows it.

        The path: ``__session__`` (JupyterLab, Notebook 7), VS Code's ``__vsc_ipynb_file__``,
        ``$JPY_SESSION_NAME``, else the notebook a headless runner executes (nbconvert
        ``--execute``, papermill; :func:`~aeg_jupyter.api.context.headless_notebook`); else "default".
        """
        if self.graph or os.environ.get("AEG_GRAPH"):
            return self.graph or os.environ["AEG_GRAPH"]
        ns = self.shell.user_ns
        for key in ("__session__", "__vsc_ipynb_file__"):
            value = ns.get(key)
            if isinstance(value, str) and value:
                return value
        if os.environ.get("JPY_SESSION_NAME"):
            return os.environ["JPY_SESSION_NAME"]
        if self._headless is _MISSING:  # the runner does not change: read /proc once
            self._headless = headless_notebook()
        return cast(str | None, self._headless) or "default"

    def node_id(self, info: Any) -> str:
        """The current cell: its id when the front end sends one, else ``In[n]``."""
        cell_id = getattr(info, "cell_id", None)
        if not cell_id:
            parent = getattr(self.shell, "parent_header", None)
            if isinstance(parent, dict):
                cell_id = (parent.get("metadata") or {}).get("cellId")
        if cell_id:
            return str(cell_id)
        return f"In[{self.shell.execution_count + self._count_offset}]"

    def _post_run_cell(self, result: Any) -> None:
        # NOTE: IPython 9 counts a cell before `pre_run_cell`, IPython 8 after it: learn which from
        # the count the finished cell really got, so `In[n]` matches the prompt on every version.
        seen, real = self._count_seen, getattr(result, "execution_count", None)
        if seen is not None and isinstance(real, int) and getattr(result.info, "store_history", True):
            self._count_offset = real - seen

    def _pre_run_cell(self, info: Any) -> None:
        self._count_seen = self.shell.execution_count
        ctx = self.context
        if ctx is None:
            return
        ctx.node_id = node = self.node_id(info)
        if ctx.graph_id == "default":
            ctx.graph_id = self.graph_id()
        # lineage: the cell's source and ids stamp its writes, its reads start afresh
        count = self.shell.execution_count + self._count_offset
        cell_id = None if node.startswith("In[") else node
        ctx.begin_cell(getattr(info, "raw_cell", None) or "", cell_id=cell_id, execution_count=count)

    # -- the magic ---------------------------------------------------------------------------
    def session(self, cell: str | None = None) -> Session:
        """A :class:`~aeg_jupyter.frontends.commands.Session` for one ``%aeg`` call."""
        if self.context is None or self.context.store.closed:
            raise UsageError("aeg_jupyter is not loaded; type `%load_ext aeg_jupyter` first")
        return Session(
            self.context,
            prefix="%aeg",
            user_ns=self.shell.user_ns,
            display_limit=self.display_limit,
            default_scope=self.default_scope,
            parser_class=MagicParser,
            cell=cell,
            execute=self.execute_cell,
            _parsers=self._parsers,
        )

    @line_cell_magic
    @no_var_expand  # NOTE: IPython gives up on the whole line at one `{x:.4f}`; expand_line never does
    @needs_local_scope
    def aeg(self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None) -> Any:
        session = self.session(cell)
        sub = ""
        try:
            argv = split_line(expand_line(line, self.shell.user_ns, local_ns))
            sub = ALIASES.get(argv[0], argv[0]) if argv else ""
            if cell is not None and sub != "track":
                raise UsageError(
                    "only `track` runs as a cell magic: make `%%aeg track KIND` the cell's first line "
                    f"(type other subcommands on a line: `%aeg {line.strip() or 'help'}`)"
                )
            return run_command(session, argv)
        except UsageError:
            raise
        except (CommandError, AegError, OSError) as exc:
            if session.cell_raised:  # the tracked cell's own error: show it as the cell's
                raise
            raise UsageError(_one_line(exc, sub)) from None

    def execute_cell(self, cell: str) -> Any:
        """Run a cell body in the user namespace like ``%%time`` does; return its last expression.

        IPython syntax (magics, ``!cmd``) is transformed first; top-level ``await`` runs through
        :func:`aeg_jupyter.run_sync`. Exceptions propagate unchanged.
        """
        shell = self.shell
        source = shell.transform_cell(cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source))
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        filename = shell.compile.cache(source)
        flags = shell.compile.flags | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        glob, loc = shell.user_global_ns, shell.user_ns
        _finish(eval(compile(tree, filename, "exec", flags, dont_inherit=True), glob, loc))
        if last is None:
            return None
        return _finish(eval(compile(last, filename, "eval", flags, dont_inherit=True), glob, loc))

    # -- completion --------------------------------------------------------------------------
    def complete(self, text: str) -> list[str] | None:
        """Completions for a ``%aeg`` line up to the cursor, or ``None`` to leave it to IPython.

        Subcommands, options (only options after ``-``), kinds, metric names, label keys (``--by``,
        ``--label``), scopes, and artifact ids: the 8-character short ids every table shows, and
        full ids by prefix.
        """
        words = text.split()
        current = "" if text.endswith((" ", "\t")) else (words.pop() if words else "")
        is_cell = bool(words) and words[0].startswith("%%")
        words = words[1:]  # drop %aeg / %%aeg
        if not words:
            return [c for c in (["track"] if is_cell else sorted([*COMMANDS, *ALIASES])) if c.startswith(current)]
        ctx = self.context
        name = ALIASES.get(words[0], words[0])
        cmd = COMMANDS.get(name)
        if ctx is None or cmd is None:
            return []
        prev = words[-1] if len(words) > 1 else ""
        arts, log = ctx.store.artifacts, ctx.store.event_log
        positional = [w for i, w in enumerate(words[1:], 1) if not w.startswith("-") and not _takes_value(words[i - 1])]
        kind = positional[0] if positional and name in _ARTIFACT_KIND_COMMANDS | {"leaderboard"} else None
        if current.startswith("-"):
            options = parser_for(self.session(), cmd)._option_string_actions
            return sorted(o for o in options if o.startswith("--") and o.startswith(current))
        if prev == "--scope":
            choices: list[str] = list(SCOPES)
        elif prev == "--kind":
            choices = arts.kinds()
        elif prev == "--metric":
            choices = arts.metric_names(kind)
        elif prev == "--by":
            from ..core.leaderboard import label_keys

            choices = label_keys(arts, kind=kind)
        elif prev == "--label":
            choices = self._label_choices(kind, current)
        elif prev.startswith("-"):
            return None
        elif name in _ID_COMMANDS and not positional:
            return self._id_choices(current)
        elif name in _ARTIFACT_KIND_COMMANDS | {"leaderboard"} and not positional:
            choices = arts.kinds()
        elif name in _EVENT_KIND_COMMANDS and (name == "recent" or not positional):
            choices = log.kinds()
        elif name == "help" and not positional:
            choices = sorted(COMMANDS)
        elif name == "run" and not positional:
            choices = ["new"]
        else:
            return None  # save: Python names and file paths, IPython's own completers
        return [c for c in choices if c.startswith(current)][:_MAX_COMPLETIONS]

    def _id_choices(self, current: str) -> list[str]:
        """Short ids (last 8 characters, as tables show them) starting with ``current``, then full ids."""
        want = current.upper()
        arts = self.context.store.artifacts.list(limit=None) if self.context else []
        short = [a.short_id for a in arts if a.short_id.startswith(want)]
        full = [a.artifact_id for a in arts if len(want) > 0 and a.artifact_id.startswith(want)]
        return list(dict.fromkeys(short + full))[:_MAX_COMPLETIONS]

    def _label_choices(self, kind: str | None, current: str) -> list[str]:
        """``key=`` for each label key; once ``key=`` is typed, ``key=value`` for the values seen."""
        arts = self.context.store.artifacts.list(kind=kind) if self.context else []
        key, sep, _ = current.partition("=")
        if not sep:
            return sorted({f"{k}=" for a in arts for k in a.labels})
        return sorted({f"{key}={a.labels[key]}" for a in arts if key in a.labels}, key=str)

    @context_matcher()
    def matcher(self, context: CompletionContext) -> SimpleMatcherResult:
        """IPython's completion of ``%aeg`` / ``%%aeg`` lines (other lines: left to other matchers).

        Its completions, when it has some, are the only ones shown: no Python builtins after
        ``%aeg ls -``, also with Jedi on, as in real kernels (IPython keeps Jedi's next to the
        results of a ``complete_command`` hook).
        """
        m = _MAGIC_LINE.match(context.text_until_cursor)
        text = m.group(1) if m else ""
        found = self.complete(text) if text else None
        if not found:
            return {"completions": [], "suppress": False}
        current = "" if text.endswith((" ", "\t")) else text.split()[-1]
        completions = [SimpleCompletion(c, type="aeg") for c in found]
        return {"completions": completions, "matched_fragment": current, "suppress": True, "ordered": True}


def _takes_value(word: str) -> bool:
    return word in ("--scope", "--kind", "--metric", "--by", "--label", "--name", "-n", "--limit", "--tool")


def _finish(value: Any) -> Any:
    """The value of evaluated code; a coroutine (top-level ``await``) is run to completion first."""
    if inspect.iscoroutine(value):
        return run_sync(value)
    return value


def _pretty_str(obj: Any, p: Any, cycle: bool) -> None:
    p.text(str(obj))


def _one_line(exc: BaseException, sub: str) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and not isinstance(exc, AegError):
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename!r}" if exc.filename else str(exc)
    text = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, CommandError) or text.startswith("%aeg"):
        return text
    where = f"%aeg {sub}" if sub in COMMANDS else "%aeg"
    return f"{where}: {text}"


def current_context(shell: InteractiveShell | None = None) -> KernelContext:
    """The context ``%load_ext aeg_jupyter`` opened in this kernel (when ``context`` was taken).

    Example:
        >>> ctx = aeg_jupyter.frontends.magics.current_context()      # doctest: +SKIP
    """
    shell = shell or InteractiveShell.instance()
    magics = shell.magics_manager.registry.get("AegMagics")
    if not isinstance(magics, AegMagics) or magics.context is None:
        raise UsageError("aeg_jupyter is not loaded; type `%load_ext aeg_jupyter` first")
    return magics.context


AegMagics.aeg.__doc__ = (
    overview("%aeg", in_kernel=True)
    + "\n\nAs a cell magic only `%%aeg track KIND [--metric m=v]...` is accepted: it runs the cell and "
    "records an event with its duration, success or exception, and the cell's source hash."
)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext aeg_jupyter``: open the store, register ``%aeg``, bind ``context``; print one line."""
    if isinstance(ipython.magics_manager.registry.get("AegMagics"), AegMagics):
        unload_ipython_extension(ipython, quiet=True)
    magics = AegMagics(shell=ipython)
    try:
        line = magics.open()
    except BaseException:
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
        raise
    ipython.register_magics(magics)
    print(line)


def unload_ipython_extension(ipython: InteractiveShell, *, quiet: bool = False) -> None:
    """``%unload_ext aeg_jupyter``: flush and close the store and remove everything ``%load_ext`` added."""
    manager = ipython.magics_manager
    magics = manager.registry.get("AegMagics")
    if not isinstance(magics, AegMagics):
        return
    note = magics.close()
    for table in manager.magics.values():
        if getattr(table.get("aeg"), "__self__", None) is magics:
            del table["aeg"]
    manager.registry.pop("AegMagics", None)
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
    if magics.matcher in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.remove(magics.matcher)
    plain = ipython.display_formatter.formatters["text/plain"]
    for report in (GcReport, VerifyReport):
        plain.pop(report, None)
    if not quiet:
        print(note)


__all__ = [
    "AegMagics",
    "MagicParser",
    "current_context",
    "load_ipython_extension",
    "unload_ipython_extension",
]
