"""DESIGN.md's package rules, enforced by import-linter contracts in pyproject.toml.

Import-linter checks the contracts; the tests here check what it cannot say:
that no two modules of ``genofed`` import each other through any chain, that
only composition roots depend on both sides, and that the contract on
generated protobuf code names every generated module.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE, COORDINATOR = "genofed.site_agent", "genofed.coordinator"
#: DESIGN rule 4: the modules that may depend on both sides (the demo and the analyst CLI).
COMPOSITION_ROOTS = ("genofed.cli", "genofed.simulation")
PROTOBUF_CONTRACT = "generated protobuf modules only in codecs and gRPC servicers"


def test_import_contracts__all_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts__cover_the_design_rules() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'modules = ["genofed.coordinator", "genofed.site_agent"]' in text
    for core in ("genofed.site_agent.stats", "genofed.coordinator.combine"):
        assert core in text
    for pure in ("disclosure", "noise", "accounting"):
        assert f"genofed.site_agent.privacy.{pure}" in text


def _contract(name: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if c["name"] == name]
    return found


def test_protobuf_contract__names_every_generated_module() -> None:
    generated = sorted(
        f"genofed.protos.v1.{p.stem}" for p in (ROOT / "genofed/protos/v1").glob("*_pb2*.py")
    )
    assert generated, "no generated protobuf modules found"
    forbidden = _contract(PROTOBUF_CONTRACT)["forbidden_modules"]
    assert isinstance(forbidden, list)
    assert sorted(forbidden) == generated


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_only_composition_roots_depend_on_both_sides() -> None:
    graph = grimp.build_graph("genofed")
    both = sorted(
        m
        for m in graph.modules
        if not (_in(m, SITE) or _in(m, COORDINATOR))
        and any(_in(u, SITE) for u in graph.find_upstream_modules(m))
        and any(_in(u, COORDINATOR) for u in graph.find_upstream_modules(m))
    )
    assert both, "the composition roots no longer import both sides: is this test stale?"
    strays = [m for m in both if not any(_in(m, root) for root in COMPOSITION_ROOTS)]
    assert not strays, f"modules outside {COMPOSITION_ROOTS} depend on both sides: {strays}"


def _cycles(graph: grimp.ImportGraph) -> Iterator[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected set of modules."""

    def imports(module: str) -> Iterator[str]:
        return iter(sorted(graph.find_modules_directly_imported_by(module)))

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def enter(module: str) -> tuple[str, Iterator[str]]:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        return module, imports(module)

    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [enter(root)]  # Tarjan's algorithm, iterative: (module, imports left to visit)
        while work:
            module, todo = work[-1]
            child = next(todo, None)
            if child is not None:
                if child not in index:
                    work.append(enter(child))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] != index[module]:
                continue
            members = set()
            while module not in members:
                members.add(stack.pop())
            on_stack -= members
            if len(members) > 1 or graph.direct_import_exists(importer=module, imported=module):
                first = min(members)
                step = min(m for m in imports(first) if m in members)
                back = (first,) if step == first else graph.find_shortest_chain(step, first)
                yield [first, *(back or ())]


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    lines = []
    for importer, imported in itertools.pairwise(cycle):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = ", ".join(
            f"l.{d['line_number']}{' (in a function)' if d.get('is_lazy') else ''}" for d in details
        )
        lines.append(f"  {importer} -> {imported} ({where})")
    return "\n".join(lines)


def test_cycles__finds_a_cycle_and_names_its_imports() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(
            importer=importer, imported=imported, line_number=3, line_contents=f"import {imported}"
        )
    (cycle,) = _cycles(graph)
    assert cycle == ["p.a", "p.b", "p.c", "p.a"]
    assert "p.c -> p.a (l.3)" in _describe(graph, cycle)


@pytest.mark.parametrize("edges", [[("p.a", "p.b"), ("p.b", "p.c")], [("p.a", "p.b")]])
def test_cycles__none_in_an_acyclic_graph(edges: list[tuple[str, str]]) -> None:
    graph = grimp.ImportGraph()
    for importer, imported in edges:
        graph.add_import(importer=importer, imported=imported)
    assert list(_cycles(graph)) == []


def test_no_import_cycles_between_genofed_modules() -> None:
    """Every import counts, even one inside a function or under TYPE_CHECKING.

    A late import hides a cycle from Python, not from a reader: the two
    modules still need each other. Break a cycle by moving what both need
    into a module of its own (as ``coordinator/site_record.py``,
    ``ParamError`` in ``common/errors.py``, ``cli/exits.py`` do).
    """
    graph = grimp.build_graph("genofed")
    cycles = list(_cycles(graph))
    assert not cycles, "import cycles in genofed:\n" + "\n\n".join(
        _describe(graph, c) for c in cycles
    )
