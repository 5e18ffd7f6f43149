"""``genofed-site report``: the privacy officer's HTML page, checked as text and in Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from matplotlib.image import imread
from typer.testing import CliRunner

from genofed.common.checkpoint import public_key_to_pem
from genofed.common.errors import SiteFailure
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.report import render_report
from genofed.site_agent.cli.main import app
from genofed.site_agent.node import admin_state
from genofed.site_agent.privacy import approvals
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

runner = CliRunner()
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DP = study_from_mapping(
    {
        "study": {"name": "dpqc"},
        "privacy": {"mode": "dp", "epsilon": 4.0},
        "analysis": [{"kind": "freq"}],
    },
    path=Path("<test>"),
)
REFUSED = study_from_mapping(
    {"study": {"name": "not-here"}, "analysis": [{"kind": "hardy"}]}, path=Path("<test>")
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Site 0 after two dp studies and one study its privacy officer refused."""
    root = tmp_path_factory.mktemp("report")
    cohort = write_cohorts(root / "c", sites=3, samples=300, variants=30, seed=4)
    copies = []
    for src in cohort.sites:
        shutil.copytree(src, root / src.name)
        copies.append(root / src.name)
    run_study(DP, InProcessTransport(copies), root / "r1", engine="t")
    run_study(DP, InProcessTransport(copies), root / "r2", engine="t")
    approvals.refuse(copies[0], REFUSED.sha256, by="po", reason="out of scope for <consent>")
    with pytest.raises(SiteFailure):
        run_study(REFUSED, InProcessTransport(copies), root / "r3", engine="t")
    return copies[0]


def _releases(site: Path) -> list[AuditEntry]:
    return [e for e in admin_state.audit_entries(site) if e.kind == AuditKind.RELEASE]


def test_report__shows_verification_budget_studies_and_every_release(site: Path) -> None:
    page = render_report(site)
    assert 'id="verification" class="status ok" data-verified="true"' in page
    png = re.search(r'id="budget-plot"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert png is not None and base64.b64decode(png[1]).startswith(b"\x89PNG\r\n\x1a\n")
    releases = _releases(site)
    assert len(releases) == 4  # 2 runs x (variant table, noisy counts)
    for entry in releases:
        for array in entry.arrays:
            assert array.sha256 in page and f"<code>{array.name}</code>" in page
    assert "discrete_gaussian" in page  # the noise of the dp counts
    assert REFUSED.sha256[:16] in page and "decision-refused" in page
    assert "out of scope for &lt;consent&gt;" in page  # escaped, not markup
    assert "dpqc" in page and "decision-approved" in page
    # self-contained: no script, no stylesheet link, no resource from elsewhere
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_report__with_another_key_the_log_does_not_verify(site: Path) -> None:
    other = public_key_to_pem(Ed25519PrivateKey.generate().public_key())
    page = render_report(site, public_key_pem=other)
    assert 'data-verified="false"' in page and "does NOT verify" in page
    assert "the key you gave" in page


def test_report__without_matplotlib_says_where_the_plot_would_be_and_keeps_the_rest(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    with_plot = render_report(site, clock=lambda: now)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on an install without [plot]
    without = render_report(site, clock=lambda: now)
    assert 'src="data:image/png' in with_plot and 'src="data:image/png' not in without
    assert '<p id="budget-plot" class="meta">' in without and "genofed[plot]" in without
    cut = re.compile(r'<img id="budget-plot".*?>|<p id="budget-plot".*?</p>', re.S)
    assert cut.sub("", without) == cut.sub("", with_plot)


def test_report_cli__writes_the_file_and_refuses_a_non_site(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    result = runner.invoke(app, ["report", str(site), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    bad = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "x.html")])
    assert bad.exit_code == 2 and "not a site directory" in bad.output
    assert not (tmp_path / "x.html").exists()


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install -y chromium; make test does it as root)",
)
def test_report__renders_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(site), "--out", str(page)])
    assert result.exit_code == 0, result.output
    shot = tmp_path / "shot.png"
    url = page.as_uri()
    taken = _chromium(
        [f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", url],
        tmp_path / "profile-shot",
    )
    assert shot.is_file(), taken.stderr[-2000:]
    dumped = _chromium(["--dump-dom", url], tmp_path / "profile-dom")
    dom = dumped.stdout
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    # the parsed document has the key elements
    assert re.search(r'<h1 id="title">Privacy report: site \S+</h1>', dom)
    assert re.search(r'<div id="verification" class="status ok" data-verified="true">', dom)
    assert re.search(r'<img id="budget-plot"[^>]*src="data:image/png;base64,', dom)
    for table in ("charges", "studies", "releases", "refusals"):
        assert re.search(rf'<table id="{table}">', dom), table
    assert dom.count("<tr>") >= 1 + 2 + 1 + 4  # header rows and at least the known rows
    for entry in _releases(site):
        assert entry.arrays[0].sha256 in dom
    # the screenshot shows the page styled: the green "verified" box and the plot's line
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1280
    green_box = np.all(np.abs(pixels - np.array([0xE3, 0xF9, 0xE5]) / 255) < 0.02, axis=-1)
    plot_line = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.06, axis=-1)
    assert green_box.sum() > 5000, "the verification box is not rendered with its style"
    assert plot_line.sum() > 100, "the budget plot is not drawn"
