"""Check the shape of the code: import circles, `rag` → `server` imports, module and function sizes.

    .venv/bin/python tools/check_imports.py            # exit 1 on any circle or rag → server edge
    .venv/bin/python tools/check_imports.py --sizes    # … or on a module/function over the limits

Every `.py` file under rag/, server/ and bench/ is parsed with `ast` (nothing is imported or
run). Every `import` statement counts, wherever it stands: at module level, inside a function
(a lazy import), under `try`, or under `if TYPE_CHECKING:` — a circle that only shows at run
time is still a circle. An edge goes to the deepest first-party module named (`from rag import
store` → `rag.index.store`; `from rag.index.store import read_manifest` → `rag.index.store`); the
implicit import
of a parent package's `__init__` is not an edge. Circles are the strongly connected components
of that graph with more than one module (or a module importing itself), each shown with one
closed path through it.

Sizes (a report; with `--sizes` they also set the exit code): modules of rag/ and server/ over
`--max-module-lines` lines, and functions over `--max-function-lines` lines (from `def` to the
last line of the body, decorators excluded, nested functions counted in their own right).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "server", "bench")
SIZED = ("rag", "server")  # the packages whose module and function sizes are held to limits


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Module name → file, for every .py file of the first-party packages."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            modules[module_name(path, root)] = path
    return modules


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Dotted names an import statement may load (the module, and `from` names under it)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def edges_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        names = _imported_names(node, module, is_package)
        if isinstance(node, ast.ImportFrom):  # `from a import b`: b if it is a module, else a
            targets = {_deepest(n, modules) for n in names[1:]} or {_deepest(names[0], modules)}
        else:
            targets = {_deepest(n, modules) for n in names}
        for target in sorted(t for t in targets if t is not None):
            if target != module or not is_package:  # a package naming its own submodules
                yield Edge(module, target, node.lineno)


def import_graph(root: Path = ROOT) -> tuple[dict[str, Path], list[Edge]]:
    modules = find_modules(root)
    edges = [e for m, p in modules.items() for e in edges_of(m, p, modules)]
    return modules, edges


@dataclass(frozen=True, slots=True)
class Circle:
    members: list[str]  # a strongly connected component: each reaches every other
    path: list[str]  # one closed path through it, from its first member


def cycles(edges: list[Edge]) -> list[Circle]:
    """Strongly connected components with a circle in them (Tarjan)."""
    graph: dict[str, list[str]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e.target)
        graph.setdefault(e.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (≈ 150)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            if len(component) > 1 or v in graph[v]:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [Circle(c, _closed_path(c, graph)) for c in sorted(components)]


def _closed_path(component: list[str], graph: dict[str, list[str]]) -> list[str]:
    """One circle through the component's first module (breadth-first, shortest)."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    return [start, start]


def upward_edges(edges: list[Edge]) -> list[Edge]:
    """Imports of `server` from `rag` (server builds on rag, never the reverse)."""
    return [
        e for e in edges if e.source.split(".")[0] == "rag" and e.target.split(".")[0] == "server"
    ]


@dataclass(frozen=True, slots=True)
class Oversize:
    where: str  # path:line
    name: str
    lines: int
    limit: int


def oversize(
    modules: dict[str, Path], max_module: int, max_function: int, root: Path = ROOT
) -> list[Oversize]:
    out: list[Oversize] = []
    for name, path in modules.items():
        if name.split(".")[0] not in SIZED:
            continue
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        n_lines = len(text.splitlines())
        if n_lines > max_module:
            out.append(Oversize(rel, "(module)", n_lines, max_module))
        for node in ast.walk(ast.parse(text, filename=rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > max_function:
                    out.append(Oversize(f"{rel}:{node.lineno}", node.name, length, max_function))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true", help="Fail on oversize code too.")
    parser.add_argument("--max-module-lines", type=int, default=400)
    parser.add_argument("--max-function-lines", type=int, default=60)
    args = parser.parse_args(argv)

    modules, edges = import_graph()
    found = cycles(edges)
    upward = upward_edges(edges)
    sizes = oversize(modules, args.max_module_lines, args.max_function_lines)
    print(f"{len(modules)} modules, {len(edges)} first-party import edges")
    print(f"import circles: {len(found)}")
    for circle in found:
        print(f"  {' → '.join(circle.path)}  ({len(circle.members)} modules in the circle: "
              f"{', '.join(circle.members)})")
    print(f"rag → server imports: {len(upward)}")
    for e in upward:
        print(f"  {modules[e.source].relative_to(ROOT)}:{e.line} imports {e.target}")
    print(
        f"over {args.max_module_lines} lines (modules) or {args.max_function_lines} lines "
        f"(functions) in {', '.join(SIZED)}: {len(sizes)}"
    )
    for o in sizes:
        print(f"  {o.where} {o.name}: {o.lines} lines")
    failed = bool(found or upward or (args.sizes and sizes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
