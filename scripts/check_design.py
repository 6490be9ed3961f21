"""Check the package against the design rules a linter cannot see.

Reports, for every module under ``src/fairtune``:

- import cycles: the graph of module -> imported module, counting every import
  in a file, inside functions too (a lazy import is still a dependency). An edge
  of ``from a.b import c`` goes to ``a.b.c`` when that is a module, else to
  ``a.b``. Each strongly connected component of more than one module, or a
  module importing itself, is a cycle, printed with the import lines forming it;
- the largest modules by line count, flagging those over the size limit;
- functions with more named parameters than the limit (positional-only, plain
  and keyword-only ones; ``self``/``cls`` and ``*args``/``**kwargs`` excluded);
- string-keyed access (``row.selection["chosen"]``, ``row.metrics.get("abroca")``, a
  fixed key in ``row.metrics.value("auc")``) to a result row's typed selection record or
  metrics outside the JSON/CSV edge (:data:`JSON_EDGE`): a typo there is an error after a
  long run, where an attribute is checked before it;
- imports against the stage order (:data:`STAGES`, fairtune only): a module may import
  from its own stage and the stages before it, except the pairs :data:`UPWARD` names (each
  said in ARCHITECTURE.md); a module the table does not place is reported too;
- hand-kept lists a registry holds (:data:`REGISTRIES`, fairtune only): a tuple, list
  or set of strings (at least two), or a text (at least three), that names more than
  half of a registry's entries outside the registry's own module; build it from the
  registry instead (a list of its own says so with :data:`OWN_LIST`).

Exits 1 when there is any cycle, oversized module, long signature, keyed access, upward
import or hand-kept list, else 0.
Run from the repository root: ``python scripts/check_design.py``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 400
MAX_PARAMS = 7
TOP_MODULES = 5

ROW_FIELDS = ("selection", "metrics", "metrics_tuned", "ci", "ci_tuned")
"""The typed or JSON-bound fields of a result row that no code should read by string key."""
JSON_EDGE: dict[str, tuple[str, ...] | None] = {
    "fairtune/selection/records.py": None,
    "fairtune/selection/results.py": None,
    "fairtune/reporting/report.py": ("flat_rows", "_verdict_columns"),
}
"""Where rows become JSON or CSV: whole modules (None) or the named functions of one."""


STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("errors", "settings", "console", "distributed", "io")),
    (
        "data",
        (
            *("columns", "data", "splits", "tabular", "binarize", "augment", "images"),
            *("image_csv", "datasets", "inputs"),
        ),
    ),
    ("models", ("models", "checkpoints", "backbones", "architectures", "modelio", "loading")),
    ("evaluation", ("evaluation",)),
    ("fine-tuning", ("finetune",)),
    ("starting model", ("erm",)),
    ("methods", ("methods",)),
    ("selection", ("selection",)),
    ("report", ("reporting",)),
    ("studies", ("studies",)),
    ("entry points", ("api", "demo", "cli", "__main__", "")),
)
"""ARCHITECTURE.md's stage table, in import order: each stage with the top-level modules and
subpackages of fairtune in it ("" is the package's ``__init__``)."""
UPWARD: tuple[tuple[str, str], ...] = (
    ("fairtune.reporting.tables", "fairtune.studies.summary"),
)
"""Imports of a later stage that ARCHITECTURE.md names: (importing module, imported)."""


@dataclass(frozen=True)
class Registry:
    """A registry and its home: the module-level collection whose keys (or items) are the
    names no other module should list by hand."""

    what: str
    module: str
    attribute: str


REGISTRIES: tuple[Registry, ...] = (
    Registry("methods", "fairtune.methods.registry", "REGISTRY"),
    Registry("architectures", "fairtune.architectures", "ARCHITECTURES"),
    Registry("objectives", "fairtune.evaluation.criterion", "OBJECTIVES"),
    Registry("optimizers", "fairtune.finetune.training", "OPTIMIZERS"),
    Registry("split parts", "fairtune.splits", "PART_NAMES"),
    Registry("study kinds", "fairtune.studies.points", "KIND_HELP"),
    Registry("built-in data sets", "fairtune.datasets", "BUILTIN"),
    Registry("data formats", "fairtune.datasets.presets", "PRESETS"),
)
"""The registries whose names the hand-kept-list rule looks for (in the fairtune package)."""
OWN_LIST = "# own list:"
"""A line that lists names of its own (not a registry's copy) says so, and why, with this."""


@dataclass(frozen=True)
class Module:
    """A module of the package: its dotted name, its file and that file's path for reports."""

    name: str
    path: Path
    shown: str


@dataclass(frozen=True)
class ImportEdge:
    """One import statement of ``source`` that reaches module ``target``."""

    source: str
    target: str
    line: int
    text: str


@dataclass(frozen=True)
class LongSignature:
    """A function with more named parameters than allowed."""

    module: str
    line: int
    name: str
    count: int


def find_modules(src: Path, package: str) -> dict[str, Module]:
    """Every module of ``package`` under ``src``, by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        modules[name] = Module(name, path, path.relative_to(src).as_posix())
    return modules


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_edges(modules: dict[str, Module]) -> list[ImportEdge]:
    """Every import, anywhere in each module, of another module of the package."""
    edges = []
    for module in modules.values():
        text = module.path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(module.path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in dict.fromkeys(t for t in targets if t in modules):
                edges.append(
                    ImportEdge(module.name, target, node.lineno, lines[node.lineno - 1].strip())
                )
    return edges


def _components(nodes: list[str], edges: list[ImportEdge]) -> list[list[str]]:
    """Strongly connected components of the import graph (Tarjan's algorithm)."""
    successors: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        successors[e.source].append(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in successors[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            found.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def import_cycles(
    modules: dict[str, Module], edges: list[ImportEdge]
) -> list[list[ImportEdge]]:
    """Each cycle as the import edges among its modules: a component of more than one
    module, or a module importing itself."""
    cycles = []
    for component in _components(sorted(modules), edges):
        members = set(component)
        inside = [e for e in edges if e.source in members and e.target in members]
        if len(component) > 1 or inside:
            cycles.append(inside)
    return cycles


def module_sizes(modules: dict[str, Module]) -> list[tuple[Module, int]]:
    """Every module with its line count, largest first."""
    sizes = [(m, len(m.path.read_text().splitlines())) for m in modules.values()]
    return sorted(sizes, key=lambda ms: (-ms[1], ms[0].shown))


def long_signatures(modules: dict[str, Module], limit: int = MAX_PARAMS) -> list[LongSignature]:
    """Functions and methods, nested ones included, with more than ``limit`` named parameters."""
    found = []
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
            if names and names[0] in ("self", "cls"):
                names = names[1:]
            if len(names) > limit:
                found.append(LongSignature(module.shown, node.lineno, node.name, len(names)))
    return sorted(found, key=lambda s: (s.module, s.line))


@dataclass(frozen=True)
class Finding:
    """A keyed access or a hand-kept list: where, and what."""

    module: str
    line: int
    text: str


def _edge(module: Module, function: str | None) -> bool:
    if module.shown not in JSON_EDGE:
        return False
    functions = JSON_EDGE[module.shown]
    return functions is None or function in functions


def _functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each node of ``tree`` with the name of the outermost function it lies in."""
    owner: dict[ast.AST, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node not in owner:
            for inner in ast.walk(node):
                owner.setdefault(inner, node.name)
    return owner


def _keyed_row_field(node: ast.AST) -> str | None:
    """The row field read by string key at ``node`` (``x.selection["k"]``,
    ``x.metrics.get("k")``, ``x.metrics.value("k")`` where ``x.metrics.k`` says it), else
    None."""
    if isinstance(node, ast.Subscript):
        target, key = node.value, node.slice
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "value")
        and node.args
    ):
        target, key = node.func.value, node.args[0]
    else:
        return None
    keyed = isinstance(key, ast.Constant) and isinstance(key.value, str)
    if keyed and isinstance(target, ast.Attribute) and target.attr in ROW_FIELDS:
        return f".{target.attr}[{key.value!r}]"
    return None


def keyed_access(modules: dict[str, Module]) -> list[Finding]:
    """String-keyed reads of a result row's selection record or metrics outside the edge."""
    found = []
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        owner = _functions(tree)
        for node in ast.walk(tree):
            field = _keyed_row_field(node)
            if field and not _edge(module, owner.get(node)):
                found.append(Finding(module.shown, node.lineno, field))
    return sorted(found, key=lambda f: (f.module, f.line))


def registry_names(src: Path, registries: tuple[Registry, ...] = REGISTRIES) -> dict:
    """Each registry with the names it holds, read by importing the package from ``src``."""
    sys.path.insert(0, str(src))
    try:
        return {
            r: {str(name) for name in getattr(importlib.import_module(r.module), r.attribute)}
            for r in registries
        }
    finally:
        sys.path.remove(str(src))


def _docstrings(tree: ast.AST) -> set[ast.AST]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def _listed(node: ast.AST, skip: set[ast.AST]) -> list[str] | None:
    """The names a node lists by hand: a collection's string items, or a text's words."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        items = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(items) == len(node.elts) and all(isinstance(i, str) for i in items):
            return items
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node not in skip:
        return re.findall(r"[A-Za-z0-9_-]+", node.value)
    return None


def hand_kept_lists(modules: dict[str, Module], names: dict) -> list[Finding]:
    """Collections and texts outside a registry's module that name more than half of its
    entries (and at least two)."""
    found = []
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        skip = _docstrings(tree)
        lines = module.path.read_text().splitlines()
        for node in ast.walk(tree):
            line = getattr(node, "lineno", 0)
            if line and OWN_LIST in lines[line - 1]:
                continue
            listed = _listed(node, skip)
            if not listed:
                continue
            for registry, held in names.items():
                if module.name == registry.module or len(held) < 2:
                    continue
                named = set(listed) & held
                collection = not isinstance(node, ast.Constant)
                if collection and set(listed) - held:
                    continue
                least = 2 if collection else 3  # prose may name a pair ("sgd or adam")
                if len(named) >= least and 2 * len(named) > len(held):
                    text = f"lists {len(named)} of the {registry.what} {sorted(named)}"
                    found.append(Finding(module.shown, node.lineno, text))
    return sorted(found, key=lambda f: (f.module, f.line))


def stage_of(name: str, stages: tuple[tuple[str, tuple[str, ...]], ...] = STAGES) -> int | None:
    """The place in ``stages`` of module ``name`` (by its first part below the package)."""
    first = name.split(".")[1] if "." in name else ""
    for i, (_, members) in enumerate(stages):
        if first in members:
            return i
    return None


def upward_imports(
    modules: dict[str, Module],
    edges: list[ImportEdge],
    stages: tuple[tuple[str, tuple[str, ...]], ...] = STAGES,
    allowed: tuple[tuple[str, str], ...] = UPWARD,
) -> list[Finding]:
    """Imports of a module of a later stage than the importer's (but the ``allowed`` pairs),
    and modules the stage table does not place."""
    found = [
        Finding(m.shown, 1, "not in the stage table")
        for m in modules.values()
        if stage_of(m.name, stages) is None
    ]
    for e in edges:
        source, target = stage_of(e.source, stages), stage_of(e.target, stages)
        if None in (source, target) or target <= source or (e.source, e.target) in allowed:
            continue
        text = f"{stages[source][0]} imports {stages[target][0]}: {e.text}"
        found.append(Finding(modules[e.source].shown, e.line, text))
    return sorted(found, key=lambda f: (f.module, f.line))


def report(src: Path, package: str) -> int:
    """Print the three checks and a one-line summary; return the exit status."""
    modules = find_modules(src, package)
    edges = import_edges(modules)
    cycles = import_cycles(modules, edges)
    upward = upward_imports(modules, edges) if package == "fairtune" else []
    sizes = module_sizes(modules)
    signatures = long_signatures(modules)
    oversized = [(m, n) for m, n in sizes if n > MAX_LINES]
    keyed = keyed_access(modules)
    listed = hand_kept_lists(modules, registry_names(src) if package == "fairtune" else {})

    print(f"import cycles: {len(cycles)}")
    for i, cycle in enumerate(cycles, 1):
        members = sorted({e.source for e in cycle})
        print(f"  cycle {i}: {', '.join(modules[m].shown for m in members)}")
        for e in cycle:
            print(f"    {modules[e.source].shown}:{e.line}: {e.text}  -> {modules[e.target].shown}")
    print(f"largest modules (limit {MAX_LINES} lines):")
    for m, n in sizes[:TOP_MODULES]:
        print(f"  {m.shown}: {n} lines{'  OVER LIMIT' if n > MAX_LINES else ''}")
    for m, n in oversized[TOP_MODULES:]:
        print(f"  {m.shown}: {n} lines  OVER LIMIT")
    print(f"functions over {MAX_PARAMS} parameters: {len(signatures)}")
    for s in signatures:
        print(f"  {s.module}:{s.line}: {s.name} ({s.count} parameters)")
    print(f"string-keyed reads of a row's selection or metrics outside the JSON edge: {len(keyed)}")
    for f in keyed:
        print(f"  {f.module}:{f.line}: {f.text}")
    print(f"imports against the stage order: {len(upward)}")
    for f in upward:
        print(f"  {f.module}:{f.line}: {f.text}")
    print(f"hand-kept lists a registry holds: {len(listed)}")
    for f in listed:
        print(f"  {f.module}:{f.line}: {f.text}")

    largest = f"{sizes[0][0].shown} ({sizes[0][1]} lines)" if sizes else "none"
    print(
        f"design check: {len(cycles)} import cycles, largest module {largest}, "
        f"{len(signatures)} functions over {MAX_PARAMS} parameters, {len(keyed)} keyed row "
        f"reads, {len(upward)} upward imports, {len(listed)} hand-kept lists"
    )
    return 1 if cycles or oversized or signatures or keyed or upward or listed else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--src`` (default ``src``) and ``--package`` (default ``fairtune``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("src"))
    parser.add_argument("--package", default="fairtune")
    args = parser.parse_args(argv)
    return report(args.src, args.package)


if __name__ == "__main__":
    sys.exit(main())
