"""End to end: where a command is run from, two site agents on one host, connection lines.

* every command (``coordinator up``, ``register-site``, ``genofed-site up``,
  ``study run``) run from a folder holding a GenoFed checkout (its
  ``pyproject.toml``, which Flower would read as an app, and a ``genofed/``
  package without ``__version__``), with two site agents on this host left to
  pick their own runtime ports: the study finishes;
* (slow) a simulated study run from a checkout folder;
* (slow) the coordinator restarted under its sites: each site console says
  when it lost the coordinator and when it reconnected, the coordinator's
  console when each site connected again, and when a stopped site left.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from genofed.synth import write_cohorts
from tests.e2e.federation import BIN, Federation, make_federation

SITES = ("a", "b")
STUDY = '[study]\nname = "e2e-ops"\n\n[[analysis]]\nkind = "freq"\n'
REPO = Path(__file__).resolve().parents[2]
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _checkout(path: Path) -> Path:
    """What a developer's clone looks like to Flower: a pyproject.toml and a genofed/ package."""
    (path / "genofed").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", path / "pyproject.toml")
    (path / "genofed" / "__init__.py").write_text("")  # no __version__
    return path


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("ops")
    checkout = _checkout(root / "checkout")
    cohorts = write_cohorts(root / "cohorts", sites=2, samples=200, variants=60, seed=11)
    fed = make_federation(root, SITES, cohorts.sites)
    fed.cwd = checkout
    try:
        fed.start_all(SITES, cohorts.sites, runtime_port=False)  # each picks a free port
        yield fed
    finally:
        fed.stop_all()


def test_study_run__from_a_checkout_folder_with_two_site_agents_on_one_host(
    federation: Federation, tmp_path: Path
) -> None:
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    res = federation.genofed(
        "study", "run", str(study), "--superlink", federation.control,
        "--ca-cert", str(federation.pki.ca_cert), "--sites", "2", "--out", str(tmp_path / "r"),
        timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "r" / "freq.afreq").is_file()
    for proc in federation.sites.values():
        assert proc.wait_for("reply sent", 10), proc.text()
    coordinator = federation.coordinator
    assert coordinator is not None
    for name in SITES:  # the coordinator's console names each site, with the time
        assert re.search(rf"{TIME} site site-{name} \(node \d+\) connected", coordinator.text())


@pytest.mark.slow  # Flower's SuperNode backs off up to 20 s; heartbeats every ~24 s
def test_coordinator_restart__both_consoles_say_when_sites_left_and_came_back(
    federation: Federation,
) -> None:
    old = federation.coordinator
    assert old is not None
    old.stop()
    for proc in federation.sites.values():
        assert proc.wait_for("lost the connection to the coordinator", 60), proc.text()
    new = federation.start_coordinator()
    for name, proc in federation.sites.items():
        assert proc.wait_for("reconnected to the coordinator", 90), proc.text()
        line = re.search(rf"{TIME} reconnected to the coordinator \(after \d+ s.*", proc.text())
        assert line and "down since" in line[0], proc.text()
        assert new.wait_for(f"site site-{name} (node", 60), new.text()
    assert "connected" in new.text()
    federation.sites["b"].stop()  # a site that stops its node leaves at once
    assert new.wait_for("disconnected (offline)", 30), new.text()
    assert re.search(rf"{TIME} site site-b \(node \d+\) disconnected", new.text()), new.text()


@pytest.mark.slow  # Ray's start-up
def test_simulation__from_a_checkout_folder_imports_the_installed_genofed(
    tmp_path: Path,
) -> None:
    """Ray puts the driver's working directory on its workers' ``sys.path``."""
    checkout = _checkout(tmp_path / "checkout")
    cohorts = write_cohorts(tmp_path / "cohorts", sites=2, samples=100, variants=30, seed=5)
    (tmp_path / "study.toml").write_text(STUDY)
    sites = [a for d in cohorts.sites for a in ("--site", os.path.relpath(d, checkout))]
    res = subprocess.run(
        [str(BIN / "genofed"), "study", "run", "../study.toml", "--simulation", *sites,
         "--out", "../out"],
        cwd=checkout, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "out" / "freq.afreq").is_file()
