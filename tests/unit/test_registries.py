"""Every analysis kind is registered once per side and in the report; docs/developer.md says where.

The registries: ``ANALYSIS_KINDS`` (what a study may name), the site's
``MODULE_REQUESTS`` and each request module's ``SERVER``, the coordinator's
``PROTOCOLS`` (with each kind's report section), and the demo policy's
``DEMO_ANALYSES``. A kind missing from one of them fails here, by name.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

import genofed.common.analyses as analyses_module
import genofed.coordinator.protocols as protocols_module
import genofed.coordinator.writers.analyst_report.sections as sections_module
import genofed.site_agent.privacy.policy as policy_module
import genofed.site_agent.requests as requests_module
from genofed.common.analyses import (
    ANALYSIS_KINDS,
    COUNT_KINDS,
    GENOTYPE_COUNTS_KIND,
    VARIANTS_KIND,
)
from genofed.coordinator.protocols import PROTOCOLS, REPORT_SECTIONS
from genofed.site_agent.context import Server
from genofed.site_agent.privacy.policy import DEMO_ANALYSES
from genofed.site_agent.requests import MODULE_REQUESTS, server_for

ROOT = Path(__file__).resolve().parents[2]
KINDS = sorted(ANALYSIS_KINDS)
#: The files that register an analysis, in the order docs/developer.md's section lists them.
REGISTRY_MODULES: tuple[ModuleType, ...] = (
    analyses_module,
    requests_module,
    policy_module,
    sections_module,
    protocols_module,
)


def _servers() -> dict[str, Server]:
    """Each request module's SERVER, by module name."""
    found = {}
    for module, request_kinds in MODULE_REQUESTS.items():
        server = server_for(sorted(request_kinds)[0])
        assert server is not None, module
        found[module] = server
    return found


def _readme_section(title: str) -> str:
    text = (ROOT / "docs" / "developer.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"docs/developer.md has no '## {title}' section"
    return match[1]


def _path(module: ModuleType) -> str:
    assert module.__file__ is not None
    return Path(module.__file__).resolve().relative_to(ROOT).as_posix()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind__has_exactly_one_site_server(kind: str) -> None:
    serving = [module for module, server in _servers().items() if kind in server.analyses]
    assert len(serving) == 1, f"{kind}: served by {serving or 'no module'} under requests/"


def test_site_servers__answer_the_request_kinds_registered_for_their_module() -> None:
    for module, request_kinds in MODULE_REQUESTS.items():
        server = _servers()[module]
        assert request_kinds == server.request_kinds, module
        for request_kind in request_kinds:
            assert server_for(request_kind) is server, request_kind
        assert server.analyses <= set(ANALYSIS_KINDS), module
    assert _servers()["variants"].analyses == frozenset()  # the round before every study


def test_site_servers__unknown_request_kind_has_none() -> None:
    assert server_for("no_such_request") is None


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind__has_a_coordinator_protocol_or_is_served_by_the_counts_round(
    kind: str,
) -> None:
    protocol = PROTOCOLS.get(kind)
    assert protocol is not None, f"{kind}: not in coordinator/protocols/__init__.py PROTOCOLS"
    assert protocol.kind == kind
    if kind in COUNT_KINDS:
        assert protocol.run is None, f"{kind} is served by the genotype_counts round"
        assert kind in _servers()["counts"].analyses
        assert GENOTYPE_COUNTS_KIND in _servers()["counts"].request_kinds
    else:
        assert callable(protocol.run), f"{kind}: no run function"


def test_protocols__register_no_kind_a_study_cannot_name() -> None:
    assert set(PROTOCOLS) == set(ANALYSIS_KINDS)
    assert VARIANTS_KIND not in PROTOCOLS


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind__has_its_own_report_section(kind: str) -> None:
    section = REPORT_SECTIONS.get(kind)
    assert section is not None and section is PROTOCOLS[kind].section
    assert section is not sections_module.generic, f"{kind}: only the generic section"
    assert section.__module__ == sections_module.__name__


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_with_a_png_output__is_registered_as_drawing_plots(kind: str) -> None:
    if any(name.endswith(".png") for name in ANALYSIS_KINDS[kind].outputs):
        assert PROTOCOLS[kind].plots, f"{kind} writes a plot: set plots=True in PROTOCOLS"


def test_demo_policy__allows_every_kind() -> None:
    assert set(DEMO_ANALYSES) == {VARIANTS_KIND, *ANALYSIS_KINDS}


def test_readme__adding_an_analysis_names_every_registry_file_in_order() -> None:
    section = _readme_section("Adding an analysis")
    paths = [_path(m) for m in REGISTRY_MODULES]
    where = [section.find(f"`{p}`") for p in paths]
    missing = [p for p, at in zip(paths, where, strict=True) if at < 0]
    assert not missing, f"docs/developer.md's 'Adding an analysis' section does not name {missing}"
    assert where == sorted(where), "list the registry files in the order of REGISTRY_MODULES"


def test_readme__adding_an_analysis_names_only_paths_that_exist() -> None:
    section = _readme_section("Adding an analysis")
    named = re.findall(r"`((?:genofed|tests)/[^`<>]*?)`", section)
    assert named
    for path in named:
        assert (ROOT / path).exists(), f"docs/developer.md names a missing {path}"
