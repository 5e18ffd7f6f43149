"""``genofed-site report``: the privacy officer's HTML page, checked as text and in Chromium.

The site has answered an unsigned dp study twice (a charge, then a replay of it), the
same dp study content signed by two analysts (alice's run charged, bob's a replay of
alice's release: one hash, two signers) and refused a third study. Its two charges are
0.5 each: the page must show their composition (about 0.73, as the ledger computes it),
not their sum.
"""

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
from genofed.common.signing import generate_private_key, public_key_text, sign_study
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.site_agent.audit.report import NO_CHARGES, budget_figure, render_report, replay_of
from genofed.site_agent.cli.main import app
from genofed.site_agent.node import admin_state
from genofed.site_agent.privacy import approvals
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Budget, Ledger
from genofed.site_agent.privacy.policy import POLICY_FILE
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
#: The demo policy's budget (its delta is the studies' delta, so each charge is 0.5).
BUDGET = Budget(100.0, 1e-5, "year")
DP = study_from_mapping(
    {
        "study": {"name": "dpqc"},
        "privacy": {"mode": "dp", "epsilon": 0.5, "delta": 1e-5},
        "analysis": [{"kind": "freq"}],
    },
    path=Path("<test>"),
)
SIGNED = study_from_mapping(
    {
        "study": {"name": "signed-qc"},
        "privacy": {"mode": "dp", "epsilon": 0.5, "delta": 1e-5},
        "analysis": [{"kind": "hardy"}],
    },
    path=Path("<test>"),
)
REFUSED = study_from_mapping(
    {"study": {"name": "not-here"}, "analysis": [{"kind": "hardy"}]}, path=Path("<test>")
)
ALICE, BOB = generate_private_key(), generate_private_key()


