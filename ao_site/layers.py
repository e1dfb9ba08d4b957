"""The layer map of ao and a checker that keeps its imports pointing one way.

`python -m ao_site.layers` (run by `make lint`) reads every import of ao's own modules with
the standard library's `ast`, at module level and inside functions, and reports:

- import cycles among ao's modules (strongly connected components of the import graph);
- upward imports: a module importing one of a higher layer than its own (`LAYERS`, `MODULES`);
- function-local imports of ao's own modules: each says why it cannot sit at module level in a
  `# local: <reason>` comment (on its line or the line above), and there are at most
  `LOCAL_IMPORTS_MAX` of them.

Known violations are listed in `ao_site/layers_baseline.txt`, which may only shrink. The check
fails on a violation not in the baseline, and on a baseline entry that is gone (delete it, or run
with `--update-baseline`, which removes gone entries and never adds).

Pure standard library: it runs without Django and never imports the code it reads.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# Top to bottom. A module may import from its own layer or any layer below it, never above.
LAYERS: tuple[str, ...] = (
    "interfaces",  # views, API, consumers, chat, admin, CLI commands, Celery tasks, URLs, ASGI
    "flows",  # the sweep, a webhook refresh, an operator's action: the only callers of reactions
    "reactions",  # the engine and the reaction services
    "watchers",  # orchestrator, intake, conflicts, drift, decisions, learning
    "agents",  # agents (spawn, start, observe, kill, restore, deliver), PR sync, merge, reviews
    "core",  # models, services (writes), selectors (reads), realtime, jobs, configuration
    "plugins",  # integrations/<slot>/<name>.py behind integrations/base.py
    "domain",  # derivation of status and zone, decisions, texts, fact types: pure, no I/O
)

# Each module of ao (dotted name, or a pattern for fnmatch) and its layer. The first pattern
# that matches wins, so exact names come before the patterns that would also match them.
MODULES: tuple[tuple[str, str], ...] = (
    # --- interfaces
    ("sessions.dashboard", "interfaces"),
    ("sessions.dashboard.*", "interfaces"),
    ("sessions.cli", "interfaces"),
    ("sessions.cli.*", "interfaces"),
    ("ao_site.asgi", "interfaces"),
    ("ao_site.routing", "interfaces"),
    ("ao_site.urls", "interfaces"),
    ("ao_site.admin_app", "interfaces"),
    ("ao_site.cli", "interfaces"),
    ("ao_site.embedded", "interfaces"),
    ("ao_site.bodylimit", "interfaces"),
    ("ao_site.runner", "interfaces"),
    ("ao_site.preflight", "interfaces"),
    ("ao_site.errors", "interfaces"),
    ("sessions.management", "interfaces"),
    ("sessions.management.*", "interfaces"),
    ("sessions.api", "interfaces"),
    ("sessions.api.*", "interfaces"),
    ("sessions.templatetags", "interfaces"),
    ("sessions.templatetags.*", "interfaces"),
    ("sessions.urls", "interfaces"),
    ("sessions.admin", "interfaces"),
    ("sessions.tasks", "interfaces"),
    ("sessions.apps", "interfaces"),  # the composition root: hands the dashboard's renderer down
    ("reactions.admin", "interfaces"),
    ("reactions.tasks", "interfaces"),
    # --- flows
    ("sessions.flows", "flows"),
    ("sessions.flows.*", "flows"),
    # --- reactions
    ("reactions.services", "reactions"),
    ("reactions.engine", "reactions"),
    # --- watchers
    ("sessions.watchers", "watchers"),
    ("sessions.watchers.*", "watchers"),
    # --- agents and PR sync
    ("sessions.agents", "agents"),
    ("sessions.agents.*", "agents"),
    ("sessions.prs", "agents"),
    ("sessions.prs.*", "agents"),
    # --- core
    ("sessions.core", "core"),
    ("sessions.core.*", "core"),
    ("sessions.models", "core"),
    ("sessions", "core"),
    ("reactions.models", "core"),
    # notify: the inbox row and its deliveries, enqueued by task name (reads and writes the core only)
    ("reactions.notify", "core"),
    # rules: the effective reaction rules, configuration the core reads too (what stuck and green mean)
    ("reactions.rules", "core"),
    ("reactions.apps", "core"),
    ("reactions", "core"),
    ("ao_site.settings", "core"),
    ("ao_site.served", "core"),
    ("ao_site.procs", "core"),  # processes, standard library only (the light commands use it)
    ("ao_site.hosts", "core"),
    ("ao_site.home", "core"),
    ("ao_site.sqlite3", "core"),
    ("ao_site.sqlite3.*", "core"),
    ("ao_site.csp", "core"),
    ("ao_site.origins", "core"),
    ("ao_site.celery", "core"),
    ("ao_site.dbretry", "core"),
    ("ao_site.failpoints", "core"),
    ("ao_site.logredact", "core"),
    ("ao_site.outages", "core"),
    ("ao_site.layers", "core"),
    ("ao_site.commands", "core"),  # ao's management commands, by name (Django's registry)
    ("ao_site", "core"),
    # --- plugins (integrations.models: the plugins' own tables, e.g. the local tracker's issues)
    ("integrations", "plugins"),
    ("integrations.*", "plugins"),
    # --- pure domain
    ("sessions.domain", "domain"),
    ("sessions.domain.*", "domain"),
    ("reactions.messages", "domain"),
    ("reactions.facts", "domain"),
    ("ao_site.links", "domain"),
)

PACKAGES: tuple[str, ...] = ("ao_site", "sessions", "integrations", "reactions")
# Function-local imports of ao's own modules, each with a `# local: <reason>` comment: the few that
# must wait (a module imported before Django's models load, the agents' commands that run without
# Django, the composition root, modules a command loads only when it serves).
LOCAL_IMPORTS_MAX = 20
LOCAL_REASON = "# local:"
SKIP_PARTS = frozenset({"migrations", "__pycache__"})
ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).resolve().parent / "layers_baseline.txt"


def layer_of(module: str, modules: tuple[tuple[str, str], ...] = MODULES) -> str | None:
    for pattern, layer in modules:
        if module == pattern or fnmatch.fnmatchcase(module, pattern):
            return layer
    return None


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module of ao
    line: int
    local: bool  # inside a function
    reason: str = ""  # a function-local import's `# local: <reason>`


@dataclass
class Report:
    files: dict[str, Path]  # module → its file
    imports: list[Import]
    cycles: list[frozenset[str]] = field(default_factory=list)
    upward: list[Import] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)

    @property
    def modules(self) -> list[str]:
        return sorted(self.files)

    @property
    def local_imports(self) -> set[tuple[str, int]]:
        """The import statements inside functions that import ao's own modules."""
        return {(i.source, i.line) for i in self.imports if i.local}

    @property
    def unexplained(self) -> list[tuple[str, int]]:
        """Function-local imports of ao's modules without a `# local: <reason>` comment."""
        return sorted({(i.source, i.line) for i in self.imports if i.local and not i.reason})

    def violations(self) -> set[str]:
        """Each violation as one baseline line."""
        lines = {"cycle: " + " ".join(sorted(c)) for c in self.cycles}
        lines |= {f"up: {i.source} -> {i.target}" for i in self.upward}
        return lines


