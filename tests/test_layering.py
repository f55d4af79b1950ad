"""The layering rule of ARCHITECTURE.md, measured by parsing every in-repo import.

Layers, lowest first: ``datagen`` < ``relic_model`` < ``benchmark`` < the top-level composition
(``relic_cli.py``, ``relic_demo.py`` and the speed scripts in ``perf/``). Every ``.py`` file of these
is parsed with :mod:`ast` (nothing is imported) and every import of an in-repo module is collected:
at module level and inside functions, ``import a.b``, ``from a import b`` (resolved to the submodule
``a.b`` when it is one, else to ``a``), relative imports, and string literals given to ``__import__``
or ``importlib.import_module``. A module that calls one of those with a computed name (a dispatch
table such as ``relic_cli.COMMANDS``) imports every in-repo module its string constants name.

The rule, one test each:
- no upward import: a module never imports a module of a higher layer;
- no import cycle between modules, directly or around a loop (lazy imports included: a cycle
  hidden inside a function is still a cycle; a package's ``__init__`` counts as imported by every
  import of a module inside it);
- in-repo imports sit at the top of a module. Heavy third-party packages (``HEAVY``: torch, open3d,
  matplotlib, ray, pycolmap, ...) may be imported lazily anywhere, and so may an in-repo module that
  pulls one of them at import time which the importing module does not pull itself (deferring it
  is deferring that package). Apart from that, only the imports in ``LAZY_ALLOWED`` sit inside
  functions, each for the reason given there;
- every in-repo import names a module that exists (so a stale name cannot hide an edge).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# top-level in-repo name -> layer (an import may only go to the same or a lower layer)
LAYER = {"datagen": 0, "relic_model": 1, "benchmark": 2, "relic_cli": 3, "relic_demo": 3, "perf": 3}

# Third-party packages slow enough to import that a module may defer them (see the module docstring).
HEAVY = frozenset({"torch", "torchvision", "torchmetrics", "lpips", "open3d", "matplotlib", "ray", "pycolmap",
                   "numba", "evo"})

# The in-repo imports allowed inside functions, and why. Keep it short: any other lazy in-repo
# import belongs at the top of its module (a lazy import that avoids an import-time cycle hides a
# real cycle, to be broken instead). Keys: (importing module, imported module), or
# (importing module, None) for all of its lazy imports.
LAZY_ALLOWED: dict[tuple[str, str | None], str] = {
    ("relic_cli", None): "CLI dispatch: imports only the command module asked for, so `relic --help` stays fast",
    ("benchmark.pose_estimation.registry", "benchmark.pose_estimation.colmap_estimator"):
        "optional estimator: it needs pycolmap (the 'colmap' extra), which may be absent",
    ("relic_demo", "relic_model.cli.train_all"):
        "optional step: the demo skips its fine-tune when relic_model's training command is not installed",
    ("datagen", "datagen.corpus.reader"):
        "package attribute datagen.Corpus/Episode resolved on first use (PEP 562), so that importing any "
        "datagen module does not load the corpus reader (pandas, OpenCV)",
}

@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the importing file
    target: str  # dotted name of the imported in-repo module
    file: str  # importing file, relative to the repo root
    line: int
    lazy: bool  # inside a function or lambda

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Every in-repo module of the layered code: dotted name -> file (a package is its __init__.py)."""
    files = [ROOT / "relic_cli.py", ROOT / "relic_demo.py"]
    for top in ("datagen", "relic_model", "benchmark", "perf"):
        files += sorted((ROOT / top).rglob("*.py"))
    out = {}
    for f in files:
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _is_in_repo(name: str) -> bool:
    return name.split(".")[0] in LAYER