def _trust(site: Path) -> None:
    """The demo policy, trusting alice and bob (a signed study must verify even there)."""
    tables = "".join(
        f'\n[[policy.trusted_analysts]]\nname = "{name}"\npublic_key = "{public_key_text(key)}"\n'
        for name, key in (("alice", ALICE.public_key()), ("bob", BOB.public_key()))
    )
    policy = site / POLICY_FILE
    policy.write_text(policy.read_text() + tables)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Site 0 after the runs of the module docstring."""
    root = tmp_path_factory.mktemp("report")
    cohort = write_cohorts(root / "c", sites=3, samples=300, variants=30, seed=4)
    copies = []
    for src in cohort.sites:
        shutil.copytree(src, root / src.name)
        copies.append(root / src.name)
        _trust(root / src.name)
    run_study(DP, InProcessTransport(copies), root / "r1", engine="t")
    run_study(DP, InProcessTransport(copies), root / "r2", engine="t")
    for n, key in enumerate((ALICE, BOB)):
        signature = sign_study(SIGNED, key)
        run_study(
            SIGNED, InProcessTransport(copies), root / f"s{n}", engine="t", signature=signature
        )
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
    assert len(releases) == 8  # 4 runs x (variant table, noisy counts)
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


def _release_lines(page: str) -> dict[int, tuple[str, str]]:
    """Audit index -> (the release's one line, its full record) as the page shows them."""
    found = re.findall(
        r'<details class="release" id="release-(\d+)"[^>]*><summary>(.*?)</summary>(.*?)</details>',
        page,
        re.S,
    )
    return {int(index): (line, full) for index, line, full in found}


def test_releases__grouped_by_study_hash_and_signer_one_line_each(site: Path) -> None:
    page = render_report(site)
    groups = re.findall(
        r'<section class="release-study" data-study="([0-9a-f]{64})" data-analyst="([^"]*)">', page
    )
    # the same study content signed by alice and by bob: one hash, two groups
    assert [a for sha, a in groups if sha == SIGNED.sha256] == ["alice", "bob"]
    assert groups.count((DP.sha256, admin_state.UNSIGNED)) == 1 and len(groups) == 3
    releases = _releases(site)
    lines = _release_lines(page)
    assert sorted(lines) == sorted(e.index for e in releases)  # one <details> per release
    for entry in releases:
        line, full = lines[entry.index]
        assert not re.search(r"[0-9a-f]{64}", line)  # short hashes in the line...
        for a in entry.arrays:
            assert f"{a.name} [{'×'.join(map(str, a.shape))}] {a.sha256[:12]}</code>" in line
            assert f"<code>{a.sha256}</code>" in full  # ...the whole ones in its details
        assert entry.study_sha256 in full and entry.run_id in full
        assert f"<th>audit index</th><td>{entry.index}</td>" in full
    # the studies table: the signed study is two rows, with the hash's one decision
    studies = re.search(r'<table id="studies">.*?</table>', page, re.S)
    assert studies is not None
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", studies[0], re.S) if SIGNED.sha256 in r]
    assert len(rows) == 2 and "<td>alice</td>" in rows[0] and "<td>bob</td>" in rows[1]
    assert all("decision-approved" in r for r in rows)
    records = {(s.study_sha256, s.analyst): s for s in admin_state.list_studies(site).studies}
    alice, bob = records[(SIGNED.sha256, "alice")], records[(SIGNED.sha256, "bob")]
    assert (alice.n_requests, alice.n_releases, bob.n_requests, bob.n_releases) == (2, 2, 2, 2)
    signers = {e.signer for e in releases if e.study_sha256 == SIGNED.sha256}
    assert signers == {public_key_text(ALICE.public_key()), public_key_text(BOB.public_key())}


def test_releases__a_replay_names_the_entry_it_repeats_and_charges_nothing(site: Path) -> None:
    page = render_report(site)
    releases = {e.index: e for e in _releases(site)}
    replays = [e for e in releases.values() if replay_of(e) is not None]
    assert len(replays) == 2  # the unsigned study's second run, and bob's run
    lines = _release_lines(page)
    for entry in replays:
        original = releases[replay_of(entry) or 0]
        assert original.epsilon > 0 and entry.epsilon == 0
        assert original.study_sha256 == entry.study_sha256
        assert f"replay of entry {original.index}, not charged" in lines[entry.index][0]
        assert "replay of entry" not in lines[original.index][0]
        assert f"ε {original.epsilon:.4g}</span>" in lines[original.index][0]


def test_budget__shows_the_composed_epsilon_the_ledger_spends_and_each_charge(
    site: Path,
) -> None:
    page = render_report(site)
    ledger = Ledger(site / "state" / LEDGER_FILE, BUDGET)
    charges = [float(str(c["epsilon"])) for c in ledger.entries()]
    assert charges == pytest.approx([0.5, 0.5], abs=1e-3)
    spent = ledger.spent()
    assert 0.7 < spent < 0.75  # RDP composition of two 0.5 charges: not their sum, 1
    summary = re.search(
        r'<p id="budget-summary" data-epsilon-composed="([^"]+)">(.*?)</p>', page, re.S
    )
    assert summary is not None and float(summary[1]) == pytest.approx(spent)
    assert f"ε = {spent:.4g} composed</strong> of 100 spent" in summary[2]
    assert "per-release charges: 0.5 + 0.5 (their plain sum, 1, overstates" in summary[2]
    records = {(s.study_sha256, s.analyst): s for s in admin_state.list_studies(site).studies}
    unsigned = records[(DP.sha256, admin_state.UNSIGNED)]
    alice, bob = records[(SIGNED.sha256, "alice")], records[(SIGNED.sha256, "bob")]
    assert unsigned.epsilon_composed == pytest.approx(charges[0])
    assert list(alice.epsilon_charges) == pytest.approx([charges[1]])
    assert bob.epsilon_composed == 0 and not bob.epsilon_charges  # a replay charges nothing
    assert "ε charged" not in page  # no bare sum under that name


def test_budget__without_charges_says_so_instead_of_a_time_axis(tmp_path: Path) -> None:
    (fresh,) = write_cohorts(tmp_path / "c", sites=1, samples=20, variants=5, seed=1).sites
    page = render_report(fresh)
    assert '<p id="budget-plot" class="empty" data-empty="true">Budget plot: no charges yet' in page
    assert "data:image/png" not in page
    summary = re.search(r'<p id="budget-summary"[^>]*>(.*?)</p>', page, re.S)
    assert summary is not None and f"ε = 0 of 100 spent in {datetime.now(UTC).year}" in summary[1]
    assert NO_CHARGES in summary[1]
    # the plot itself, asked for anyway: the words, and no time axis (not one of 1970)
    empty = sa.BudgetReport(
        has_budget=True, epsilon=4.0, delta=1e-5, period="year", current_period="2026"
    )
    figure = budget_figure(empty, now=datetime(2026, 3, 10, tzinfo=UTC))
    figure.canvas.draw()
    (ax,) = figure.axes
    assert NO_CHARGES in [t.get_text() for t in ax.texts]
    assert len(ax.get_xticks()) == 0
    assert all("1970" not in t.get_text() for t in ax.get_xticklabels())


def test_budget_plot__the_time_axis_shows_dates_for_charges_seconds_apart() -> None:
    def charge(second: int, after: float) -> sa.BudgetCharge:
        return sa.BudgetCharge(
            time=f"2026-03-10T12:00:{second:02d}+00:00",
            period="2026",
            epsilon=0.5,
            epsilon_spent_after=after,
        )

    budget = sa.BudgetReport(
        has_budget=True,
        epsilon=4.0,
        delta=1e-5,
        period="year",
        current_period="2026",
        charges=[charge(0, 0.5), charge(3, 0.73)],
    )
    figure = budget_figure(budget, now=datetime(2026, 3, 10, 12, 0, 9, tzinfo=UTC))
    figure.canvas.draw()
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels() if t.get_text()]
    assert len(labels) >= 3
    days = [datetime.strptime(label, "%d %b %Y") for label in labels]  # dates, not seconds
    assert days == sorted(days) and days[-1].date() <= datetime(2026, 3, 11).date()


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
        [f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars", url],
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
    for table in ("charges", "studies", "refusals"):
        assert re.search(rf'<table id="{table}">', dom), table
    assert dom.count("<tr>") >= 1 + 2 + 1 + 4  # header rows and at least the known rows
    releases = _releases(site)
    assert re.search(r'<div id="releases">', dom)
    assert len(re.findall(r'<details class="release" ', dom)) == len(releases)
    assert len(re.findall(r'<section class="release-study" ', dom)) == 3
    for entry in releases:
        assert entry.arrays[0].sha256 in dom
    # the screenshot shows the page styled: the green "verified" box and the plot's line
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] == 4000 and pixels.shape[1] == 1280
    # one line per release: the whole page ends well within the window (a row per release
    # with its hashes wrapped character by character took about 5000 pixels here)
    inked = np.flatnonzero(np.any(np.abs(pixels - 1.0) > 0.05, axis=(1, 2)))
    assert inked.size and inked[-1] < 2600, f"the page is {inked[-1]} pixels tall"
    green_box = np.all(np.abs(pixels - np.array([0xE3, 0xF9, 0xE5]) / 255) < 0.02, axis=-1)
    plot_line = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.06, axis=-1)
    assert green_box.sum() > 5000, "the verification box is not rendered with its style"
    assert plot_line.sum() > 100, "the budget plot is not drawn"
