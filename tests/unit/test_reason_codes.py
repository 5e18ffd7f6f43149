"""Every reason code is one constant of genofed/common/reasons.py, used, and documented.

Scans the AST of every module under ``genofed/``: no reason code is written
as a string literal (at a ``PolicyRefusal``, ``ParamError`` or ``SiteFailure``,
a ``reason_code=`` or a comparison), every constant is used outside its
module, and docs/privacy-officer.md's reason-code table lists exactly the
constants.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import genofed.common.reasons as reasons
from genofed.common.errors import GenoFedError, ParamError

ROOT = Path(__file__).resolve().parents[2]
REASONS_MODULE = "genofed.common.reasons"
REASONS_FILE = ROOT / "genofed" / "common" / "reasons.py"
DOC = ROOT / "docs" / "privacy-officer.md"
#: The line that opens the doc's reason-code table.
TABLE_TITLE = "and the reason code the analyst sees**"
#: What a reason code looks like: capitals and digits, words joined by underscores.
CODE_SHAPE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
CODES = frozenset(reasons.__all__)


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / "genofed").rglob("*.py")):
        if path == REASONS_FILE or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _literals(node: ast.AST) -> list[str]:
    """The string literals in an expression (an f-string counts as one)."""
    found = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            found.append(n.value)
        elif isinstance(n, ast.JoinedStr):
            found.append(ast.unparse(n))
    return found


def _code_arguments(node: ast.Call) -> list[ast.expr]:
    """The arguments of a call that carry a reason code."""
    args: list[ast.expr] = [k.value for k in node.keywords if k.arg == "reason_code"]
    name = _called(node)
    if name == "PolicyRefusal" and node.args:
        args.append(node.args[0])
    if name == "SiteFailure" and len(node.args) > 1:
        args.append(node.args[1])
    return args


def _reason_constants() -> dict[str, str]:
    """Every module-level string constant of the reasons module, by name."""
    tree = ast.parse(REASONS_FILE.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id != "__all__":
            assert isinstance(value, ast.Constant) and isinstance(value.value, str), target.id
            found[target.id] = value.value
    return found


def _uses() -> set[str]:
    """The reason constants that some module of genofed refers to."""
    used: set[str] = set()
    for _path, tree in _modules():
        local: dict[str, str] = {}  # name in the module -> constant
        aliases: set[str] = set()  # names the reasons module is imported under
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == REASONS_MODULE:
                local.update({a.asname or a.name: a.name for a in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module == "genofed.common":
                aliases.update(a.asname or a.name for a in node.names if a.name == "reasons")
            elif isinstance(node, ast.Import):
                aliases.update(a.asname or a.name for a in node.names if a.name == REASONS_MODULE)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in local:
                used.add(local[node.id])
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) in aliases:
                used.add(node.attr)
    return used


def _documented() -> list[str]:
    """The codes in the 'refused with' column of the doc's reason-code table, in order."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if TABLE_TITLE in line), None)
    assert start is not None, f"{DOC.name} has no line containing {TABLE_TITLE!r}"
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    assert rows[0].split("|")[2].strip() == "refused with", rows[0]
    codes = []
    for row in rows[2:]:
        cells = row.split("|")
        codes += re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[2])
    return codes


def test_reasons_module__every_constant_is_exported_and_its_value_is_its_name() -> None:
    constants = _reason_constants()
    assert set(constants) == CODES, "reasons.__all__ and the module's constants differ"
    wrong = {name: value for name, value in constants.items() if value != name}
    assert not wrong, f"a wire value must equal its constant's name: {wrong}"
    assert reasons.__all__ == sorted(reasons.__all__)


def test_reasons_module__every_constant_has_a_doc_comment() -> None:
    lines = REASONS_FILE.read_text(encoding="utf-8").splitlines()
    missing = [
        name
        for i, line in enumerate(lines)
        if (name := line.split(":")[0]) in CODES and not lines[i - 1].startswith("#: ")
    ]
    assert not missing, f"no '#:' line says when these are used: {missing}"


@pytest.mark.parametrize("call", ["PolicyRefusal", "SiteFailure", "reason_code="])
def test_genofed__passes_no_reason_code_as_a_literal(call: str) -> None:
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if call.endswith("=") and not any(k.arg == call[:-1] for k in node.keywords):
                continue
            if not call.endswith("=") and _called(node) != call:
                continue
            for arg in _code_arguments(node):
                if _literals(arg):
                    found.append(f"{_where(path, arg)}: {ast.unparse(arg)}")
    assert not found, f"use a constant of {REASONS_MODULE}: {found}"


def test_genofed__passes_no_reason_code_to_param_error() -> None:
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) == "ParamError":
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    for value in _literals(arg):
                        if value in CODES or CODE_SHAPE.fullmatch(value):
                            found.append(f"{_where(path, arg)}: {value!r}")
    assert not found, f"ParamError takes a message and a hint, not a reason code: {found}"


def test_genofed__writes_no_reason_code_as_a_string_literal() -> None:
    found = [
        f"{_where(path, node)}: {node.value!r}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in CODES
    ]
    assert not found, f"use the constant of {REASONS_MODULE}: {found}"


def test_reasons_module__every_constant_is_used() -> None:
    unused = sorted(CODES - _uses())
    assert not unused, f"defined in {REASONS_MODULE} but used nowhere in genofed: {unused}"


def test_privacy_officer_doc__table_lists_every_code() -> None:
    missing = sorted(CODES - set(_documented()))
    assert not missing, f"{DOC.name}'s reason-code table does not list {missing}"


def test_privacy_officer_doc__table_lists_only_codes_that_exist() -> None:
    documented = _documented()
    unknown = sorted(set(documented) - CODES)
    assert not unknown, f"{DOC.name} documents codes that {REASONS_MODULE} lacks: {unknown}"


def test_param_error__is_in_the_error_tree_and_still_a_value_error() -> None:
    assert issubclass(ParamError, GenoFedError)
    assert issubclass(ParamError, ValueError)
    error = ParamError("n_pcs must be at least 1", hint="n_pcs = 10")
    assert (str(error), error.hint) == ("n_pcs must be at least 1", "n_pcs = 10")