def _resolve_from(base: str, names: list[str], mods: dict[str, Path]) -> list[str]:
    """`from base import n1, n2`: each name that is a submodule is imported as such, the others are
    attributes of ``base`` itself."""
    targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in mods]
    if len(targets) < len(names):
        targets.append(base)
    return targets


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, file: str, mods: dict[str, Path]):
        self.module, self.file, self.mods = module, file, mods
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0  # enclosing functions/lambdas
        self.found: list[Import] = []
        self.dynamic = False  # calls __import__/import_module with a computed name
        self.constants: list[tuple[str, int]] = []  # string constants naming an in-repo module
        self.heavy: set[str] = set()  # HEAVY packages imported at module level

    def _add(self, target: str, node: ast.AST) -> None:
        self.found.append(Import(self.module, target, self.file, node.lineno, self.depth > 0))

    def _function(self, node) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _third_party(self, name: str) -> None:
        if self.depth == 0 and name.split(".")[0] in HEAVY:
            self.heavy.add(name.split(".")[0])

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _is_in_repo(alias.name):
                self._add(alias.name, node)
            else:
                self._third_party(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if _is_in_repo(base):
            for target in _resolve_from(base, [a.name for a in node.names], self.mods):
                self._add(target, node)
        elif not node.level:
            self._third_party(base)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if name in ("__import__", "import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if _is_in_repo(arg.value):
                    self._add(arg.value, node)
            else:
                self.dynamic = True
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value in self.mods:
            self.constants.append((node.value, node.lineno))


@lru_cache(maxsize=1)
def _scan() -> tuple[tuple[Import, ...], dict[str, frozenset[str]]]:
    mods = modules()
    found: list[Import] = []
    heavy: dict[str, frozenset[str]] = {}
    for name, path in mods.items():
        c = _Collector(name, path.name == "__init__.py", str(path.relative_to(ROOT)), mods)
        c.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += c.found
        if c.dynamic:  # a dispatch table: every in-repo module it names is imported (lazily)
            found += [Import(name, target, c.file, line, True) for target, line in c.constants if target != name]
        heavy[name] = frozenset(c.heavy)
    return tuple(found), heavy


def imports() -> tuple[Import, ...]:
    """Every in-repo import of the layered code."""
    return _scan()[0]


@lru_cache(maxsize=None)
def heavy_pulled(module: str) -> frozenset[str]:
    """The HEAVY packages that importing ``module`` imports: through its module-level imports,
    transitively, including the packages (``__init__``) Python runs on the way to each module."""
    found, heavy = _scan()
    eager: dict[str, set[str]] = {}
    for i in found:
        if not i.lazy:
            eager.setdefault(i.importer, set()).add(i.target)
    seen: set[str] = set()
    todo = [module]
    out: set[str] = set()
    while todo:
        m = todo.pop()
        parts = m.split(".")
        for k in range(1, len(parts) + 1):  # a.b.c runs a/__init__, a/b/__init__, then a/b/c
            p = ".".join(parts[:k])
            if p not in seen and p in heavy:
                seen.add(p)
                out |= heavy[p]
                todo += eager.get(p, ())
    return frozenset(out)


def defers_heavy(i: Import) -> bool:
    """A lazy import of an in-repo module that pulls a HEAVY package its importer does not pull."""
    return bool(heavy_pulled(i.target) - heavy_pulled(i.importer))


def _listing(found) -> str:
    return "\n".join(f"  {i.where()}: {i.importer} imports {i.target}" for i in found)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_the_parser_sees_the_code():
    """A sanity floor, so an empty scan cannot pass: every package is found and imports are seen
    both at module level and inside functions (relic_cli's dispatch table)."""
    mods, found = modules(), imports()
    assert {m.split(".")[0] for m in mods} == set(LAYER)
    assert len(found) > 300, len(found)
    assert any(i.importer == "relic_cli" and i.lazy for i in found)


def test_every_in_repo_import_names_an_existing_module():
    mods = modules()
    missing = [i for i in imports() if i.target not in mods]
    assert not missing, "in-repo imports of modules that do not exist:\n" + _listing(missing)


def test_no_upward_import():
    """datagen imports neither relic_model nor benchmark; relic_model never imports benchmark;
    none of the three imports the top-level composition (relic_cli, relic_demo, perf)."""
    up = [i for i in imports() if LAYER[i.target.split(".")[0]] > LAYER[i.importer.split(".")[0]]]
    assert not up, "upward imports (a lower layer importing a higher one):\n" + _listing(up)


def _runs(i: Import) -> set[str]:
    """The modules that import ``i`` runs: importing ``a.b.c`` also runs the packages ``a`` and
    ``a.b`` (their ``__init__``), except those the importing module is itself inside of (they are
    already being imported)."""
    parts = i.target.split(".")
    heads = (".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return {t for t in heads if t in modules() and t != i.importer and not i.importer.startswith(t + ".")}


def _graph() -> dict[str, set[str]]:
    """Module -> the in-repo modules it imports (every import, lazy ones included)."""
    edges: dict[str, set[str]] = {m: set() for m in modules()}
    for i in imports():
        edges[i.importer] |= _runs(i)
    return edges


def test_the_cycle_finder_finds_loops():
    """_cycles on a small graph: a three-module loop and a pair are found, a chain is not."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert sorted(_cycles(g)) == [["a", "b", "c"], ["e", "f"]]


def test_no_import_cycle():
    """No two modules import each other, directly or around a loop (every import counted)."""
    cycles = _cycles(_graph())
    lines = []
    for component in cycles:
        members = set(component)
        lines.append("cycle: " + " <-> ".join(component))
        lines.append(_listing(i for i in imports() if i.importer in members and _runs(i) & members))
    assert not cycles, "import cycles between modules:\n" + "\n".join(lines)


def _allowed(i: Import) -> tuple[str, str | None] | None:
    """The LAZY_ALLOWED key that permits lazy import ``i``, if any."""
    for key in ((i.importer, i.target), (i.importer, None)):
        if key in LAZY_ALLOWED:
            return key
    return None


def _misplaced() -> list[Import]:
    """Lazy in-repo imports that neither defer a HEAVY package nor are in LAZY_ALLOWED."""
    return [i for i in imports() if i.lazy and not defers_heavy(i) and _allowed(i) is None]


def test_in_repo_imports_sit_at_the_top():
    """In-repo imports inside functions: only those that defer a HEAVY package, and those in LAZY_ALLOWED."""
    lazy = _misplaced()
    assert not lazy, ("in-repo imports inside functions (move them to the top of the module; if that "
                      "makes an import-time cycle, break the cycle):\n" + _listing(lazy))


def test_the_lazy_allowlist_is_current():
    """Every LAZY_ALLOWED entry still permits a lazy import nothing else permits (so the list stays short)."""
    used = {_allowed(i) for i in imports() if i.lazy and not defers_heavy(i)}
    stale = sorted(map(str, set(LAZY_ALLOWED) - used))
    assert not stale, f"LAZY_ALLOWED entries that permit nothing, remove them: {stale}"