def discover(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of the packages: dotted name → file (a package is its __init__.py)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if SKIP_PARTS & set(rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a module of ao."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: dict[str, Path], lines: list[str] | None = None):
        self.module = module
        self.is_package = is_package
        self.known = known
        self.lines = lines or []
        self.depth = 0
        self.found: list[Import] = []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, name: str, node: ast.stmt) -> None:
        target = _resolve(name, self.known)
        if target is not None and target != self.module:
            local = self.depth > 0
            reason = self._reason(node.lineno) if local else ""
            self.found.append(Import(self.module, target, node.lineno, local, reason))

    def _reason(self, line: int) -> str:
        """The `# local: <reason>` on the statement's first line or alone on the line above it."""
        here = self.lines[line - 1] if line <= len(self.lines) else ""
        above = self.lines[line - 2].strip() if line >= 2 else ""
        for text in (here, above if above.startswith("#") else ""):
            if LOCAL_REASON in text:
                return text.split(LOCAL_REASON, 1)[1].strip()
        return ""

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            package = self.module.split(".")
            if not self.is_package:
                package.pop()
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, node.module] if node.module else package)
        else:
            base = node.module or ""
        for alias in node.names:
            # `from sessions.core import services` imports a module; `from sessions.models import X`
            # imports a name of one.
            full = f"{base}.{alias.name}"
            self._add(full if full in self.known else base, node)


