"""The package's import graph: no cycles, and the layers point one way (models know nothing of data,
training, inference, the codecs, evaluation, the demo or the command line; the library never imports the
command line).

Every import counts, including those inside functions (a lazy import is still a dependency); imports
under `if TYPE_CHECKING:` do not (they never run). `python tests/test_import_graph.py` prints the graph's
cycles."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx

PACKAGE = "videogpt_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# The model layer (models/): what a saved model needs to be built, run and sampled.
MODELS = "models"
# What the model layer must not reach, directly or through other modules (it may use io/).
ABOVE_MODELS = ("data", "training", "inference", "codecs", "evaluation", "fvd", "demo", "cli")
# The stages' subpackages: each must exist and hold modules, so the checks below cover them.
SUBPACKAGES = ("models", "inference", "codecs", "io", "cli", "data", "training", "evaluation", "fvd")
# Modules that parse command lines; the library below them must not import them.
COMMAND_LINE = ("__main__", "cli", "training.cli", "evaluation.cli")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__.py)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that `name` imports: `from a.b import c` names a.b.c when that is a module,
    else a.b; relative imports are resolved against the module's package."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> nx.DiGraph:
    modules = module_files()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in imports_of(name, path, modules))
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    return sorted(sorted(cycle) for cycle in nx.simple_cycles(graph))


def _in(name: str, prefixes) -> bool:
    short = name.removeprefix(PACKAGE + ".")
    return any(short == p or short.startswith(p + ".") for p in prefixes)


def test_the_parser_resolves_relative_lazy_and_submodule_imports():
    graph = import_graph()
    assert f"{PACKAGE}.models.config" in graph[f"{PACKAGE}.models.pretrained"]  # top-level absolute import
    assert f"{PACKAGE}.codecs.comparison_video" in graph[f"{PACKAGE}.cli.reconstruct"]  # inside a function
    assert f"{PACKAGE}.data.worlds" in graph[f"{PACKAGE}.data.make_dataset"]  # relative import
    assert graph.number_of_edges() > 50


def test_there_are_no_import_cycles():
    found = cycles(import_graph())
    assert len(found) == 0, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_cycles_are_found():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    assert cycles(graph) == [["a", "b", "c"]]


def test_every_stage_subpackage_is_in_the_graph():
    graph = import_graph()
    for short in SUBPACKAGES:
        members = [m for m in graph if _in(m, (short,)) and m != f"{PACKAGE}.{short}"]
        assert members, f"{PACKAGE}.{short}: no modules found"
    assert not [m for m in graph if m.count(".") == 1 and not _in(m, SUBPACKAGES + ("__main__",))], \
        "modules outside the stages' subpackages"


def test_models_import_no_data_training_inference_demo_or_command_line_code():
    graph = import_graph()
    models = [m for m in graph if _in(m, (MODELS,))]
    assert len(models) > 10
    for name in models:
        reached = nx.descendants(graph, name)
        bad = sorted(m for m in reached if _in(m, ABOVE_MODELS))
        assert not bad, f"{name} imports (directly or through others) {bad}"


def test_the_library_never_imports_the_command_line():
    graph = import_graph()
    for source, target in graph.edges:
        if _in(target, COMMAND_LINE) and not _in(source, COMMAND_LINE):
            # A package may register its command-line module's commands only through cli/main.py.
            raise AssertionError(f"{source} imports the command-line module {target}")


if __name__ == "__main__":
    graph = import_graph()
    found = cycles(graph)
    print(f"{graph.number_of_nodes()} modules, {graph.number_of_edges()} imports, {len(found)} cycle(s)")
    for cycle in found:
        print("  " + " <-> ".join(cycle))
    sys.exit(1 if found else 0)
