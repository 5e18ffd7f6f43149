"""What a hospital installs: the site agent without synthesis, plotting, simulation or dev tools.

``pyproject.toml`` keeps those in extras (``synth``, ``plot``, ``simulation``,
``dev``); the site's import path must not need them, the ``genofed`` command
must start without them (the images' smoke check), and a command or study
that needs one says which before it does anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from genofed.cli import analyst as cli
from genofed.cli.extras import EXTRA_MODULES, require_extras
from genofed.common.errors import GenoFedError
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
#: Modules that come only with an extra (or with development tools).
EXTRA_ONLY = (
    "matplotlib", "msprime", "tskit", "bed_reader", "ray", "pytest", "hypothesis", "torch", "opacus"
)  # fmt: skip
#: Distributions a site agent's install must not pull in.
NOT_FOR_SITES = (
    "torch",  # genofed[train]: only a site that trains (the site-train image)
    "opacus",
    "msprime",
    "tskit",
    "bed-reader",
    "matplotlib",
    "grpcio-tools",
    "pytest",
    "hypothesis",
    "ruff",
    "mypy",
    "import-linter",
    "lifelines",
    "statsmodels",
    "psutil",
)
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([0-9][0-9A-Za-z.+]*)$")


def _imported_after(*modules: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def _name(requirement: str) -> str:
    match = _PIN.match(requirement)
    assert match is not None, f"{requirement!r} is not an exact pin (name==version)"
    return match[1].lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    return {_name(r): r.rsplit("==", 1)[1] for r in requirements}


def test_site_agent__imports_no_synthesis_plotting_simulation_or_test_module() -> None:
    loaded = _imported_after(
        "genofed.site_agent.cli", "genofed.site_agent.app", "genofed.site_agent.release"
    )
    assert "genofed" in loaded and "flwr" in loaded  # the import did happen
    assert not loaded & set(EXTRA_ONLY), sorted(loaded & set(EXTRA_ONLY))


def test_genofed_command__starts_without_the_extras() -> None:
    # The images run `genofed --help` before any extra is installed.
    loaded = _imported_after("genofed.cli", "genofed.coordinator.app")
    assert "typer" in loaded
    assert not loaded & set(EXTRA_ONLY), sorted(loaded & set(EXTRA_ONLY))


def test_pyproject__site_install_pulls_in_none_of_the_extras() -> None:
    base = _pins(PROJECT["dependencies"])
    assert not set(base) & set(NOT_FOR_SITES), sorted(set(base) & set(NOT_FOR_SITES))
    flwr = next(r for r in PROJECT["dependencies"] if r.startswith("flwr"))
    assert "simulation" not in flwr  # Ray comes only with genofed[simulation]


def test_pyproject__every_pin_is_exact_and_grpc_pins_agree_with_the_generated_code() -> None:
    extras: Mapping[str, list[str]] = PROJECT["optional-dependencies"]
    everything = [*PROJECT["dependencies"], *(r for reqs in extras.values() for r in reqs)]
    pins = _pins(everything)  # every requirement is name==version
    assert pins["grpcio"] == pins["grpcio-tools"]
    generated = (ROOT / "genofed/protos/v1/genofed_pb2_grpc.py").read_text(encoding="utf-8")
    assert f"GRPC_GENERATED_VERSION = '{pins['grpcio']}'" in generated  # make protos agrees
    assert "grpcio-tools" in _pins(extras["dev"])


def test_extras__the_cli_knows_each_one_and_make_installs_them_all() -> None:
    extras = set(PROJECT["optional-dependencies"])
    assert set(EXTRA_MODULES) <= extras
    assert {"synth", "plot", "simulation", "dev"} <= extras
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    listed = re.search(r"^ALL_EXTRAS\s*:=\s*(\S+)$", makefile, re.M)
    assert listed is not None and set(listed[1].split(",")) == extras
    assert "-e '.[$(ALL_EXTRAS)]'" in makefile


def test_extras__each_modules_distribution_is_in_its_extra() -> None:
    distributions = {"msprime": "msprime", "tskit": "tskit", "bed_reader": "bed-reader"}
    distributions |= {"matplotlib": "matplotlib", "ray": "flwr"}  # flwr[simulation] brings Ray
    distributions |= {"lifelines": "lifelines"}  # dev: conform's km and cox reference
    distributions |= {"torch": "torch", "opacus": "opacus"}  # train
    for extra, modules in EXTRA_MODULES.items():
        names = set(_pins(PROJECT["optional-dependencies"][extra]))
        for module in modules:
            assert distributions[module] in names, (extra, module)


def test_require_extras__names_the_extra_and_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_extras("genofed synth", "synth")  # installed here: no error
    monkeypatch.setitem(sys.modules, "msprime", None)
    with pytest.raises(GenoFedError, match=r"genofed synth needs genofed\[synth\]") as caught:
        require_extras("genofed synth", "synth", "plot")
    assert "pip install 'genofed[synth]'" in str(caught.value)


def test_synth_command__without_the_synth_extra_exits_2_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tskit", None)
    result = CliRunner().invoke(cli.app, ["synth", "--out", str(tmp_path / "c")])
    assert result.exit_code == cli.EXIT_INPUT
    assert "genofed[synth]" in result.output
    assert not (tmp_path / "c").exists()


class _NoRounds:
    """A transport with three sites that fails the test if a round is sent."""

    def nodes(self) -> list[int]:
        return [1, 2, 3]

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        raise AssertionError("a round was sent")


def test_run_study__a_plotting_study_without_matplotlib_stops_before_any_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = study_from_mapping(
        {
            "study": {"name": "gwas"},
            "analysis": [{"kind": "freq"}, {"kind": "glm", "phenotype": "QPHENO"}],
        },
        path=Path("<test>"),
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(GenoFedError, match=r"(?s)glm analyses draw plots.*genofed\[plot\]"):
        run_study(study, _NoRounds(), tmp_path / "out", engine="test")
    assert list(tmp_path.iterdir()) == []


def test_run_study__a_study_without_plots_needs_no_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = study_from_mapping(
        {"study": {"name": "qc"}, "analysis": [{"kind": "freq"}]}, path=Path("<test>")
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(AssertionError, match="a round was sent"):  # got past the check
        run_study(study, _NoRounds(), tmp_path / "out", engine="test")


def test_train_request__a_site_without_genofed_train_refuses_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default site image has no PyTorch: a train request is refused by name, not a crash."""
    import importlib.util

    from genofed.common.errors import PolicyRefusal
    from genofed.site_agent.requests import train

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    ctx = SimpleNamespace(
        analysis=SimpleNamespace(params={}), bed=None, request=None, policy=None, site=None,
        variant_plan=(None, None), inputs={}, mode="plain",
    )  # fmt: skip
    with pytest.raises(PolicyRefusal) as got:
        train.serve_train(ctx)  # type: ignore[arg-type]
    assert got.value.reason_code == "NOT_INSTALLED" and "genofed[train]" in str(got.value)
