"""The import direction is the architecture: a test that reads every import of the package (ast).

Layers, lowest first: ``base`` < ``storage`` < ``core`` < ``api`` < ``frontends`` < the package root
(``aeg_jupyter/__init__.py``, ``demo.py``: the entry points IPython and ``python -m`` call). A module
imports only its own layer and the layers below; no two modules import each other, directly or
around a cycle, counting imports inside functions and under ``TYPE_CHECKING``; IPython, ipywidgets
and traitlets are imported only in ``frontends/``; the magics, the panel and the CLI never import
each other, and the command layer never imports the panel. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import os
import textwrap
from dataclasses import dataclass

import pytest

PKG = "aeg_jupyter"
PKG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PKG)
LAYERS = ("base", "storage", "core", "api", "frontends", "aethergraph")  # aethergraph/: optional, a top layer
ROOT_RANK = len(LAYERS)  # the package root and its top-level modules sit above every layer
UI_LIBRARIES = ("IPython", "ipywidgets", "traitlets", "plotly", "anywidget")  # charts are drawn in frontends/ only
# front-end modules that must not import one another: (importer prefix, forbidden prefix)
SEPARATE = [
    ("frontends.magics", "frontends.panel"),
    ("frontends.magics", "frontends.cli"),
    ("frontends.panel", "frontends.magics"),
    ("frontends.panel", "frontends.cli"),
    ("frontends.panel", "frontends.commands"),
    ("frontends.cli", "frontends.magics"),
    ("frontends.cli", "frontends.panel"),
    ("frontends.commands", "frontends.panel"),
    ("frontends.commands", "frontends.magics"),
    ("frontends.commands", "frontends.cli"),
    ("frontends.cli", "frontends.panel_command"),
    ("aethergraph", "frontends"),  # the AetherGraph backend sits beside the front ends, over api/
    ("", "aethergraph"),  # nothing in the package imports it (the package root is module "")
    ("demo", "aethergraph"),
]


@dataclass(frozen=True)
class Import:
    module: str  # importer, dotted inside the package ("core.store")
    target: str  # imported, dotted: inside the package ("base.errors") or absolute ("IPython.core")
    internal: bool
    line: int


def _module_name(pkg_dir: str, path: str) -> str:
    rel = os.path.relpath(path, pkg_dir)[: -len(".py")].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else ("" if rel == "__init__" else rel)


def read_imports(pkg_dir: str, pkg: str = PKG) -> tuple[set[str], list[Import]]:
    """Every module of the package and every import statement in it, wherever it stands."""
    modules: set[str] = set()
    found: list[Import] = []
    for dirpath, _dirs, files in os.walk(pkg_dir):
        for fname in files:
            if not fname.endswith(".py"):
                continue
            path = os.path.join(dirpath, fname)
            mod = _module_name(pkg_dir, path)
            modules.add(mod)
            is_pkg = fname == "__init__.py"
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), filename=path)
            for node in ast.walk(tree):  # every import, at top level, in functions, under TYPE_CHECKING
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        name = alias.name
                        if name == pkg or name.startswith(pkg + "."):
                            found.append(Import(mod, name[len(pkg) + 1 :], True, node.lineno))
                        else:
                            found.append(Import(mod, name, False, node.lineno))
                elif isinstance(node, ast.ImportFrom):
                    if node.level == 0:
                        name = node.module or ""
                        if name == pkg or name.startswith(pkg + "."):
                            base = name[len(pkg) + 1 :]
                            for alias in node.names:
                                found.append(Import(mod, _join(base, alias.name), True, node.lineno))
                        else:
                            found.append(Import(mod, name, False, node.lineno))
                        continue
                    parts = mod.split(".") if mod else []
                    anchor = parts if is_pkg else parts[:-1]
                    up = node.level - 1
                    if up > len(anchor):
                        raise AssertionError(f"{path}:{node.lineno}: relative import above the package")
                    base = ".".join(anchor[: len(anchor) - up] + ([node.module] if node.module else []))
                    for alias in node.names:
                        found.append(Import(mod, _join(base, alias.name), True, node.lineno))
    # `from .x import name` names a module only when x.name is one; otherwise the target is x
    resolved = []
    for imp in found:
        if imp.internal and imp.target not in modules:
            imp = Import(imp.module, imp.target.rpartition(".")[0], True, imp.line)
        resolved.append(imp)
    return modules, resolved


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_rank(module: str) -> int:
    head = module.split(".")[0]
    return LAYERS.index(head) if head in LAYERS else ROOT_RANK


def violations(pkg_dir: str, pkg: str = PKG) -> list[str]:
    """Every broken rule, one line each (empty: the architecture holds)."""
    modules, imports = read_imports(pkg_dir, pkg)
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        where = f"{pkg}/{imp.module.replace('.', '/') or '__init__'}.py:{imp.line}"
        if not imp.internal:
            top = imp.target.split(".")[0]
            if top in UI_LIBRARIES and not imp.module.startswith("frontends"):
                problems.append(f"{where}: imports {imp.target} outside frontends/")
            continue
        if imp.target == imp.module:
            continue
        graph[imp.module].add(imp.target)
        if layer_rank(imp.target) > layer_rank(imp.module):
            problems.append(f"{where}: upward import {imp.module} -> {imp.target}")
        for importer, forbidden in SEPARATE:
            if _within(imp.module, importer) and _within(imp.target, forbidden):
                problems.append(f"{where}: {importer} must not import {forbidden}")
    problems.extend(f"import cycle: {' -> '.join(c)}" for c in _cycles(graph))
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append([*sorted(comp), sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_follows_its_layers() -> None:
    problems = violations(PKG_DIR)
    assert not problems, "\n".join(problems)


def test_every_module_sits_in_a_layer() -> None:
    modules, _ = read_imports(PKG_DIR)
    strays = sorted(m for m in modules if m and m.split(".")[0] not in LAYERS and m not in ("demo",))
    assert not strays, f"modules outside base/ storage/ core/ api/ frontends/: {strays}"


# -- the test of the test: a small package that breaks each rule once --------------------------------
def _write(root: str, files: dict[str, str]) -> str:
    pkg = os.path.join(root, "fakepkg")
    for rel, text in files.items():
        path = os.path.join(pkg, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
    for sub in ("", *LAYERS, "frontends/panel"):
        init = os.path.join(pkg, sub, "__init__.py")
        if not os.path.exists(init):
            os.makedirs(os.path.dirname(init), exist_ok=True)
            open(init, "w").close()
    return pkg


CLEAN = {
    "base/errors.py": "class E(Exception): ...\n",
    "storage/blobs.py": "from ..base.errors import E\n",
    "core/store.py": "from ..storage import blobs\nfrom ..base.errors import E\n",
    "api/context.py": "from ..core.store import *\n",
    "frontends/magics.py": "import IPython\nfrom ..api.context import *\n",
}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"storage/tables.py": "from ..core.store import x\n"}, "upward import storage.tables -> core.store"),
        (
            {"base/models.py": "def f():\n    from aeg_jupyter_fake import x\n    from ..api import context\n"},
            "upward import base.models -> api.context",
        ),
        (
            {"core/frames.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ipywidgets\n"},
            "imports ipywidgets outside frontends/",
        ),
        (
            {"core/a.py": "from . import b\n", "core/b.py": "def f():\n    from .a import g\n"},
            "import cycle: core.a -> core.b -> core.a",
        ),
        ({"frontends/cli.py": "from .magics import x\n"}, "frontends.cli must not import frontends.magics"),
        ({"frontends/panel/tab.py": "from ...frontends import magics\n"}, "frontends.panel must not import"),
        ({"frontends/magics.py": "def f():\n    import fakepkg\n"}, "upward import frontends.magics -> "),
        ({"frontends/cli.py": "from ..aethergraph import x\n"}, "upward import frontends.cli -> aethergraph"),
        ({"aethergraph/a.py": "from ..frontends import magics\n"}, "aethergraph must not import frontends"),
    ],
)
def test_the_layer_check_catches_each_broken_rule(tmp_path: object, extra: dict[str, str], expected: str) -> None:
    clean = _write(str(tmp_path), CLEAN)
    assert violations(clean, "fakepkg") == []
    broken = _write(str(tmp_path), extra)
    problems = violations(broken, "fakepkg")
    assert any(expected in p for p in problems), problems