def collect(known: dict[str, Path]) -> list[Import]:
    imports: list[Import] = []
    for module, path in known.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        collector = _Collector(module, path.name == "__init__.py", known, text.splitlines())
        collector.visit(tree)
        imports.extend(collector.found)
    return imports


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative; only components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[frozenset[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(frozenset(component))
    return result


def analyse(
    root: Path = ROOT,
    packages: tuple[str, ...] = PACKAGES,
    modules: tuple[tuple[str, str], ...] = MODULES,
    layers: tuple[str, ...] = LAYERS,
) -> Report:
    known = discover(root, packages)
    imports = collect(known)
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        edges[i.source].add(i.target)
    report = Report(files=known, imports=imports)
    report.cycles = sorted(strongly_connected(report.modules, edges), key=lambda c: sorted(c))
    rank = {name: n for n, name in enumerate(layers)}  # 0 is the top
    report.unmapped = [m for m in report.modules if layer_of(m, modules) is None]
    seen: set[tuple[str, str]] = set()
    for i in imports:
        source, target = layer_of(i.source, modules), layer_of(i.target, modules)
        if source is None or target is None or (i.source, i.target) in seen:
            continue
        if rank[target] < rank[source]:
            seen.add((i.source, i.target))
            report.upward.append(i)
    return report


def read_baseline(path: Path) -> set[str]:
    if not path.exists():
        return set()
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def _covered(violation: str, baseline: set[str]) -> str | None:
    """The baseline entry allowing a violation: the same line, or for a cycle, a baseline cycle
    containing all its modules (a cycle that shrank or split is still allowed)."""
    if violation in baseline:
        return violation
    if violation.startswith("cycle: "):
        members = set(violation.removeprefix("cycle: ").split())
        for entry in baseline:
            if entry.startswith("cycle: ") and members <= set(entry.removeprefix("cycle: ").split()):
                return entry
    return None


def compare(report: Report, baseline: set[str]) -> tuple[list[str], list[str]]:
    """(new violations, baseline entries that no longer match one exactly)."""
    current = report.violations()
    new = sorted(v for v in current if _covered(v, baseline) is None)
    gone = sorted(b for b in baseline if b not in current)
    return new, gone


def write_baseline(path: Path, lines: set[str]) -> None:
    header = (
        "# Known violations of ao's layers (ao_site/layers.py). This list may only shrink:\n"
        "# `make lint` fails on a violation missing here and on an entry that is gone.\n"
        "# After removing a violation: python -m ao_site.layers --update-baseline\n"
    )
    cycles = sorted(line for line in lines if line.startswith("cycle: "))
    rest = sorted(line for line in lines if not line.startswith("cycle: "))
    path.write_text(header + "".join(f"{line}\n" for line in cycles + rest), encoding="utf-8")


def figures(report: Report) -> str:
    local = report.local_imports
    return (
        f"{len(report.modules)} modules, {len(report.imports)} imports of ao's own modules; "
        f"cycles: {len(report.cycles)} ({', '.join(str(len(c)) for c in report.cycles) or '-'} modules); "
        f"upward imports: {len(report.upward)}; "
        f"function-local imports of ao's own modules: {len(local)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ao_site.layers", description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument(
        "--update-baseline", action="store_true", help="drop entries that are gone (never adds one)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="list every violation")
    args = parser.parse_args(argv)

    report = analyse()
    baseline = read_baseline(args.baseline)
    new, gone = compare(report, baseline)
    print(figures(report))
    if args.verbose:
        for cycle in report.cycles:
            print("  cycle:", " ".join(sorted(cycle)))
        for i in report.upward:
            print(f"  up: {i.source} -> {i.target} (line {i.line}{', in a function' if i.local else ''})")
        for i in sorted(
            {(i.source, i.line): i for i in report.imports if i.local}.values(),
            key=lambda i: (i.source, i.line),
        ):
            print(f"  local: {i.source} line {i.line} -> {i.target}: {i.reason or '(no reason given)'}")
    failed = False
    if report.unmapped:
        failed = True
        print("modules without a layer (add them to MODULES in ao_site/layers.py):")
        for module in report.unmapped:
            print("  ", module)
    if report.unexplained:
        failed = True
        print(
            f"function-local imports of ao's modules without a `{LOCAL_REASON} <reason>` comment "
            "(move them to module level, or say why they cannot be):"
        )
        for source, number in report.unexplained:
            print(f"   {report.files[source].relative_to(ROOT)} line {number}")
    if len(report.local_imports) > LOCAL_IMPORTS_MAX:
        failed = True
        print(
            f"more than {LOCAL_IMPORTS_MAX} function-local imports of ao's modules: move some to module level"
        )
    if new:
        failed = True
        by_edge = {(i.source, i.target): i for i in report.upward}
        print("new violations (not in the baseline):")
        for line in new:
            where = ""
            if line.startswith("up: "):
                source, target = line.removeprefix("up: ").split(" -> ")
                i = by_edge[(source, target)]
                where = f"  ({report.files[source].relative_to(ROOT)} line {i.line})"
            print("  ", line + where)
    if gone and args.update_baseline and not new:
        write_baseline(args.baseline, baseline & report.violations() | _shrunk(report, baseline))
        print(f"baseline: removed {len(gone)} entries that are gone")
    elif gone:
        failed = True
        print("baseline entries that are gone (delete them, or run with --update-baseline):")
        for line in gone:
            print("  ", line)
    return 1 if failed else 0


def _shrunk(report: Report, baseline: set[str]) -> set[str]:
    """Cycles that shrank, replacing the baseline entries that allowed them."""
    return {v for v in report.violations() if v.startswith("cycle: ") and _covered(v, baseline)}


if __name__ == "__main__":
    sys.exit(main())
